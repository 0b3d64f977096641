"""Pose-graph evaluation (core/evaluation/pose_graph.py): alignment, the covariance conversion to
GTSAM, and that verified loops pull a drifted trajectory back while false loops do not."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

gtsam = pytest.importorskip("gtsam")

from maqbool_ros.core.data.rgbd_sequence import trajectory  # noqa: E402
from maqbool_ros.core.evaluation import pose_graph as pg  # noqa: E402
from maqbool_ros.core.verification import geometry as geo  # noqa: E402


def test_ate_is_rigid_alignment_invariant():
    gt, _ = trajectory()
    A = geo.make_T(geo.transform_from_xyz_quat([0, 0, 0], [0.1, 0.2, 0.3, 1])[:3, :3], [5.0, -2.0, 1.0])
    moved = np.einsum("ij,njk->nik", A, gt)
    assert pg.ate_m(moved, gt) < 1e-9 and pg.rpe_m(moved, gt) < 1e-9
    shifted = moved.copy()
    shifted[10:, :3, 3] += [0.1, 0, 0]
    assert pg.ate_m(shifted, gt) > 0.01 and pg.rpe_m(shifted, gt) == pytest.approx(0.1 / np.sqrt(len(gt) - 1))


def test_covariance_conversion_matches_gtsam_tangent():
    rng = np.random.default_rng(1)
    T = geo.make_T(geo.transform_from_xyz_quat([0, 0, 0], rng.normal(size=4))[:3, :3], rng.normal(size=3))
    xi = rng.normal(size=6) * 1e-4  # GTSAM's [w, v] right perturbation
    P = T @ gtsam.Pose3.Expmap(xi).matrix()
    d = np.r_[P[:3, 3] - T[:3, 3], cv2.Rodrigues(P[:3, :3] @ T[:3, :3].T)[0].ravel()]  # ours [dt, dr]
    cov_ours = np.outer(d, d)
    np.testing.assert_allclose(pg._gtsam_cov(T, cov_ours), np.outer(xi, xi), atol=1e-14, rtol=1e-3)


def _records(gt, loops):
    out = []
    for q in range(len(gt)):
        hit = [(c, T, cov) for qq, c, T, cov in loops if qq == q]
        if not hit:
            out.append(SimpleNamespace(query_index=q, ranked=np.zeros(0, int), verified=np.zeros(0, bool),
                                       num_inliers=np.zeros(0, int)))
            continue
        c, T, cov = hit[0]
        out.append(SimpleNamespace(query_index=q, ranked=np.array([c]), verified=np.array([True]),
                                   num_inliers=np.array([100]), pose_types=["metric"], relative_poses=T[None],
                                   pose_covariances=cov[None]))
    return out


def test_loops_fix_drift_and_false_loops_do_not_break_it():
    gt, laps = trajectory()
    n1 = int(np.sum(laps == 1))
    cov = np.diag([0.005 ** 2] * 3 + [np.radians(0.2) ** 2] * 3)
    rng = np.random.default_rng(0)
    loops = []
    for q in range(n1, len(gt)):  # each lap-2 frame with the nearest lap-1 frame, measured with noise
        c = int(np.argmin(np.linalg.norm(gt[:n1, :3, 3] - gt[q, :3, 3], axis=1)))
        noise = rng.multivariate_normal(np.zeros(6), cov)
        T = np.linalg.inv(gt[q]) @ gt[c]
        loops.append((q, c, geo.make_T(cv2.Rodrigues(noise[3:])[0] @ T[:3, :3], T[:3, 3] + noise[:3]), cov))
    positives = [np.array([c for qq, c, _, _ in loops if qq == q], int) for q in range(len(gt))]
    ds = SimpleNamespace(poses=gt, kind="sequence", positives=positives)
    report, traj = pg.pose_graph_report(ds, _records(gt, loops))
    assert report["num_loops"] == len(loops) and report["num_false_loops"] == round(0.2 * len(loops))
    assert report["ate_after_m"] <= 0.3 * report["ate_before_m"]  # loops noisier than verified ones (5 mm)
    assert report["ate_after_with_false_loops_m"] <= 1.5 * report["ate_after_m"]
    assert set(traj) == {"ground_truth", "before", "after", "after_with_false_loops"}
    wrong = pg.false_loops(loops, positives, 7, 10)
    assert all(c not in positives[q] and q - c >= 10 for q, c, _, _ in wrong)


def test_pose_graph_needs_poses():
    with pytest.raises(ValueError, match="--pose-graph needs a sequence dataset with poses"):
        pg.pose_graph_report(SimpleNamespace(poses=None, kind="sequence"), [])
