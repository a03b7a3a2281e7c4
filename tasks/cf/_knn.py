"""Item-item nearest neighbours through implicit's recommenders (part of :mod:`tasks.cf`).

On the binary matrix X of the active block (users x items), implicit 0.7.3
(``implicit/nearest_neighbours.py``, ``implicit/_nearest_neighbours.pyx``) computes

    W = the weighted matrix: cosine  W = X with every item column scaled to unit norm;
        tfidf  W = (tfidf_weight(X^T), item rows unit-normed)^T;
        bm25   W = bm25_weight(X^T, K1 = 1.2, B = 0.75)^T   (BM25Recommender's defaults)
    S = for each item i (row), the K = collab.knn_k largest entries of (W^T W)_i.
        (``all_pairs_knn``; i itself is one of them: cosine S_ii = 1)
    s_u = X_u S      (``NearestNeighboursScorer.recommend`` adds S_i. for each liked item i,
                      weighted by the user_items value: 1 here; it then zeroes the liked items,
                      which our callers do themselves.)

``all_pairs_knn`` is an OpenMP ``prange`` loop (the wheel's ``_nearest_neighbours.so`` links
libgomp), so the fit runs in the :class:`~tasks.cf.ImplicitWorker` process like ALS; the scoring
is a scipy sparse product in this process. S is kept as float32 (implicit uses float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.cf._interactions import binary
from tasks.cf._worker import ImplicitWorker
from tasks.profile import CollabSection

__all__ = ["fit_item_knn"]


def fit_item_knn(
    matrix: sp.csr_matrix, cfg: CollabSection, worker: ImplicitWorker
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """The item x item similarity S (float32 CSR, explicit zeros dropped) of the active block."""
    counts = binary(matrix)
    out = worker.run_job(
        "knn",
        {
            "counts.data": counts.data,
            "counts.indices": counts.indices,
            "counts.indptr": counts.indptr,
        },
        {"shape": list(counts.shape), "k": int(cfg.knn_k), "weighting": cfg.knn_weighting},
    )
    n = matrix.shape[1]
    similarity = sp.csr_matrix(
        (
            out["similarity.data"].astype(np.float32),
            out["similarity.indices"],
            out["similarity.indptr"],
        ),
        shape=(n, n),
    )
    similarity.eliminate_zeros()  # all_pairs_knn pads items with < K neighbours with (0, 0, 0.0)
    similarity.sort_indices()
    return similarity, {"knn_weighting": cfg.knn_weighting, "similarity_nnz": int(similarity.nnz)}
