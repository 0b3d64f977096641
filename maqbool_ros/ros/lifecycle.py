"""Run a node until SIGINT/SIGTERM, then stop it in the order that loses nothing."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def spin_until_signal(make_node: Callable[[], object], args: list[str] | None = None) -> int:
    """Spin make_node() until SIGINT/SIGTERM; returns the exit status (0).

    The signals only set a flag (rclpy's own handlers would invalidate the context while the
    node's workers still publish): the executor stops taking new input, node.stop() finishes
    the accepted work and saves, then the node is destroyed and ROS shut down."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    executor = MultiThreadedExecutor(num_threads=2)
    node = None
    try:
        node = make_node()  # a signal during start-up sets the flag: stop right after
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        if node is not None:
            executor.remove_node(node)
            node.stop()
        executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
