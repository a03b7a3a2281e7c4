"""``fit_cf``: one entry point that fits any CF model of ``collab.model`` (part of :mod:`tasks.cf`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.cf._als import fit_als
from tasks.cf._ease import check_ease_size, ease_fit_bytes, ease_weights
from tasks.cf._interactions import (
    _check_sorted_ids,
    active_parts,
    as_rating_csr,
    binary,
    interactions,
    interactions_fingerprint,
)
from tasks.cf._knn import fit_item_knn
from tasks.cf._model import CFModel, EaseCF, FactorCF, ItemKnnCF
from tasks.cf._svd import fit_puresvd
from tasks.cf._worker import ImplicitWorker, Progress
from tasks.errors import InputDataError
from tasks.profile import CollabSection

__all__ = ["RUN_FACTS", "fit_cf"]

#: ``info`` keys that vary between identical fits (timings): kept out of cf_meta.json.
RUN_FACTS = frozenset({"prepare_s", "fit_s", "worker_start_s"})


def _no_progress(fraction: float, message: str = "") -> None:
    return None


@contextlib.contextmanager
def _worker_for(worker: ImplicitWorker | None, facts: dict[str, Any]) -> Iterator[ImplicitWorker]:
    """The caller's worker, or a one-shot worker stopped when the fit ends."""
    if worker is not None:
        yield worker
        return
    with ImplicitWorker() as own:
        facts["worker_start_s"] = round(own.start_seconds, 3)
        yield own


def _expand_similarity(similarity: sp.csr_matrix, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """An active-block similarity (rows/columns = ``items``) in the full item index."""
    coo = similarity.tocoo()
    full = sp.csr_matrix(
        (coo.data, (items[coo.row], items[coo.col])), shape=(n_items, n_items), dtype=np.float32
    )
    full.sort_indices()
    return full


def fit_cf(
    ratings: sp.csr_matrix,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    cfg: CollabSection,
    seed: int,
    *,
    progress: Progress | None = None,
    worker: ImplicitWorker | None = None,
) -> CFModel:
    """Fit ``cfg.model`` on the training rating CSR ``ratings`` (users x items of the shared index).

    ``user_ids`` / ``item_ids``: the sorted unique ids of the index (rows / columns of
    ``ratings``, see :func:`tasks.cf.rating_matrix`). ALS and item kNN run in ``worker`` (an
    :class:`~tasks.cf.ImplicitWorker`; a one-shot one is started when None); EASE and PureSVD in
    this process. ``progress(fraction, message)`` is called along the way.
    """
    progress = progress or _no_progress
    started = time.perf_counter()
    user_ids = _check_sorted_ids(user_ids, "user ids")
    item_ids = _check_sorted_ids(item_ids, "item ids")
    matrix = as_rating_csr(ratings, shape=(len(user_ids), len(item_ids)))
    x = interactions(matrix, cfg)
    if x.nnz == 0:
        raise InputDataError(
            f"no training rating is >= collab.min_rating = {cfg.min_rating} ({matrix.nnz:,} ratings): "
            "nothing to fit the collaborative model on; lower collab.min_rating."
        )
    parts = active_parts(x)
    n_users, n_items = len(user_ids), len(item_ids)
    info: dict[str, Any] = {
        "model": cfg.model,
        "seed": int(seed),
        "n_users": n_users,
        "n_items": n_items,
        "n_ratings": int(matrix.nnz),
        "min_rating": float(cfg.min_rating),
        "n_interactions": int(x.nnz),
        "users_known": len(parts.users),
        "items_known": len(parts.items),
        "interactions_fingerprint": interactions_fingerprint(x),
    }
    info["prepare_s"] = round(time.perf_counter() - started, 3)
    progress(
        0.05,
        f"{cfg.model}: {len(parts.users):,} users x {len(parts.items):,} items with "
        f"{x.nnz:,} kept interactions (of {matrix.nnz:,} ratings)",
    )
    common = dict(
        user_ids=user_ids,
        item_ids=item_ids,
        user_known=parts.user_known,
        item_known=parts.item_known,
        config=cfg,
        info=info,
    )
    t0 = time.perf_counter()
    model: CFModel
    if cfg.model in ("als", "puresvd"):
        if cfg.model == "als":
            with _worker_for(worker, info) as w:
                user_c, item_c, extra = fit_als(
                    parts.matrix, cfg, seed, w, progress=lambda f, m: progress(0.1 + 0.85 * f, m)
                )
        else:
            user_c, item_c = fit_puresvd(parts.matrix, cfg, seed)
            extra = {}
        if not (np.isfinite(user_c).all() and np.isfinite(item_c).all()):
            raise InputDataError(
                f"{cfg.model} produced non-finite factors; lower collab.confidence_alpha or raise "
                "collab.regularization."
            )
        user_factors = np.zeros((n_users, cfg.factors), np.float32)
        item_factors = np.zeros((n_items, cfg.factors), np.float32)
        user_factors[parts.users] = user_c
        item_factors[parts.items] = item_c
        info.update(factors=int(cfg.factors), **extra)
        model = FactorCF(**common, user_factors=user_factors, item_factors=item_factors)
    elif cfg.model == "ease":
        check_ease_size(len(parts.items), cfg)
        weights = ease_weights(binary(parts.matrix), cfg.ease_lambda)
        info.update(
            ease_items=len(parts.items),
            ease_fit_mb=round(ease_fit_bytes(len(parts.items)) / 2**20, 1),
        )
        x_active = sp.csr_matrix(
            binary(x)[:, parts.items] if len(parts.items) < n_items else binary(x)
        )
        x_active.sort_indices()
        model = EaseCF(**common, x=x_active, weights=weights, items=parts.items)
    elif cfg.model == "item_knn":
        with _worker_for(worker, info) as w:
            similarity, extra = fit_item_knn(parts.matrix, cfg, w)
        info.update(knn_k=int(cfg.knn_k), **extra)
        model = ItemKnnCF(
            **common, x=binary(x), similarity=_expand_similarity(similarity, parts.items, n_items)
        )
    else:  # CollabSection's Literal makes this unreachable
        raise ValueError(f"unknown collab.model {cfg.model!r}")
    info["fit_s"] = round(time.perf_counter() - t0, 3)
    progress(1.0, f"{cfg.model} fitted in {info['fit_s']:.1f} s")
    return model
