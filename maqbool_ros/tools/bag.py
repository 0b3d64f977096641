"""`maqbool bag from-images | play | record-candidates`: ROS 2 bags without `ros2 bag`."""
from __future__ import annotations

import argparse

from maqbool_ros.tools.dataset_args import add_dataset_args
from maqbool_ros.tools.options import add_common_options, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bag", help="write a bag from an image dataset, replay a bag, record the node's candidates",
        description="ROS 2 bag tools that need no ROS install (rosbags + rclpy from PyPI). "
                    "from-images: dataset -> bag with ground truth embedded; play: bag -> live topics; "
                    "record-candidates: node output -> bag (then `maqbool eval --candidates`).")
    sub = p.add_subparsers(dest="bag_command", metavar="<bag command>", required=True)

    f = sub.add_parser("from-images", help="write an image dataset as a ROS 2 bag",
                       description="Write a dataset's images as one keyframe stream: the refs, then the queries "
                                   "(or a sequence's frames), header.frame_id = keyframe id (refs 0..R-1, queries "
                                   "R..R+Q-1), header.stamp = the dataset clock (index for query/ref). The ground "
                                   "truth is stored as JSON on /maqbool/ground_truth, so the bag alone is an "
                                   "evaluation dataset.")
    f.add_argument("--dataset", required=True, help="dataset folder (or bag) to convert")
    f.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    f.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="bag storage (default sqlite3)")
    f.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage instead of Image")
    f.add_argument("--format", choices=("jpeg", "png"), default="jpeg",
                   help="--compressed: jpeg (default) or lossless png")
    f.add_argument("--topic", default=None, help="image topic (default: the config's image_topic, /keyframes/image)")
    f.add_argument("--rate", type=float, default=10.0, help="keyframes per second of log time (default 10)")
    add_dataset_args(f)
    add_common_options(f)
    f.set_defaults(func=run_from_images)

    pl = sub.add_parser("play", help="replay a bag onto live topics with rclpy",
                        description="Publish a bag's messages (raw CDR, nothing re-encoded) at their recorded "
                                    "pace divided by --rate. ROS 1 bags are converted on the fly. With --config, the "
                                    "bag's image topic is published as that config's image_topic (the node's input) "
                                    "unless --topic-remap names it.")
    pl.add_argument("bag", help="bag to play")
    pl.add_argument("--rate", type=float, default=1.0, help="speed factor (2 = twice as fast; 0 = as fast as possible)")
    pl.add_argument("--topic-remap", action="append", default=[], metavar="OLD:=NEW",
                    help="publish topic OLD as NEW (repeatable)")
    pl.add_argument("--topics", nargs="+", default=None, help="play only these topics")
    pl.add_argument("--clock", type=float, nargs="?", const=40.0, default=None, metavar="HZ",
                    help="publish /clock with the bag's log time (for nodes with use_sim_time), HZ times "
                         "per second between messages (default 40) and before every message")
    pl.add_argument("--wait-subscribers", type=float, default=5.0,
                    help="seconds to wait for a subscriber on each image topic before starting (default 5)")
    add_common_options(pl)
    pl.set_defaults(func=run_play)

    r = sub.add_parser("record-candidates", help="record the node's LoopClosureCandidate output into a bag",
                       description="Subscribe to the candidates topic and store each message's bytes exactly as "
                                   "rclpy received them. Stops after --duration seconds, --count messages, or Ctrl-C.")
    r.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    r.add_argument("--topic", default=None,
                   help="candidates topic (default: the config's candidates_topic, /loop_closure/candidates)")
    r.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="bag storage")
    add_common_options(r)
    stop = r.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    stop.add_argument("--count", type=int, default=None, help="stop after this many messages")
    r.set_defaults(func=run_record)


