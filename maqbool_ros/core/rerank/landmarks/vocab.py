"""Visual-word vocabulary of landmark region vectors with IDF weights (docs/method-reference.md, L3.5).

Words are k-means centroids (faiss.Kmeans, Euclidean); a region's word is its nearest
centroid. W_c = ln(K / max(n_c, 1)) where K is the number of training images and n_c the
number of those images with at least one region in word c. The paper writes log, the
authors' code uses log10; the base scales every score by one constant, so rankings do
not change (we use the natural log, as the paper and the issue write it).

Files are plain .npz (no pickles): centroids (N, D) float32, idf (N,) float32,
num_images () int64, format () str.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maqbool_ros.core.rerank.blas import single_thread_blas

FORMAT = "maqbool-landmark-vocab-v1"


def idf_weights(image_words: Iterable[np.ndarray], num_words: int) -> tuple[np.ndarray, int]:
    """IDF weights from per-image word ids: (W (num_words,) float32, K images)."""
    doc_freq = np.zeros(num_words, dtype=np.int64)
    num_images = 0
    for words in image_words:
        words = np.asarray(words, dtype=np.int64)
        if words.size and (words.min() < 0 or words.max() >= num_words):
            raise ValueError(f"words: ids must lie in [0, {num_words}), got {words.min()}..{words.max()}")
        doc_freq[np.unique(words)] += 1
        num_images += 1
    if num_images == 0:
        raise ValueError("image_words: no images given")
    return np.log(num_images / np.maximum(doc_freq, 1)).astype(np.float32), num_images


@dataclass
class Vocabulary:
    """centroids (N, D) float32, idf (N,) float32, num_images K used for the IDF."""

    centroids: np.ndarray
    idf: np.ndarray
    num_images: int

    def __post_init__(self) -> None:
        self.centroids = np.ascontiguousarray(self.centroids, dtype=np.float32)
        self.idf = np.asarray(self.idf, dtype=np.float32)
        if self.centroids.ndim != 2 or self.idf.shape != (self.centroids.shape[0],):
            raise ValueError(f"vocabulary: centroids {self.centroids.shape} and idf {self.idf.shape} "
                             "do not agree (expected (N, D) and (N,))")
        self._sq_norms: np.ndarray | None = None

    @property
    def num_words(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """(m, D) vectors -> (m,) int32 nearest-centroid ids (Euclidean)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors: expected (m, {self.dim}) to match the vocabulary, got {vectors.shape}")
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int32)
        # Brute force in numpy: argmin ||v - c||^2 = argmin (||c||^2 - 2 v.c); np.argmin keeps
        # the first index on ties. Cheaper than a faiss index call for a few hundred vectors.
        if self._sq_norms is None:
            self._sq_norms = np.einsum("nd,nd->n", self.centroids, self.centroids)
        ids = np.empty(len(vectors), dtype=np.int32)
        step = max(1, 2_000_000 // self.num_words)  # bounds the (rows, N) distance block
        with single_thread_blas():  # per keyframe beside the network worker (see rerank/blas.py)
            for start in range(0, len(vectors), step):
                block = vectors[start:start + step]
                ids[start:start + step] = np.argmin(self._sq_norms[None, :] - 2.0 * (block @ self.centroids.T),
                                                    axis=1)
        return ids

    def weights(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(words (m,) int32, IDF weights (m,) float32) for region vectors."""
        words = self.assign(vectors)
        return words, self.idf[words]

    def save(self, path: str | Path) -> None:
        """Write a pickle-free .npz."""
        with open(path, "wb") as fh:  # a file object keeps the exact name (no .npz appended)
            np.savez(fh, centroids=self.centroids, idf=self.idf,
                     num_images=np.int64(self.num_images), format=np.str_(FORMAT))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a file written by :meth:`save` (never unpickles)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocab_path: {path} does not exist (build one with `maqbool build-vocab`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise ValueError(f"{path}: format {str(data['format'])!r} is not {FORMAT!r}")
                return cls(data["centroids"], data["idf"], int(data["num_images"]))
        except (KeyError, OSError) as exc:
            raise ValueError(f"{path}: not a landmark vocabulary file ({exc})") from exc
