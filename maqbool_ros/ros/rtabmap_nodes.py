"""RTAB-Map's messages for the bridge (maqbool_ros/ros/rtabmap_bridge.py): the lazy rtabmap_msgs
import, and one map node (rtabmap_msgs/Node with its SensorData) as a maqbool_ros/Keyframe."""
from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from maqbool_ros.core.integration.rtabmap_data import DepthFormatError, decode_depth, image_format
from maqbool_ros.core.verification.geometry import transform_from_xyz_quat
from maqbool_ros.msg import Keyframe
from maqbool_ros.ros.conversions import seconds_to_stamp


class RtabmapMsgsMissing(ImportError):
    """rtabmap_msgs (RTAB-Map's ROS interfaces) is not importable."""


def import_rtabmap_msgs() -> SimpleNamespace:
    """The rtabmap_msgs types the bridge uses; RtabmapMsgsMissing naming the package when absent."""
    try:
        from rtabmap_msgs.msg import Info, MapData
        from rtabmap_msgs.srv import AddLink, GetMap
    except ImportError as exc:
        raise RtabmapMsgsMissing(
            "maqbool-rtabmap-bridge needs the ROS 2 package rtabmap_msgs (RTAB-Map's interfaces), which is not "
            f"importable ({exc}). Install RTAB-Map for your ROS distribution (e.g. apt install "
            "ros-$ROS_DISTRO-rtabmap-msgs) or source the workspace that builds it.") from exc
    return SimpleNamespace(Info=Info, MapData=MapData, AddLink=AddLink, GetMap=GetMap)


def transform_matrix(t) -> np.ndarray | None:
    """geometry_msgs/Transform -> 4x4, None for RTAB-Map's null transform (all zeros)."""
    q = t.rotation
    if abs(q.x) + abs(q.y) + abs(q.z) + abs(q.w) < 1e-12:
        return None
    return transform_from_xyz_quat([t.translation.x, t.translation.y, t.translation.z], [q.x, q.y, q.z, q.w])



def node_keyframe(node, kf_id: int, robot_id: str, map_id: str,
                  depth_error: Callable[[str], object]) -> Keyframe | None:
    """The Keyframe of an RTAB-Map node (docs/rtabmap.md, "Nodes -> keyframes"); None when the node
    carries no image. depth_error(text) is told about depth that cannot be decoded (sent without)."""
    data = node.data
    kf = Keyframe(keyframe_id=int(kf_id), robot_id=robot_id, map_id=map_id)
    kf.header.stamp = seconds_to_stamp(float(node.stamp))
    kf.header.frame_id = data.header.frame_id
    if len(data.left_compressed):
        raw = bytes(data.left_compressed)
        kf.compressed_image = CompressedImage(header=kf.header, format=image_format(raw), data=raw)
    elif len(data.left.data):
        kf.image = data.left
    else:
        return None
    if len(data.left_camera_info):
        kf.camera_info = data.left_camera_info[0]
    if not len(data.right_camera_info):  # right = depth (RGB-D), not a stereo right image
        kf.depth = depth_image(int(node.id), data, kf.header, depth_error)
    return kf


def depth_image(node_id: int, data, header, depth_error: Callable[[str], object]) -> Image:
    """The node's depth as a sensor_msgs/Image (raw right image, or right_compressed decoded)."""
    if len(data.right.data):
        return data.right
    if not len(data.right_compressed):
        return Image()
    try:
        depth = decode_depth(bytes(data.right_compressed))
    except DepthFormatError as exc:
        depth_error(f"node {node_id}: {exc}; keyframe sent without depth")
        return Image()
    encoding = "16UC1" if depth.dtype == np.uint16 else "32FC1"
    return Image(header=header, height=depth.shape[0], width=depth.shape[1], encoding=encoding,
                 step=depth.shape[1] * depth.itemsize, data=depth.tobytes())
