"""EASE, the closed-form linear item-item model (Steck 2019) (part of :mod:`tasks.cf`).

On the binary matrix X of the kept pairs, restricted to the n active items (at least one kept
pair; every other item scores 0):

    G = X^T X + lambda I          (lambda = collab.ease_lambda; symmetric positive definite)
    P = G^-1                      (float64, Cholesky: LAPACK dpotrf + dpotri, in place)
    B = I - P diag(1 / diag P)    i.e.  B_ij = -P_ij / P_jj,  B_jj = 0
    s_u = X_u B                   (stored B: float32, n x n)

This is the minimiser of ``|X - X B|_F^2 + lambda |B|_F^2`` subject to ``diag B = 0``.

With fewer active users m than items n (ml-latest-small: 610 x 9,724), P comes from the
Woodbury identity instead, with an m x m system (:func:`_ease_dual`)::

    P = (I - X^T (X X^T + lambda I)^-1 X) / lambda

which costs m^3 + 2 m^2 n + m n^2 flops instead of n^3 (measured on ml-latest-small's train:
about 2 s instead of 25-40 s); B only needs P up to a constant factor. Memory:
G (8 n^2 bytes) and B (4 n^2 bytes) live together for a moment, so the fit is refused above
``collab.ease_max_items`` active items. Time is ~n^3 flops of LAPACK (dpotrf n^3/3, dpotri
2n^3/3): measured on ml-latest-small's 9,000 most rated items, 38 s and a 1.16 GB peak RSS; on
all its 9,724 items 25-43 s (gram 2 s, dpotrf 5 s, dpotri 17 s in the quietest run) on the
shared 2-core machine.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from tasks.errors import InputDataError
from tasks.profile import CollabSection

__all__ = ["check_ease_size", "ease_fit_bytes", "ease_weights", "gram_matrix"]

#: Rows of G (or B) computed per block: bounds the temporaries to BLOCK x n values.
BLOCK = 1024


def ease_fit_bytes(n_items: int) -> int:
    """Peak bytes of the dense matrices of an EASE fit on ``n_items`` items (G float64 + B float32)."""
    return 12 * int(n_items) ** 2


def check_ease_size(n_items: int, cfg: CollabSection) -> None:
    """Refuse (InputDataError) an EASE fit on more than ``cfg.ease_max_items`` active items."""
    if n_items > cfg.ease_max_items:
        gib = ease_fit_bytes(n_items) / 2**30
        raise InputDataError(
            f"EASE needs a dense {n_items:,} x {n_items:,} item-item matrix: {n_items:,} items have "
            f"interactions, above collab.ease_max_items = {cfg.ease_max_items:,}; the fit would need "
            f"about {gib:.1f} GiB (G float64 + B float32). Use collab.model = 'als' or 'item_knn' "
            f"for this catalogue, or raise collab.ease_max_items if the memory is there."
        )


def gram_matrix(x: sp.csr_matrix, block: int = BLOCK) -> np.ndarray:
    """``X^T X`` as a dense float64 (n x n) array, BLOCK rows at a time (bounded temporaries)."""
    x64 = sp.csr_matrix(x, dtype=np.float64)
    xt = x64.T.tocsr()
    n = x.shape[1]
    gram = np.empty((n, n), dtype=np.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        gram[start:stop] = (xt[start:stop] @ x64).toarray()
    return gram


def _symmetrize_from_lower(a: np.ndarray, block: int = BLOCK) -> None:
    """Copy the lower triangle of the square C-ordered ``a`` onto its upper triangle, in place."""
    n = a.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        a[start:stop, stop:] = a[stop:, start:stop].T
        diag = a[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        diag[upper] = diag.T[upper]


def _ease_dual(x: sp.csr_matrix, lam: float, block: int = BLOCK) -> np.ndarray:
    """B from ``lambda P = I - X^T (X X^T + lambda I)^-1 X`` (Woodbury; m users < n items).

    ``K = X X^T + lambda I`` (m x m, SPD) is factorised once (Cholesky), ``A = K^-1 X`` (m x n);
    ``Q = lambda P = I - X^T A`` is formed BLOCK rows at a time with BLAS; ``B_ij = -Q_ij / Q_jj``.
    """
    from scipy.linalg import cho_factor, cho_solve

    xd = x.toarray().astype(np.float64)  # m x n dense: m < n, so at most n^2 values
    m, n = xd.shape
    k = xd @ xd.T
    k.flat[:: m + 1] += float(lam)
    try:
        factor = cho_factor(k, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise InputDataError(
            "EASE: X X^T + lambda I is not numerically positive definite; raise collab.ease_lambda."
        ) from None
    a = cho_solve(factor, xd, check_finite=False)  # m x n
    diag = 1.0 - np.einsum("ui,ui->i", xd, a)  # Q_jj
    neg_inv_diag = -1.0 / diag
    weights = np.empty((n, n), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        q = -(xd[:, start:stop].T @ a)  # rows of Q without the identity (off-diagonal part)
        np.multiply(q, neg_inv_diag[None, :], out=weights[start:stop], casting="same_kind")
    weights.flat[:: n + 1] = 0.0
    return weights


def ease_weights(x: sp.csr_matrix, lam: float, block: int = BLOCK) -> np.ndarray:
    """EASE's B (float32, n x n) for the binary matrix ``x`` (users x n active items); the dual
    (Woodbury) form when there are fewer users than items.

    >>> x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], np.float32))
    >>> b = ease_weights(x, 1.0)
    >>> bool(np.allclose(np.diag(b), 0)), b.dtype.name
    (True, 'float32')
    >>> x4 = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 1, 0]], np.float32))
    >>> bool(np.allclose(_ease_dual(x4, 2.0), _ease_primal(x4, 2.0), atol=1e-6))
    True
    """
    if x.shape[0] < x.shape[1]:
        return _ease_dual(x, lam, block)
    return _ease_primal(x, lam, block)


def _ease_primal(x: sp.csr_matrix, lam: float, block: int = BLOCK) -> np.ndarray:
    """B from ``P = (X^T X + lambda I)^-1`` (n x n Cholesky inverse)."""
    n = x.shape[1]
    gram = gram_matrix(x, block)
    gram.flat[:: n + 1] += float(lam)
    # gram is symmetric, so its transpose is the same matrix in Fortran order: LAPACK works on it
    # in place (f2py copies anything else). "upper" of the Fortran view = lower triangle of gram.
    fortran = gram.T
    chol, info = lapack.dpotrf(fortran, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise InputDataError(
            f"EASE: X^T X + lambda I is not numerically positive definite (LAPACK dpotrf info={info}); "
            "raise collab.ease_lambda."
        )
    inv, info = lapack.dpotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise InputDataError(
            f"EASE: inverting the Cholesky factor failed (LAPACK dpotri info={info})."
        )
    p = inv.T if np.shares_memory(inv, gram) else np.ascontiguousarray(inv.T)
    del gram, fortran, chol, inv
    _symmetrize_from_lower(p, block)  # P lives in the lower triangle
    neg_inv_diag = -1.0 / np.diag(p).copy()
    weights = np.empty((n, n), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        np.multiply(
            p[start:stop], neg_inv_diag[None, :], out=weights[start:stop], casting="same_kind"
        )
    weights.flat[:: n + 1] = 0.0
    return weights
