"""Building a landmark vocabulary (offline wing, `maqbool build-vocab`): k-means words + IDF. The
runtime only loads one (vocab.Vocabulary.load)."""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.rerank.landmarks.vocab import Vocabulary, idf_weights


def train_vocabulary(image_vectors: list[np.ndarray], num_words: int, *, niter: int = 20, nredo: int = 1,
                     seed: int = 0, max_points: int = 2_000_000, verbose: bool = False) -> Vocabulary:
    """k-means vocabulary + IDF from per-image (m_i, D) region vectors.

    nredo: k-means restarts (the best objective is kept). max_points caps the k-means training sample (a seeded
    random subset); every image's regions are still assigned to count the document frequencies.
    """
    import faiss

    image_vectors = [np.asarray(v, dtype=np.float32) for v in image_vectors]
    if not image_vectors:
        raise ValueError("image_vectors: no images given")
    data = np.ascontiguousarray(np.concatenate(image_vectors, axis=0))
    if len(data) < num_words:
        raise ValueError(f"words: {num_words} words need at least as many region vectors, "
                         f"got {len(data)} (use fewer words or more images)")
    rng = np.random.default_rng(seed)
    sample = data if len(data) <= max_points else data[rng.choice(len(data), max_points, replace=False)]
    kmeans = faiss.Kmeans(data.shape[1], num_words, niter=niter, nredo=nredo, seed=seed, verbose=verbose,
                          max_points_per_centroid=max(256, len(sample) // num_words + 1))
    kmeans.train(np.ascontiguousarray(sample))
    vocab = Vocabulary(kmeans.centroids, np.zeros(num_words, dtype=np.float32), 0)
    idf, k = idf_weights((vocab.assign(v) for v in image_vectors), num_words)
    return Vocabulary(kmeans.centroids, idf, k)