def run_from_images(args: argparse.Namespace) -> int:
    from maqbool_ros.core.data.bags import write_dataset_bag
    from maqbool_ros.tools.dataset_args import open_dataset

    topic = args.topic or _absolute(config_from_args(args).image_topic)
    dataset = open_dataset(args)
    n = write_dataset_bag(dataset, args.out, storage=args.storage, topic=topic, compressed=args.compressed,
                          compressed_format=args.format, rate_hz=args.rate, progress=not args.quiet)
    kind = "CompressedImage/" + args.format if args.compressed else "Image"
    print(f"wrote {n} {kind} keyframes of {dataset.name} ({dataset.kind}) on {topic} to {args.out} ({args.storage})")


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic
    return 0


class _BackgroundSpin:
    """Spin a node in a thread; stop() shuts the executor down and joins the thread (a
    thread left inside rclpy at interpreter exit aborts the process)."""

    def __init__(self, node):
        import threading

        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)


def _spin_in_background(node) -> _BackgroundSpin:
    return _BackgroundSpin(node)


def config_remaps(topics: dict[str, str], remaps: dict[str, str], image_topic: str) -> dict[str, str]:
    """``remaps`` plus: each image topic of the bag not remapped explicitly -> the node's image_topic."""
    from maqbool_ros.core.data.bags import COMPRESSED_TYPE, IMAGE_TYPE

    node_topic = _absolute(image_topic)
    extra = {t: node_topic for t, ty in topics.items()
             if ty in (IMAGE_TYPE, COMPRESSED_TYPE) and t not in remaps and t != node_topic}
    return {**remaps, **extra}


def run_play(args: argparse.Namespace) -> int:
    import rclpy

    from maqbool_ros.core.data.bags import COMPRESSED_TYPE, IMAGE_TYPE, bag_topics
    from maqbool_ros.ros.bag_player import BagPlayer, parse_remaps

    remaps = parse_remaps(args.topic_remap)
    topics = bag_topics(args.bag)
    if args.config:  # feed the node that this config describes
        remaps = config_remaps(topics, remaps, config_from_args(args).image_topic)
    if args.clock is not None and "/clock" in topics and (args.topics is None or "/clock" in args.topics):
        raise ValueError(f"--clock: {args.bag} has its own /clock topic; play it without --clock")
    rclpy.init()
    node = rclpy.create_node("maqbool_bag_player")
    executor = _spin_in_background(node)
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, remaps=remaps, topics=args.topics, clock_hz=args.clock)
        for topic in args.topics or topics:
            if topic not in topics:
                raise ValueError(f"topic {topic} is not in {args.bag} (topics: {sorted(topics)})")
            # wait for the keyframe consumers only: nobody is expected on the ground-truth topic
            if topics[topic] in (IMAGE_TYPE, COMPRESSED_TYPE) and args.wait_subscribers > 0 \
                    and not player.wait_for_subscribers(topic, topics[topic], args.wait_subscribers):
                print(f"note: nothing subscribes to {remaps.get(topic, topic)} yet")
        from tqdm import tqdm

        with tqdm(desc="playing", unit="msg", disable=args.quiet) as bar:
            count = player.play(lambda _t, _i: bar.update())
        print(f"published {count} messages from {args.bag}")
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_record(args: argparse.Namespace) -> int:
    import time

    import rclpy

    from maqbool_ros.core.data.bags import CANDIDATE_TYPE, BagWriter
    from maqbool_ros.ros.recorder import CandidateRecorder

    if args.count is not None and args.count < 1:
        raise ValueError(f"--count: must be >= 1, got {args.count}")
    topic = _absolute(args.topic or config_from_args(args).candidates_topic)
    rclpy.init()
    node = rclpy.create_node("maqbool_candidate_recorder")
    recorder = CandidateRecorder(node, topic)
    executor = _spin_in_background(node)
    print(f"recording {topic} ... (Ctrl-C to stop)", flush=True)
    try:
        if args.count is not None:
            while not recorder.wait_for(args.count, 0.5):
                pass
        elif args.duration is not None:
            time.sleep(args.duration)
        else:
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    messages = list(recorder.messages)
    with BagWriter(args.out, args.storage) as writer:
        for t_ns, data in messages:
            writer.write_raw(topic, CANDIDATE_TYPE, t_ns, data)
    print(f"wrote {len(messages)} LoopClosureCandidate messages to {args.out}")
    return 0
