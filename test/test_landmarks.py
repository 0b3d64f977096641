"""ConvNet landmarks: mining, pooling, boxes, matching and vocabulary against naive references."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from maqbool_ros.core.rerank.landmarks import (
    Vocabulary,
    idf_weights,
    landmark_boxes,
    match_batch,
    mine_regions,
    pool_regions,
)
from maqbool_ros.core.rerank.landmarks.vocab_fit import train_vocabulary


def seeded_maps(seed: int, c: int = 24, h: int = 9, w: int = 11, d2: int = 7):
    """Sparse ReLU-like guidance maps (several blobs per channel) and local features."""
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.standard_normal((c, h, w)) - 0.8, 0).astype(np.float32)
    a[1] += 0.5  # a channel with no zeros: binarisation must use its minimum, not 0
    x = rng.standard_normal((d2, h, w)).astype(np.float32)
    return a, x


def reference_components(a: np.ndarray):
    """Per-channel labelling with explicit loops: list of (channel, energy, rect, pixel mask)."""
    comps = []
    for c in range(a.shape[0]):
        labels, n = ndimage.label(a[c] > a[c].min(), structure=np.ones((3, 3)))
        for j in range(1, n + 1):
            pix = np.argwhere(labels == j)
            energy = np.mean([a[c, r, q] for r, q in pix])
            rect = (pix[:, 0].min(), pix[:, 1].min(), pix[:, 0].max(), pix[:, 1].max())
            comps.append((c, energy, rect, labels == j))
    return comps


def reference_top(comps, m):
    energies = np.array([e for _, e, _, _ in comps])
    if len(comps) > m:
        tau = sorted(energies, reverse=True)[m - 1]
        comps = [comp for comp in comps if comp[1] >= tau]
    return sorted(comps, key=lambda comp: -comp[1])  # stable: channel/label order on ties


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_regions", [5, 40, 10_000])
def test_mining_matches_per_channel_reference(seed, max_regions):
    a, _ = seeded_maps(seed)
    comps = reference_components(a)
    top = reference_top(comps, max_regions)
    regions = mine_regions(a, max_regions)
    assert regions.num_components == len(comps)
    assert len(regions) == len(top)
    np.testing.assert_array_equal(regions.channels, [c for c, _, _, _ in top])
    np.testing.assert_allclose(regions.energies, [e for _, e, _, _ in top], rtol=1e-5)
    np.testing.assert_array_equal(regions.rects, [r for _, _, r, _ in top])
    assert np.all(np.diff(regions.energies) <= 0)


def test_mining_keeps_ties_and_shortfall():
    a = np.zeros((4, 6, 6), dtype=np.float32)
    a[0, 0, 0] = a[1, 2, 2] = a[2, 4, 4] = 1.0  # three clusters with equal energy
    a[3, 1:3, 1:3] = 2.0
    assert len(mine_regions(a, 2)) == 4  # the 2nd energy (1.0) is shared by three clusters
    assert len(mine_regions(a, 2, keep_ties=False)) == 2
    assert len(mine_regions(a, 100)) == 4  # fewer clusters than M: all of them
    diag = np.zeros((1, 4, 4), dtype=np.float32)
    diag[0, [0, 1, 2], [0, 1, 2]] = 1.0  # diagonal pixels: one cluster with 8-connectivity
    assert mine_regions(diag, 10).num_components == 1


@pytest.mark.parametrize("support", ["rect", "component"])
@pytest.mark.parametrize("seed", [3, 4])
def test_pooling_matches_loops(seed, support):
    a, x = seeded_maps(seed)
    regions = mine_regions(a, 30)
    top = reference_top(reference_components(a), 30)
    pooled = pool_regions(regions, a, x, support)
    for t, (c, _, (r0, q0, r1, q1), comp_mask) in enumerate(top):
        ref = np.zeros(x.shape[0])
        for r in range(r0, r1 + 1):
            for q in range(q0, q1 + 1):
                if support == "rect" or comp_mask[r, q]:
                    ref += a[c, r, q] * x[:, r, q]
        ref /= np.linalg.norm(ref)
        np.testing.assert_allclose(pooled[t], ref, rtol=1e-4, atol=1e-5)


def test_pooling_rejects_mismatched_maps():
    a, x = seeded_maps(0)
    with pytest.raises(ValueError, match="features"):
        pool_regions(mine_regions(a, 5), a, x[:, :-1])
    with pytest.raises(ValueError, match="support"):
        pool_regions(mine_regions(a, 5), a, x, "blob")


def test_landmark_boxes_dedup_filter_pad():
    a = np.zeros((5, 8, 10), dtype=np.float32)
    a[0, 1:4, 2:5] = 3.0   # box x=2, y=1, w=3, h=3 ...
    a[1, 1:4, 2:5] = 1.0   # ... the same rectangle again, lower energy: removed
    a[2, 5:8, 0:2] = 2.0   # x=0, y=5, w=2, h=3
    a[3, 0, 9] = 9.0       # 1x1: below min_cells
    boxes, areas, energies = landmark_boxes(a, stride=16, max_boxes=4)
    np.testing.assert_array_equal(boxes, [[2, 1, 3, 3], [0, 5, 2, 3], [0, 0, 10, 8], [0, 0, 10, 8]])
    np.testing.assert_allclose(areas, 256 * np.array([9, 6, 80, 80]))
    np.testing.assert_allclose(energies, [3.0, 2.0, 0.0, 0.0])
    boxes, _, _ = landmark_boxes(a, stride=16, max_boxes=4, pad=False, min_cells=1)
    assert boxes.tolist() == [[9, 0, 1, 1], [2, 1, 3, 3], [0, 5, 2, 3]]


def brute_force_scores(q, wq, cands, wcs, counts):
    out = []
    for c, wc, n in zip(cands, wcs, counts):
        c = c[:n].astype(np.float64)
        total = 0.0
        for i in range(len(q)):
            sims_i = [float(np.dot(q[i], c[j])) for j in range(len(c))]
            if not sims_i:
                continue
            j = int(np.argmax(sims_i))
            back = [float(np.dot(q[ii], c[j])) for ii in range(len(q))]
            if int(np.argmax(back)) == i and sims_i[j] != 0:
                total += sims_i[j] * wq[i] * wc[j]
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutual_matching_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    d, m, big_m, k = 6, 9, 12, 7
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    q = unit(rng.standard_normal((m, d))).astype(np.float32)
    cands = unit(rng.standard_normal((k, big_m, d))).astype(np.float16).astype(np.float32)
    cands[2, :4] = q[:4]  # exact copies: certain mutual matches
    counts = np.array([12, 0, 12, 5, 1, 12, 8])
    wq = rng.uniform(0.5, 2, m).astype(np.float32)
    wcs = rng.uniform(0.5, 2, (k, big_m)).astype(np.float32)
    for n_i, n in enumerate(counts):
        cands[n_i, n:] = 0  # padding rows as the database stores them
        wcs[n_i, n:] = 0
    ref = brute_force_scores(q, wq, cands, wcs, counts)
    got = match_batch(q, wq, cands.astype(np.float16), wcs, counts)
    np.testing.assert_allclose(got.q, ref, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(got.q_mean, ref / m, rtol=2e-3, atol=1e-5)
    assert got.q[1] == 0 and got.matches[1] == 0
    assert got.matches[2] >= 4


def test_idf_formula():
    idf, k = idf_weights([np.array([0, 0, 1]), np.array([1, 2]), np.array([1])], num_words=4)
    assert k == 3
    np.testing.assert_allclose(idf, [np.log(3 / 1), np.log(3 / 3), np.log(3 / 1), np.log(3 / 1)])
    with pytest.raises(ValueError, match="words"):
        idf_weights([np.array([4])], num_words=4)


def test_vocabulary_train_save_load(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 8)).astype(np.float32) * 5
    images = [centres[rng.integers(0, 4, 30)] + 0.01 * rng.standard_normal((30, 8)).astype(np.float32)
              for _ in range(10)]
    vocab = train_vocabulary(images, 4, niter=10, nredo=5)
    words = vocab.assign(centres)
    assert sorted(words.tolist()) == [0, 1, 2, 3]  # each true centre gets its own word
    path = tmp_path / "vocab.npz"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    np.testing.assert_array_equal(loaded.centroids, vocab.centroids)
    np.testing.assert_array_equal(loaded.idf, vocab.idf)
    assert loaded.num_images == 10
    np.testing.assert_array_equal(loaded.assign(images[0]), vocab.assign(images[0]))
    with pytest.raises(FileNotFoundError, match="vocab_path"):
        Vocabulary.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", centroids=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="bad.npz"):
        Vocabulary.load(tmp_path / "bad.npz")


def test_word_assignment_matches_brute_force():
    rng = np.random.default_rng(5)
    centroids = rng.standard_normal((37, 6)).astype(np.float32)
    vocab = Vocabulary(centroids, np.ones(37), 1)
    vectors = np.vstack([rng.standard_normal((50, 6)).astype(np.float32), centroids[[3, 17]]])
    ref = [int(np.argmin([np.sum((v.astype(np.float64) - c) ** 2) for c in centroids])) for v in vectors]
    np.testing.assert_array_equal(vocab.assign(vectors), ref)
    words, weights = vocab.weights(vectors[:4])
    np.testing.assert_array_equal(weights, vocab.idf[words])
    with pytest.raises(ValueError, match="vectors"):
        vocab.assign(np.zeros((2, 5), np.float32))


def argmax_reference(q, wq, cands, wcs, counts):
    """match_batch as written before its scratch buffers (fresh arrays every call)."""
    c = np.asarray(cands).astype(np.float32)
    k, big_m, _ = c.shape
    m = len(q)
    sims = (c.reshape(k * big_m, -1) @ np.asarray(q, np.float32).T).reshape(k, big_m, m)
    for row in range(k):
        sims[row, counts[row]:, :] = -np.inf
    best_j, best_i = sims.argmax(axis=1), sims.argmax(axis=2)
    mutual = np.take_along_axis(best_i, best_j, axis=1) == np.arange(m)[None, :]
    s = np.take_along_axis(sims, best_j[:, None, :], axis=1)[:, 0, :]
    keep = mutual & np.isfinite(s) & (s != 0)
    contrib = np.where(keep, s, 0.0) * wq[None, :] * np.asarray(wcs, np.float32)[np.arange(k)[:, None], best_j]
    total = contrib.sum(axis=1, dtype=np.float64)
    return total.astype(np.float32), (total / m).astype(np.float32), keep.sum(axis=1)


def _matching_case(seed, k, big_m, m, d=16, dtype=np.float16):
    rng = np.random.default_rng(seed)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    q = unit(rng.standard_normal((m, d))).astype(np.float32)
    q[0] = 0  # a zero query vector: a column of exact ties
    cands = unit(rng.standard_normal((k, big_m, d))).astype(dtype)
    cands[0, 1] = cands[0, 2]  # duplicate rows: tied maxima
    counts = rng.integers(0, big_m + 1, k)
    wq = rng.uniform(0.5, 2, m).astype(np.float32)
    wcs = rng.uniform(0.5, 2, (k, big_m)).astype(np.float32)
    return q, wq, cands, wcs, counts


def test_matching_scratch_buffers_are_bit_identical_and_not_aliased():
    """Reused scratch buffers (large, small, large calls) change no bit and never leak into results."""
    cases = [_matching_case(0, 30, 40, 50), _matching_case(1, 3, 5, 7), _matching_case(2, 30, 40, 50, dtype=np.float32),
             _matching_case(3, 12, 60, 20, d=8)]
    results = [match_batch(*case) for case in cases]
    for case, got in zip(cases, results):  # compared after all calls: earlier results must survive
        ref_q, ref_mean, ref_n = argmax_reference(*case)
        np.testing.assert_array_equal(got.q, ref_q)
        np.testing.assert_array_equal(got.q_mean, ref_mean)
        np.testing.assert_array_equal(got.matches, ref_n)


def test_matching_from_two_threads_matches_sequential_results():
    import threading

    cases = [_matching_case(s, 20, 30, 25) for s in range(2)]
    expected = [argmax_reference(*case)[0] for case in cases]
    failures = []

    def work(i):
        for _ in range(30):
            if not np.array_equal(match_batch(*cases[i]).q, expected[i]):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
