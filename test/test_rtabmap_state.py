"""The RTAB-Map bridge's memory between messages (core/integration/bridge_state.py), in plain Python:
sessions (RTAB-Map resets: ids restart), keyframe ids per session and back, and the verdicts on
sent links from later mapData graphs. The bridge end to end: test/test_rtabmap_reset.py."""
from __future__ import annotations

import pytest

from maqbool_ros.core.database.map_ids import encode_map_id
from maqbool_ros.core.integration.bridge_state import (
    SESSION_STRIDE,
    LinkVerdicts,
    SessionTracker,
    keyframe_id,
    session_map_id,
    split_keyframe_id,
)
from maqbool_ros.core.integration.links import POSE_METRIC, Candidate, LinkPolicy, decide_query


def test_keyframe_ids_are_distinct_per_session_and_map_back_to_node_ids():
    assert keyframe_id(0, 7) == 7  # the first session keeps RTAB-Map's ids
    assert keyframe_id(1, 7) == SESSION_STRIDE + 7 and keyframe_id(2, 7) != keyframe_id(1, 7)
    for session, node in [(0, 1), (1, 1), (3, 2**31 - 1), (1000, 42)]:
        assert split_keyframe_id(keyframe_id(session, node)) == (session, node)
    assert keyframe_id(2**31 - 1, 2**31 - 1) < 2**63  # int64, the database's id type
    for bad in (0, -3, SESSION_STRIDE):
        with pytest.raises(ValueError, match="node id"):
            keyframe_id(0, bad)
    assert session_map_id(0, 2) == "2" and session_map_id(3, 2) == "2@3"
    encode_map_id(session_map_id(2**31 - 1, 2**31 - 1))  # fits the database's map id column


def test_a_reset_is_seen_when_ids_go_back_or_a_node_comes_again_with_another_stamp():
    t = SessionTracker()
    assert not t.observe([1, 2, 3], {3: 3.0}) and t.newest == 3 and t.session == 0
    assert not t.observe([1, 2, 3], {3: 3.0})  # republished: same id, same stamp
    assert not t.observe([-5, 4])  # landmarks ignored, ids grow
    assert not t.observe([])
    assert t.observe([1], {1: 10.0}) and t.session == 1 and t.newest == 1  # ids went back
    assert not t.observe([1, 2], {2: 11.0})
    assert t.observe([3], {1: 20.0}) and t.session == 2  # node 1 again, another stamp: missed the drop
    assert not t.observe([4]) and t.newest == 4


def test_verdicts_kept_when_in_a_graph_rejected_when_newer_graphs_lack_it():
    v = LinkVerdicts(nodes=2)
    v.answered(10, 4, newest=10)
    v.answered(10, 6, newest=10)
    v.answered(9, 2, newest=10)
    assert v.judge([1, 2, 10], [(10, 9)]) == ([], []) and len(v) == 3  # the graph of the answer's time
    assert v.judge([1, 11], [(4, 10)]) == ([(10, 4)], [])  # either direction: kept
    assert v.judge([1, 12], [(11, 10)]) == ([], [(10, 6), (9, 2)])  # 2 nodes newer and still absent
    assert len(v) == 0
    v.answered(12, 1, newest=12)
    assert v.clear() == 1 and len(v) == 0


def test_candidates_of_an_old_session_are_not_sent_and_the_new_session_links_again():
    """After a reset the same node ids are new nodes: a pair sent before is no duplicate."""
    import numpy as np

    def cand(q_kf: int, c_kf: int) -> Candidate:
        (qs, q), (cs, c) = split_keyframe_id(q_kf), split_keyframe_id(c_kf)
        return Candidate(q, c, True, True, POSE_METRIC, np.eye(4), np.eye(6) * 1e-3, query_session=qs,
                         candidate_session=cs)

    policy = LinkPolicy(candidate_pose_frame="base", max_links_per_query=2)
    links, reasons = decide_query([cand(4, 2)], policy, {2, 4}, {})
    assert [(k.from_id, k.to_id) for k in links] == [(4, 2)] and reasons == []
    policy.session, policy.sent = 1, set()  # what the bridge does on a reset
    links, reasons = decide_query([cand(keyframe_id(1, 4), 2), cand(keyframe_id(1, 4), keyframe_id(1, 2))],
                                  policy, {2, 4}, {})
    assert [(k.from_id, k.to_id) for k in links] == [(4, 2)] and reasons == ["other_session"]


def test_loop_markers_take_graph_positions_for_the_newest_session_only():
    """RTAB-Map's graph is keyed by node id and holds only its current session: after a reset, an
    edge of session 1 is drawn at the nodes' graph positions; one of session 0 (ids gone) is not."""
    import numpy as np

    from maqbool_ros.core.integration.loop_graph import LoopGraph

    graph = LoopGraph()
    graph.set_graph({1: np.zeros(3), 4: np.ones(3)})
    graph.add_result(("r", 4), 4.0, [(("r", 1), 1.0, True, 0.9)])
    segments, missing = graph.segments()
    assert len(segments) == 1 and missing == 0  # session 0 only: ids as they are
    graph.add_result(("r", keyframe_id(1, 4)), 14.0, [(("r", keyframe_id(1, 1)), 11.0, True, 0.9)])
    segments, missing = graph.segments()
    assert missing == 1 and [(e.query[1], e.candidate[1]) for e, _, _ in segments] == [(keyframe_id(1, 4),
                                                                                       keyframe_id(1, 1))]
    assert np.allclose(segments[0][1], 1.0) and np.allclose(segments[0][2], 0.0)
