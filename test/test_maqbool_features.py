"""MAQBOOL equations 1-10: the vectorised features against a direct loop implementation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM, correlation_distances, list_softmax, pairwise_features


def unit(rng, *shape):
    x = rng.normal(size=shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def loop_features(Fq, aq, Fc, ac, d, beta=10.0):
    """M5 (docs/method-reference.md) written out with plain loops, one candidate at a time."""
    K, rows = len(d), len(Fq)
    d_max, d_min = max(d), d[0]
    denom = sum(math.exp(-dk) for dk in d)
    out = []
    for j in range(K):
        C = [[sum((Fq[x][p] - Fc[j][y][p]) ** 2 for p in range(len(Fq[x]))) for y in range(10)]
             for x in range(rows)]                                            # eq. 1
        Cf = [[C[x][y] - d_max for y in range(10)] for x in range(rows)]     # eq. 2
        Cfilt = [[C[x][y] if Cf[x][y] < 0 else 0.0 for y in range(10)] for x in range(rows)]  # eqs 3-4
        R0 = 0.0 if j == 0 else d[j] - d[j - 1]
        def Pb(a):
            return math.exp(-(1 - a))                                         # eq. 6
        S = [[beta * math.exp(-R0) * math.exp(-(d_min + Cfilt[x][y])) * Pb(aq[x]) * Pb(ac[j][y])
              for y in range(10)] for x in range(rows)]                       # eq. 5
        Pf = [[S[x][y] * Cf[x][y] for y in range(10)] for x in range(rows)]  # eq. 7
        PSC = [[0.0] * 10 for _ in range(10)]
        Cs = [[0.0] * 10 for _ in range(10)]
        for y in range(10):
            ranks = sorted(range(1, rows), key=lambda x: (C[x][y], x))       # stable ascending
            for r in range(10):
                PSC[r][y] = Pf[ranks[r]][y]
                Cs[r][y] = Cfilt[ranks[r]][y]
        pos = [v for row in Cs for v in row if v > 0]
        c_min = min(pos) if pos else 0.0
        PSM = math.exp(-c_min) * math.exp(-d[j]) / denom                      # eq. 8
        M = [[PSM * PSC[r][y] for y in range(10)] for r in range(10)]         # eq. 9
        out.append([d[j], R0] + C[0][:10] + [v for row in M for v in row])   # eq. 10
    return np.array(out)


def make_case(seed, K=7, n=14, P=12):
    rng = np.random.default_rng(seed)
    Fq = unit(rng, 1 + n, P)
    Fc = unit(rng, K, 10, P)
    near = Fq[4] + 0.05 * unit(rng, P)
    Fc[2, 3] = near / np.linalg.norm(near)  # a near-duplicate region (small positive distance)
    aq = np.concatenate([[1.0], rng.uniform(0.35, 1.0, n)])
    ac = np.concatenate([np.ones((K, 1)), rng.uniform(0.35, 1.0, (K, 9))], axis=1)
    d = np.sort(rng.uniform(0.3, 1.6, K))
    return Fq, aq, Fc, ac, d


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_features_match_loop_reference(seed):
    Fq, aq, Fc, ac, d = make_case(seed)
    ref = loop_features(Fq.tolist(), aq.tolist(), Fc.tolist(), ac.tolist(), d.tolist())
    C = correlation_distances(Fq, Fc)
    got = pairwise_features(C, aq, ac, d)
    assert got.shape == (len(d), FEATURE_DIM) == ref.shape
    np.testing.assert_allclose(got[:, 0], ref[:, 0], rtol=1e-6)             # d_c
    np.testing.assert_allclose(got[:, 1], ref[:, 1], rtol=1e-5, atol=1e-7)  # R0
    np.testing.assert_allclose(got[:, 2:12], ref[:, 2:12], atol=1e-5)       # eq. 1 / 10: C[0, 0..9]
    np.testing.assert_allclose(got[:, 12:], ref[:, 12:], rtol=1e-4, atol=1e-8)  # eqs 2-9: M


def test_eq1_correlation_is_squared_l2():
    Fq, _, Fc, _, _ = make_case(3)
    C = correlation_distances(Fq, Fc)
    brute = ((Fq[None, :, None, :] - Fc[:, None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(C, brute, atol=1e-5)
    assert C[2, 4, 3] < 0.01


def test_subset_of_candidates_gives_the_same_rows():
    """Deadline chunks: a candidate's feature depends on the list, not on the chunk."""
    Fq, aq, Fc, ac, d = make_case(4)
    full = pairwise_features(correlation_distances(Fq, Fc), aq, ac, d)
    idx = np.array([3, 5])
    part = pairwise_features(correlation_distances(Fq, Fc[idx]), aq, ac[idx], d, idx)
    np.testing.assert_allclose(part, full[idx], rtol=1e-5, atol=1e-7)


def test_c_min_is_zero_when_everything_is_filtered():
    """All region distances >= d_max: C_filt is 0, c_min = 0, Pf = S * C_f >= 0."""
    Fq, aq, Fc, ac, _ = make_case(5, K=3)
    d = np.array([0.01, 0.02, 0.03])
    got = pairwise_features(correlation_distances(Fq, Fc), aq, ac, d)
    ref = loop_features(Fq.tolist(), aq.tolist(), Fc.tolist(), ac.tolist(), d.tolist())
    np.testing.assert_allclose(got[:, 12:], ref[:, 12:], rtol=1e-4, atol=1e-9)


def test_softmax_is_stable_for_large_distances():
    s = list_softmax(np.array([1000.0, 1001.0]))
    np.testing.assert_allclose(s, [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))])


def test_too_few_query_rows_is_an_error():
    Fq, aq, Fc, ac, d = make_case(6, n=5)
    with pytest.raises(ValueError, match="C: expected"):
        pairwise_features(correlation_distances(Fq, Fc), aq, ac, d)
