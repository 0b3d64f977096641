"""A TF-like frame tree read from a bag: static edges (/tf_static) and time series of dynamic
edges (/tf, or a pose topic), looked up as ``world_T_frame`` at given stamps.

As in tf2, each frame has one parent; a lookup walks up from the frame to the requested
world frame (which must be one of its ancestors: the map -> odom -> base_link -> camera tree
of a robot) and composes the edges, each dynamic edge interpolated at the stamp (linear in
translation, slerp in rotation, trajectory_files.interpolate_poses) when its two neighbouring
samples are at most ``max_gap_s`` apart. Lookups through a sibling branch (down from a common
ancestor other than the world frame) are not supported: name an ancestor as the world frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maqbool_ros.core.data.trajectory_files import interpolate_poses
from maqbool_ros.core.verification.geometry import transform_from_xyz_quat


def pose_matrix(position, orientation, where: str) -> np.ndarray:
    """4x4 from a geometry_msgs Point/Vector3 and Quaternion; ValueError naming ``where`` when a
    value is not finite or the quaternion is zero."""
    xyz = np.array([position.x, position.y, position.z], dtype=np.float64)
    q = np.array([orientation.x, orientation.y, orientation.z, orientation.w], dtype=np.float64)
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(q))):
        raise ValueError(f"{where}: pose is not finite (position {xyz.tolist()}, orientation xyzw {q.tolist()})")
    if np.linalg.norm(q) < 1e-6:
        raise ValueError(f"{where}: orientation quaternion is zero")
    return transform_from_xyz_quat(xyz, q)


@dataclass
class _Dynamic:
    parent: str
    source: str  # the topic the samples came from, for messages
    stamps: list[float] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)


@dataclass
class FrameTree:
    """parent_T_child edges; a child's latest-added parent wins (a pose topic replaces /tf)."""

    static: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    dynamic: dict[str, _Dynamic] = field(default_factory=dict)

    def add_static(self, parent: str, child: str, T: np.ndarray) -> None:
        self.dynamic.pop(child, None)
        self.static[child] = (parent, T)

    def add_dynamic(self, parent: str, child: str, stamp: float, T: np.ndarray, source: str) -> None:
        if child in self.static:
            return  # a static transform re-sent on /tf: the static one stands
        edge = self.dynamic.get(child)
        if edge is None:
            edge = self.dynamic[child] = _Dynamic(parent, source)
        elif edge.source != source:
            return  # the first source of a child's pose (the pose topic, added before /tf) stands
        elif edge.parent != parent:
            raise ValueError(f"{source}: frame {child!r} has two parents, {edge.parent!r} and {parent!r}")
        edge.stamps.append(float(stamp))
        edge.poses.append(T)

    def parent(self, frame: str) -> str | None:
        if frame in self.static:
            return self.static[frame][0]
        edge = self.dynamic.get(frame)
        return edge.parent if edge is not None else None

    def frames(self) -> list[str]:
        known = set(self.static) | set(self.dynamic)
        return sorted(known | {p for p in map(self.parent, known) if p is not None})

    def chain(self, frame: str, world: str | None = None) -> list[str]:
        """Frames from ``frame`` up to ``world`` (both included), or to the root when world is None."""
        out = [frame]
        while out[-1] != world:
            up = self.parent(out[-1])
            if up is None:
                if world is None:
                    return out
                raise ValueError(f"frame {world!r} is not above {frame!r} in the transform tree (its chain: "
                                 f"{' -> '.join(out)}; frames: {self.frames()})")
            if up in out:
                raise ValueError(f"the transform tree has a cycle: {' -> '.join([*out, up])}")
            out.append(up)
        return out

    def lookup(self, world: str, frame: str, stamps: np.ndarray, max_gap_s: float) -> np.ndarray:
        """(N, 4, 4) world_T_frame at the stamps; NaN where a dynamic edge has no samples within
        max_gap_s around the stamp."""
        stamps = np.asarray(stamps, dtype=np.float64)
        out = np.broadcast_to(np.eye(4), (len(stamps), 4, 4)).copy()
        path = self.chain(frame, world)
        for child in path[:-1]:  # compose upwards: parent_T_child @ (child_T_frame so far)
            if child in self.static:
                edge = np.broadcast_to(self.static[child][1], out.shape)
            else:
                d = self.dynamic[child]
                edge = interpolate_poses(stamps, np.asarray(d.stamps), np.stack(d.poses), max_gap_s)
            out = edge @ out
        return out

    def dynamic_span(self, world: str, frame: str) -> tuple[float, float, list[str]]:
        """(first, last) stamp covered by every dynamic edge between frame and world, and their sources."""
        path = self.chain(frame, world)
        dyn = [self.dynamic[c] for c in path[:-1] if c in self.dynamic]
        if not dyn:
            return -np.inf, np.inf, []
        return (max(min(d.stamps) for d in dyn), min(max(d.stamps) for d in dyn),
                sorted({d.source for d in dyn}))
