"""What the verified loops do to a map (``maqbool eval --verify --pose-graph``; docs/evaluation.md).

Offline evaluation only (GTSAM is not a node dependency). A pose graph is built from

* odometry: the dataset's ground-truth steps T_i,i+1 perturbed by seeded noise
  ``T_i,i+1 Exp(xi)``, xi ~ N(0, diag(sigma_r^2 I3, sigma_t^2 I3)) in GTSAM's body-frame tangent
  [rx ry rz tx ty tz], sigma_r = :data:`ODOMETRY_SIGMA_RAD` per step and sigma_t =
  :data:`ODOMETRY_TRANSLATION_FRACTION` of the step's length (at least :data:`MIN_SIGMA_M`),
  integrated into the dead-reckoned "before" trajectory, each edge with exactly that covariance;
* loops: each query's best verified metric candidate (T_query_candidate and its 6x6 covariance
  from verification), under a Cauchy robust kernel;

and optimised with Levenberg-Marquardt. A second run adds false loops (a stated fraction of the
true ones): pairs that are not the same place, each carrying the pose and covariance of a real
verified loop (plausible, confident, wrong). ATE: RMSE of positions after a rigid (SE(3), no
scale) Umeyama alignment to ground truth; RPE: RMSE of the translation of the relative-pose error
between consecutive frames. Both as evo computes them (``evo_ape --align``, ``evo_rpe --delta 1``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from maqbool_ros.core.evaluation.verified import best_verified

ODOMETRY_SIGMA_RAD = np.radians(0.5)  # heading noise per step (a visual odometry's dominant drift)
ODOMETRY_TRANSLATION_FRACTION = 0.02  # 2 % of each step: a mediocre VO on KITTI's translation metric
MIN_SIGMA_M = 1e-3
FALSE_LOOP_FRACTION = 0.2
CAUCHY_K = 3.55  # ~ sqrt(chi2_6 95 %): a whitened loop error beyond it is progressively ignored
SEED = 7


def _gtsam_cov(T: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Our [dt, dr] left-perturbation covariance (geometry.py) in GTSAM's Pose3 tangent [w, v],
    a right perturbation T Exp([w, v]): dr = R w, dt = R v."""
    R = T[:3, :3]
    M = np.zeros((6, 6))
    M[:3, 3:] = R.T
    M[3:, :3] = R.T
    out = M @ cov @ M.T
    return (out + out.T) / 2


