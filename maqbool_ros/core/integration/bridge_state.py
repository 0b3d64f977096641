"""What the RTAB-Map bridge remembers between messages (plain Python; docs/rtabmap.md).

Sessions. RTAB-Map's node ids restart at 1 after a reset (`rtabmap/reset`, a new database, a
restarted `rtabmap` without its database), but the node's keyframe database keys keyframes by
(robot_id, keyframe_id) and refuses a key it holds. The bridge therefore numbers RTAB-Map's
sessions as it sees them (0, 1, ...) and gives node n of session s the keyframe id
s * SESSION_STRIDE + n (session 0: the node id itself) and the map id "<RTAB-Map map id>@<s>"
(session 0: the map id alone). The old session's keyframes stay in the database under their ids;
links are only sent between nodes of the current session (the others are gone from RTAB-Map).

A reset is seen when RTAB-Map's ids go backwards on mapData (one stream, delivered in order; Info
is another stream, in no fixed order with it): the newest id of a mapData (graph and nodes) is
below the newest id seen in this session, or a node already seen comes again with another stamp.
Within a session RTAB-Map's ids only grow (a new map after lost odometry, `trigger_new_map`,
keeps counting: it is not a reset).

Verdicts. AddLink's answer is empty; whether RTAB-Map kept a link shows in the graph of later
mapData messages (rtabmap_slam publishes the local graph with its links). A link is kept when a
graph carries it (either direction) once the add_link call was answered; rejected when a graph
whose newest node id is at least VERDICT_NODES above the newest id seen at the answer still
lacks it (the first newer graph may have been published before RTAB-Map added the link).
"""
from __future__ import annotations

from collections.abc import Iterable

#: Keyframe ids per RTAB-Map session: RTAB-Map's node ids are int32, so node ids never reach it.
SESSION_STRIDE = 1 << 32
#: Newer graph nodes (after the answer) whose graph must lack a link before it counts as rejected.
VERDICT_NODES = 2


def keyframe_id(session: int, node_id: int) -> int:
    """The keyframe id of RTAB-Map node node_id (> 0) in session `session`."""
    if not 0 < node_id < SESSION_STRIDE:
        raise ValueError(f"node id {node_id} is outside 1..{SESSION_STRIDE - 1}")
    return int(session) * SESSION_STRIDE + int(node_id)


def split_keyframe_id(kf_id: int) -> tuple[int, int]:
    """(session, RTAB-Map node id) of a keyframe id made by keyframe_id()."""
    return divmod(int(kf_id), SESSION_STRIDE)


def session_map_id(session: int, map_id: int) -> str:
    """Keyframe.map_id of a node of RTAB-Map map `map_id` in session `session`."""
    return str(map_id) if session == 0 else f"{map_id}@{session}"


class SessionTracker:
    """RTAB-Map's current session: its number, its newest node id, the stamps of its nodes."""

    def __init__(self) -> None:
        self.session = 0
        self.newest = 0  # highest node id seen in this session
        self.stamps: dict[int, float] = {}  # node id -> stamp, nodes seen in this session

    def observe(self, ids: Iterable[int], stamps: dict[int, float] | None = None) -> bool:
        """Take the node ids of one message (landmarks <= 0 ignored) and the stamps of the nodes it
        carries; True when they start a new session (the state is then that session's)."""
        ids = [int(i) for i in ids if int(i) > 0]
        stamps = {int(k): float(v) for k, v in (stamps or {}).items() if int(k) > 0}
        if not ids and not stamps:
            return False
        newest = max([*ids, *stamps])
        restamped = any(k in self.stamps and abs(self.stamps[k] - v) > 1e-6 for k, v in stamps.items())
        reset = (self.newest > 0 and newest < self.newest) or restamped
        if reset:
            self.session += 1
            self.newest, self.stamps = 0, {}
        self.newest = max(self.newest, newest)
        self.stamps.update(stamps)
        return reset


class LinkVerdicts:
    """Links answered by add_link, waiting for a mapData graph to show whether RTAB-Map kept them."""

    def __init__(self, nodes: int = VERDICT_NODES) -> None:
        self.nodes = int(nodes)
        self._waiting: dict[tuple[int, int], int] = {}  # (from, to) -> newest node id at the answer

    def __len__(self) -> int:
        return len(self._waiting)

    def answered(self, from_id: int, to_id: int, newest: int) -> None:
        self._waiting[(int(from_id), int(to_id))] = int(newest)

    def judge(self, graph_ids: Iterable[int], graph_links: Iterable[tuple[int, int]]) -> tuple[list, list]:
        """(kept, rejected) (from, to) pairs decided by one mapData graph; those are forgotten."""
        ids = [int(i) for i in graph_ids if int(i) > 0]
        newest = max(ids, default=0)
        links = {(int(a), int(b)) for a, b in graph_links}
        kept, rejected = [], []
        for pair, at_answer in list(self._waiting.items()):
            if pair in links or pair[::-1] in links:
                kept.append(pair)
            elif newest >= at_answer + self.nodes:
                rejected.append(pair)
            else:
                continue
            del self._waiting[pair]
        return kept, rejected

    def clear(self) -> int:
        """Forget every waiting link (RTAB-Map was reset: their nodes are gone); how many."""
        n = len(self._waiting)
        self._waiting.clear()
        return n
