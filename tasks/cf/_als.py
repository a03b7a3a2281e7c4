"""Implicit-feedback ALS through the ``implicit`` library (part of :mod:`tasks.cf`).

Model (Hu, Koren & Volinsky 2008): every kept pair is a positive, ``p_ui = 1``, with confidence
``c_ui = 1 + confidence_alpha * w_ui``; every other pair has ``p_ui = 0, c_ui = 1``. Minimises
``sum_ui c_ui (p_ui - x_u . y_i)^2 + regularization (sum_u |x_u|^2 + sum_i |y_i|^2)`` with
``factors`` factors and ``iterations`` sweeps (implicit's conjugate-gradient solver), factors
initialised from ``random_state = seed``. Score ``s_ui = x_u . y_i``.

The weight ``w_ui`` (``collab.confidence``), on the active block of X:

- ``binary``: 1;  ``linear``: ``r_ui``;  ``log``: ``log(1 + r_ui)``;
- ``bm25`` / ``tfidf``: implicit's ``bm25_weight`` (K1 = 100, B = 0.8, the values of implicit's
  last.fm example) / ``tfidf_weight`` of the binary matrix, applied the way implicit applies them
  (``examples/lastfm.py``, ``BM25Recommender``): to the item x user matrix, so items are the
  documents and users the terms. With ``n_u`` = items of user u, ``n_i`` = users of item i,
  ``N`` = active items: ``idf_u = log N - log(1 + n_u)``; tfidf ``w_ui = idf_u``; bm25
  ``w_ui = idf_u (K1 + 1) / (K1 ((1 - B) + B n_i / mean(n)) + 1)``. Heavy users and popular items
  weigh less. ``w`` is clipped at 0 (``idf_u < 0`` only for a user with every item but at most
  one), so ``c_ui >= 1``.

How implicit reads the matrix (implicit 0.7.3, ``implicit/cpu/_als.pyx``, ``_least_squares`` and
``_least_squares_cg``; ``implicit/cpu/als.py`` ``fit``): the stored value IS the confidence
``c_ui`` - the solver starts from ``YtY + reg I`` (the ``c = 1`` of every pair) and adds
``(c_ui - 1) y_i y_i^T`` to A and ``c_ui y_i`` to b for each stored pair; a stored value <= 0 is
read as a *negative* (p = 0, confidence |value|). Its ``alpha`` argument only multiplies the whole
matrix (``Cui = alpha * Cui``), so ``alpha = a`` on raw weights would give ``c = a w`` (no 1).
We therefore store ``1 + confidence_alpha * w_ui`` and pass ``alpha = 1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.cf._interactions import binary
from tasks.cf._worker import ImplicitWorker, Progress
from tasks.profile import CollabSection

__all__ = ["BM25_B", "BM25_K1", "confidence_matrix", "confidence_weights", "fit_als"]

#: BM25 parameters of the ``bm25`` confidence (implicit's last.fm example uses these).
BM25_K1 = 100.0
BM25_B = 0.8


def confidence_weights(matrix: sp.csr_matrix, scheme: str) -> np.ndarray:
    """``w_ui`` for every stored pair of ``matrix`` (values = ratings), in its CSR data order.

    >>> x = sp.csr_matrix(np.array([[4.0, 0.0], [1.0, 2.0]], np.float32))
    >>> confidence_weights(x, "log").round(3).tolist()
    [1.609, 0.693, 1.099]
    """
    ratings = np.asarray(matrix.data, np.float64)
    if scheme == "binary":
        w = np.ones_like(ratings)
    elif scheme == "linear":
        w = ratings.copy()
    elif scheme == "log":
        w = np.log1p(ratings)
    elif scheme in ("bm25", "tfidf"):
        # pure numpy in implicit (no OpenMP), so safe in this process
        from implicit.nearest_neighbours import bm25_weight, tfidf_weight

        item_user = binary(matrix).T.tocsr().astype(np.float64)
        if scheme == "bm25":
            weighted = bm25_weight(item_user, K1=BM25_K1, B=BM25_B)
        else:
            weighted = tfidf_weight(item_user)
        user_item = sp.csr_matrix(weighted.T)  # COO -> CSR keeps explicit zeros
        user_item.sort_indices()
        if not (
            np.array_equal(user_item.indptr, matrix.indptr)
            and np.array_equal(user_item.indices, matrix.indices)
        ):
            raise AssertionError(f"implicit's {scheme} weighting changed the sparsity pattern")
        w = np.asarray(user_item.data, np.float64)
    else:
        raise ValueError(f"unknown confidence scheme {scheme!r}")
    return np.maximum(w, 0.0)


def confidence_matrix(matrix: sp.csr_matrix, cfg: CollabSection) -> sp.csr_matrix:
    """The matrix handed to implicit: ``c_ui = 1 + confidence_alpha * w_ui`` at the stored pairs.

    >>> x = sp.csr_matrix(np.array([[4.0, 0.0], [1.0, 2.0]], np.float32))
    >>> confidence_matrix(x, CollabSection(confidence="linear", confidence_alpha=2.0)).toarray().tolist()
    [[9.0, 0.0], [3.0, 5.0]]
    """
    w = confidence_weights(matrix, cfg.confidence)
    out = sp.csr_matrix(
        (
            (1.0 + cfg.confidence_alpha * w).astype(np.float32),
            matrix.indices.copy(),
            matrix.indptr.copy(),
        ),
        shape=matrix.shape,
    )
    out.has_sorted_indices = matrix.has_sorted_indices
    return out


def fit_als(
    matrix: sp.csr_matrix,
    cfg: CollabSection,
    seed: int,
    worker: ImplicitWorker,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """ALS on the active block ``matrix`` (values = ratings) in ``worker``: (X, Y, facts).

    Returns float32 user factors (rows of ``matrix``) and item factors (its columns).
    """
    confidence = confidence_matrix(matrix, cfg)
    out = worker.run_job(
        "als",
        {
            "confidence.data": confidence.data,
            "confidence.indices": confidence.indices,
            "confidence.indptr": confidence.indptr,
        },
        {
            "shape": list(confidence.shape),
            "factors": int(cfg.factors),
            "regularization": float(cfg.regularization),
            "iterations": int(cfg.iterations),
            "seed": int(seed),
        },
        progress=progress,
    )
    facts = {
        "confidence": cfg.confidence,
        "confidence_mean": round(float(confidence.data.mean()), 6) if confidence.nnz else 0.0,
    }
    return out["user_factors"], out["item_factors"], facts
