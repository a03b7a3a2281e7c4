"""PureSVD (Cremonesi et al. 2010) (part of :mod:`tasks.cf`).

Truncated SVD of the active block of the kept-rating matrix X (zeros where unrated),
``X ~ U_f S_f V_f^T`` (scikit-learn ``TruncatedSVD``, randomized, ``random_state = seed``):
user factors ``x_u = (U_f S_f)_u``, item factors ``y_i = (V_f)_i``, so
``s_ui = x_u . y_i = (U_f S_f V_f^T)_ui``. Runs in this process (numpy / scipy BLAS, no OpenMP).
When the block is smaller than ``collab.factors`` + 1 in either direction, the rank is cut to
``min(n_users, n_items) - 1`` and the factors are zero-padded to ``factors`` columns.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tasks.errors import InputDataError
from tasks.profile import CollabSection

__all__ = ["fit_puresvd"]


def fit_puresvd(
    matrix: sp.csr_matrix, cfg: CollabSection, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(U_f S_f, V_f) of the active block ``matrix`` (values = ratings), float32, ``factors`` columns."""
    from sklearn.decomposition import TruncatedSVD

    n_users, n_items = matrix.shape
    f = int(cfg.factors)
    k = min(f, min(n_users, n_items) - 1)
    if k < 1:
        raise InputDataError(
            f"PureSVD needs at least 2 users and 2 items with kept ratings, got {n_users} x {n_items}; "
            "lower collab.min_rating or use more training data."
        )
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
    user = svd.fit_transform(matrix.astype(np.float64))  # U S
    item = svd.components_.T  # V
    pad = f - k
    return (
        np.pad(user, ((0, 0), (0, pad))).astype(np.float32),
        np.pad(item, ((0, 0), (0, pad))).astype(np.float32),
    )
