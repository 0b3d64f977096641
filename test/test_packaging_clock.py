"""`maqbool bag play --clock` publishes the bag's log time on /clock, so nodes started with
use_sim_time run on the bag's time (without it, their ROS clock never moves)."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from maqbool_ros.core.data import bags  # noqa: E402
from maqbool_ros.core.data.datasets import ImageList, QueryRefDataset  # noqa: E402
from maqbool_ros.ros.bag_player import BagPlayer, raw_messages  # noqa: E402


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8) for _ in range(5)]
    data = QueryRefDataset("clock", ImageList.from_arrays(imgs[:3]), ImageList.from_arrays(imgs[3:]),
                           [np.zeros(0, np.int64)] * 2)
    out = tmp_path_factory.mktemp("clock") / "bag"
    bags.write_dataset_bag(data, out, storage="mcap", rate_hz=20.0, progress=False)
    return out


@pytest.fixture()
def sim_node():
    """A node with use_sim_time=true that records /clock and subscribes to the image topic."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("sim_time_probe", context=context,
                             parameter_overrides=[Parameter("use_sim_time", value=True)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.ticks = []
    node.create_subscription(Clock, "/clock", lambda m: node.ticks.append(m.clock.sec * 10**9 + m.clock.nanosec), 100)
    node.create_subscription(Image, "/keyframes/image", lambda m: None,
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    node.spin_until = lambda pred, timeout: _spin_until(executor, pred, timeout)
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin_until(executor, predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def test_player_ticks_clock_with_the_bags_log_time(bag, sim_node):
    log_times = [t for _, _, t, _ in raw_messages(bag)]
    context = rclpy.Context()
    rclpy.init(context=context)
    player_node = rclpy.create_node("clock_player", context=context)
    try:
        player = BagPlayer(player_node, bag, rate=1.0, clock_hz=50.0)
        assert player.wait_for_subscribers("/keyframes/image", bags.IMAGE_TYPE, 10.0)
        # Both ends of /clock must be matched before the first tick counts: tick until one arrives.
        deadline = time.monotonic() + 20
        while not sim_node.ticks and time.monotonic() < deadline:
            player.publish_clock(0)
            sim_node.spin_until(lambda: bool(sim_node.ticks), 0.1)
        assert sim_node.ticks, "/clock never reached the sim-time node"
        sim_node.spin_until(lambda: False, 0.5)  # take any warm-up tick still in flight
        sim_node.ticks.clear()
        assert player.play() == len(log_times)
        assert sim_node.spin_until(lambda: sim_node.ticks and sim_node.ticks[-1] == log_times[-1], 10.0), \
            f"clock ticks {sim_node.ticks} never reached the last log time {log_times[-1]}"
    finally:
        player_node.destroy_node()
        rclpy.shutdown(context=context)
    ticks = sim_node.ticks
    assert ticks == sorted(ticks) and ticks[0] >= log_times[0]
    assert set(log_times) <= set(ticks)  # one tick per message, at its log time
    assert len(ticks) > len(log_times)  # and ticks in between (50 Hz over 0.2 s of log time)
    assert sim_node.get_clock().now().nanoseconds == log_times[-1]


def test_bag_play_cli_publishes_clock(bag, sim_node):
    """Real-time pace (0.2 s of log time): the last ticks come well after discovery."""
    log_times = [t for _, _, t, _ in raw_messages(bag)]
    proc = subprocess.run([sys.executable, "-m", "maqbool_ros.tools.cli", "bag", "play", str(bag), "--clock",
                           "--rate", "1", "--wait-subscribers", "20"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sim_node.spin_until(lambda: sim_node.get_clock().now().nanoseconds == log_times[-1], 10.0), \
        f"sim time {sim_node.get_clock().now()} != last log time {log_times[-1]}; ticks {sim_node.ticks}"


def test_bad_clock_rate_names_the_option(bag):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("clock_bad", context=context)
    try:
        with pytest.raises(ValueError, match="clock"):
            BagPlayer(node, bag, clock_hz=-1.0)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_sim_time_node_publishes_stats_without_a_clock(tmp_path, sim_node):
    """The stats period is wall time: a use_sim_time node with nothing on /clock (a bag not
    yet playing) still reports its stats and diagnostics."""
    import json

    from std_msgs.msg import String

    from helpers.node_proc import node_command
    from maqbool_ros.core.config import MaqboolConfig, ros_params_yaml

    params = tmp_path / "params.yaml"
    params.write_text(ros_params_yaml(MaqboolConfig(stats_period_s=0.2)))
    stats: list = []
    sim_node.create_subscription(String, "/maqbool_loop_closure/stats", lambda m: stats.append(json.loads(m.data)), 10)
    with open(tmp_path / "node.log", "w+") as log:
        cmd = [*node_command(), "--ros-args", "--params-file", str(params), "-p", "use_sim_time:=true"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            got = sim_node.spin_until(lambda: len(stats) >= 2, 60.0)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        assert got, "no stats from a use_sim_time node without /clock:\n" + (tmp_path / "node.log").read_text()[-2000:]