def umeyama_rigid(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R, t minimising |dst - (R src + t)| (Umeyama 1991, no scale)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((dst - mu_d).T @ (src - mu_s))
    S = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ S @ Vt
    return R, mu_d - R @ mu_s


def ate_m(est: np.ndarray, gt: np.ndarray) -> float:
    """Absolute trajectory error: position RMSE after rigid alignment."""
    R, t = umeyama_rigid(est[:, :3, 3], gt[:, :3, 3])
    return float(np.sqrt(np.mean(np.sum((est[:, :3, 3] @ R.T + t - gt[:, :3, 3]) ** 2, axis=1))))


def rpe_m(est: np.ndarray, gt: np.ndarray) -> float:
    """Relative pose error (translation RMSE) between consecutive frames."""
    err = [np.linalg.inv(np.linalg.inv(gt[i]) @ gt[i + 1]) @ (np.linalg.inv(est[i]) @ est[i + 1])
           for i in range(len(gt) - 1)]
    return float(np.sqrt(np.mean([np.sum(E[:3, 3] ** 2) for E in err])))


def odometry_sigmas(poses: np.ndarray) -> np.ndarray:
    """(N-1, 6) standard deviations [rx ry rz tx ty tz] of each odometry step (module doc)."""
    length = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    sigma_t = np.maximum(ODOMETRY_TRANSLATION_FRACTION * length, MIN_SIGMA_M)
    return np.column_stack([np.full((len(length), 3), ODOMETRY_SIGMA_RAD), np.repeat(sigma_t[:, None], 3, 1)])


def odometry(poses: np.ndarray, seed: int = SEED) -> tuple[list[np.ndarray], np.ndarray]:
    """Noisy steps and the dead-reckoned trajectory (starting at the true first pose)."""
    import gtsam

    rng = np.random.default_rng(seed)
    steps, traj = [], [poses[0]]
    for i, sigma in enumerate(odometry_sigmas(poses)):
        step = (np.linalg.inv(poses[i]) @ poses[i + 1]) @ gtsam.Pose3.Expmap(rng.normal(0, sigma)).matrix()
        steps.append(step)
        traj.append(traj[-1] @ step)
    return steps, np.stack(traj)


def verified_loops(records: Sequence[Any]) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(query, candidate, T_query_candidate, covariance) of each query's best verified metric loop."""
    out = []
    for r in records:
        j = best_verified(r)
        if j is None or r.pose_types[j] != "metric" or r.pose_covariances is None:
            continue
        out.append((int(r.query_index), int(r.ranked[j]), np.asarray(r.relative_poses[j]),
                    np.asarray(r.pose_covariances[j])))
    return out


def false_loops(loops: list, positives: Sequence[np.ndarray], num: int, min_gap: int,
                seed: int = SEED) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """``num`` wrong pairs (not ground-truth positives, at least min_gap frames apart), each with
    the pose and covariance of a randomly chosen real loop."""
    rng = np.random.default_rng(seed + 1)
    n = len(positives)
    out: list = []
    while len(out) < num and loops:
        q = int(rng.integers(min_gap, n))
        c = int(rng.integers(0, q - min_gap + 1))
        if c in set(int(p) for p in positives[q]):
            continue
        _, _, T, cov = loops[int(rng.integers(len(loops)))]
        out.append((q, c, T, cov))
    return out


def optimise(steps: list[np.ndarray], sigmas: np.ndarray, start: np.ndarray, initial: np.ndarray,
             loops: list) -> np.ndarray:
    """Levenberg-Marquardt on odometry (Gaussian) + loops (Cauchy); the first pose is fixed."""
    import gtsam

    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    graph.add(gtsam.PriorFactorPose3(0, gtsam.Pose3(start), gtsam.noiseModel.Isotropic.Sigma(6, 1e-6)))
    for i, step in enumerate(steps):
        graph.add(gtsam.BetweenFactorPose3(i, i + 1, gtsam.Pose3(step), gtsam.noiseModel.Diagonal.Sigmas(sigmas[i])))
    kernel = gtsam.noiseModel.mEstimator.Cauchy.Create(CAUCHY_K)
    for q, c, T, cov in loops:
        noise = gtsam.noiseModel.Robust.Create(kernel, gtsam.noiseModel.Gaussian.Covariance(_gtsam_cov(T, cov)))
        graph.add(gtsam.BetweenFactorPose3(q, c, gtsam.Pose3(T), noise))
    for i, P in enumerate(initial):
        values.insert(i, gtsam.Pose3(P))
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(200)
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    return np.stack([result.atPose3(i).matrix() for i in range(len(initial))])


def pose_graph_report(dataset: Any, records: Sequence[Any], false_fraction: float = FALSE_LOOP_FRACTION,
                      seed: int = SEED, min_gap: int = 10) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``pose_graph`` object of the eval report and the trajectories (gt, before, after,
    after_with_false_loops) for the plot."""
    gt = getattr(dataset, "poses", None)
    if gt is None or dataset.kind != "sequence":
        raise ValueError("--pose-graph needs a sequence dataset with poses (posed folders, synthetic-rgbd)")
    steps, before = odometry(gt, seed)
    loops = verified_loops(records)
    wrong = false_loops(loops, dataset.positives, int(round(false_fraction * len(loops))), min_gap, seed)
    sigmas = odometry_sigmas(gt)
    after = optimise(steps, sigmas, gt[0], before, loops)
    after_false = optimise(steps, sigmas, gt[0], before, loops + wrong)
    traj = {"ground_truth": gt, "before": before, "after": after, "after_with_false_loops": after_false}
    report = {
        "ate_before_m": ate_m(before, gt), "ate_after_m": ate_m(after, gt),
        "ate_after_with_false_loops_m": ate_m(after_false, gt),
        "rpe_before_m": rpe_m(before, gt), "rpe_after_m": rpe_m(after, gt),
        "rpe_after_with_false_loops_m": rpe_m(after_false, gt),
        "num_loops": len(loops), "num_false_loops": len(wrong), "false_loop_fraction": false_fraction,
        "odometry_sigma_deg": float(np.degrees(ODOMETRY_SIGMA_RAD)),
        "odometry_translation_fraction": ODOMETRY_TRANSLATION_FRACTION,
        "robust_kernel": f"cauchy k={CAUCHY_K}", "seed": seed,
    }
    return report, traj


def plot_trajectories(traj: dict[str, np.ndarray], path: str) -> None:
    """Top view (the ground truth's two widest axes) of the trajectories, written atomically to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maqbool_ros.core.atomic import atomic_target

    a, b = sorted(np.argsort(np.ptp(traj["ground_truth"][:, :3, 3], axis=0))[-2:])  # the two widest axes
    fig, ax = plt.subplots(figsize=(6, 5))
    styles = {"ground_truth": "k-", "before": "r--", "after": "g-", "after_with_false_loops": "b:"}
    for name, T in traj.items():
        ax.plot(T[:, a, 3], T[:, b, 3], styles[name], label=name.replace("_", " "))
    ax.set_aspect("equal")
    ax.set_xlabel(f"{'xyz'[a]} [m]")
    ax.set_ylabel(f"{'xyz'[b]} [m]")
    ax.legend(loc="best", fontsize=8)
    with atomic_target(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
