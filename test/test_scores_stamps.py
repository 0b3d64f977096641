"""One stamp conversion (core.types) for bags and the node; the carry into sec that the
node's copy lost (issue #12 point 5)."""
from __future__ import annotations

import types

import pytest

from maqbool_ros.core.types import seconds_to_sec_nanosec, stamp_to_seconds

CASES = [(0.0, (0, 0)), (12.25, (12, 250_000_000)), (1.9999999999, (2, 0)), (-0.5, (-1, 500_000_000)),
         (1_700_000_000.123456789, None)]


@pytest.mark.parametrize("seconds, expected", CASES)
def test_seconds_round_trip_through_sec_nanosec(seconds, expected):
    sec, nanosec = seconds_to_sec_nanosec(seconds)
    assert 0 <= nanosec < 1_000_000_000
    if expected is not None:
        assert (sec, nanosec) == expected
    back = stamp_to_seconds(types.SimpleNamespace(sec=sec, nanosec=nanosec))
    assert back == pytest.approx(seconds, abs=1e-6)


def test_node_conversion_carries_a_rounded_up_second():
    pytest.importorskip("rclpy", reason="the node's message conversions need ROS 2 (rclpy)")
    from maqbool_ros.ros.conversions import seconds_to_stamp
    from maqbool_ros.ros.conversions import stamp_to_seconds as node_stamp_to_seconds

    stamp = seconds_to_stamp(1.9999999999)
    assert (stamp.sec, stamp.nanosec) == (2, 0)  # was (1, 0): a whole second lost
    assert node_stamp_to_seconds(stamp) == 2.0


def test_bag_headers_use_the_same_conversion():
    pytest.importorskip("rosbags", reason="bag writing needs rosbags")
    import numpy as np

    from maqbool_ros.core.data import bags

    msg = bags.rgb_to_image_msg(np.zeros((2, 2, 3), np.uint8), 1.9999999999, "0")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (2, 0)
    assert stamp_to_seconds(msg.header.stamp) == 2.0
