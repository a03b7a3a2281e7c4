"""Collaborative factors: the ``collaborative`` stage (DESIGN.md step 4).

Fits a latent-factor model on the training ratings and writes user and item factors, indexed once
by the shared index convention: users = sorted unique ``user_id`` of the cohorts table (every user
of train or test), items = the movies catalogue sorted by ``movie_id`` (the same ``item_idx`` as
:mod:`tasks.content`). A user or item without training ratings keeps a zero factor row and
``has_factors = False``; the hybrid falls back to content for them. The CF score is
``s_ui = x_u . y_i`` for both models. Runs after ``split`` (and beside ``features``).

ALS (``collab.model = "als"``, default)
    Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with the ``implicit`` library: every
    training rating is a positive, ``p_ui = 1``, with confidence ``c_ui = 1 + alpha * r_ui``
    (``alpha = collab.confidence_alpha``); unrated pairs have ``p_ui = 0, c_ui = 1``. Minimises
    ``sum_ui c_ui (p_ui - x_u . y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2)`` with
    ``lambda = collab.regularization``, ``collab.factors`` factors, ``collab.iterations`` sweeps
    (conjugate-gradient solver), factors seeded from ``seed``. BLAS is limited to one thread
    during the fit (multi-threaded OpenBLAS makes implicit up to 10x slower); implicit's own
    OpenMP threads use every core. The fit runs in a fresh Python process, because GNU OpenMP is
    not fork-safe (see :func:`_fit_als`).

PureSVD (``collab.model = "puresvd"``)
    Truncated SVD of the user x item rating matrix R (zeros where unrated),
    ``R ~ U_f S_f V_f^T`` (scikit-learn ``TruncatedSVD``, ``random_state=seed``): user factors
    ``x_u = (U_f S_f)_u``, item factors ``y_i = (V_f)_i``, so ``s_ui = (U_f S_f V_f^T)_ui``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import Col
from tasks.content import ITEM_IDX, USER_IDX, ids_to_index
from tasks.errors import InputDataError
from tasks.io import (
    ArtifactRef,
    load_array,
    read_table,
    resolve_artifact,
    save_array,
    write_json,
    write_table,
)
from tasks.profile import CollabSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = [
    "FILES",
    "CollabModel",
    "collab_core",
    "factor_row_table",
    "fit_collab",
    "fit_collaborative",
    "interaction_matrix",
    "load_collab_model",
    "save_collab_model",
]

FILES = {
    "user_factors": "models/user_factors.npy",
    "item_factors": "models/item_factors.npy",
    "user_index": "models/user_index.parquet",
    "collab_item_index": "models/collab_item_index.parquet",
    "collab_meta": "models/collab_meta.json",
}

Progress = Callable[[float, str], None]
#: Facts of one fit that vary between identical runs (kept out of collab_meta.json).
_RUN_FACTS = frozenset({"matrix_s", "fit_s", "worker_peak_rss_mb"})


@dataclass
class CollabModel:
    """Fitted factors; row ``u`` / ``i`` = ``user_idx`` / ``item_idx``. Score ``s_ui = x_u . y_i``."""

    user_ids: np.ndarray  # int32 (n_users,), sorted
    item_ids: np.ndarray  # int32 (n_items,), sorted
    user_factors: np.ndarray  # float32 (n_users, f)
    item_factors: np.ndarray  # float32 (n_items, f)
    user_has_factors: np.ndarray  # bool (n_users,)
    item_has_factors: np.ndarray  # bool (n_items,)
    model_name: str
    info: dict[str, Any] = field(default_factory=dict)

    def user_index(self, user_ids: np.ndarray | pd.Series) -> np.ndarray:
        return ids_to_index(self.user_ids, user_ids, what=Col.USER)

    def item_index(self, movie_ids: np.ndarray | pd.Series) -> np.ndarray:
        return ids_to_index(self.item_ids, movie_ids, what=Col.ITEM)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """CF scores of a batch of users against every item (float32, (len(user_idx), n_items))."""
        return self.user_factors[np.asarray(user_idx)] @ self.item_factors.T


def interaction_matrix(
    train: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    values: np.ndarray | None = None,
) -> sp.csr_matrix:
    """CSR (n_users x n_items) of ``values`` (default: the ratings) at the training pairs.

    A pair rated twice keeps its latest value only if the caller deduplicated; here duplicates add.
    """
    u = ids_to_index(user_ids, train[Col.USER].to_numpy(), what=f"train {Col.USER}")
    i = ids_to_index(item_ids, train[Col.ITEM].to_numpy(), what=f"train {Col.ITEM}")
    data = (
        train[Col.RATING].to_numpy(np.float32) if values is None else np.asarray(values, np.float32)
    )
    matrix = sp.csr_matrix((data, (u, i)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


#: The ALS fit runs in a fresh Python process (see :func:`_fit_als`): this script is all it runs.
_ALS_WORKER_SOURCE = r"""
import ctypes, json, os, signal, sys

if sys.platform.startswith("linux"):  # die with the parent (a stage killed at its budget)
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[2]):  # the parent died before prctl: nobody wants the result
    sys.exit(3)

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits
from implicit.cpu.als import AlternatingLeastSquares

work = sys.argv[1]
with open(work + "/config.json") as fh:
    cfg = json.load(fh)
confidence = sp.csr_matrix(
    (np.load(work + "/data.npy"), np.load(work + "/indices.npy"), np.load(work + "/indptr.npy")),
    shape=tuple(cfg["shape"]),
)
for name in ("data", "indices", "indptr"):  # in memory now; a killed run leaves less behind
    os.remove(work + "/" + name + ".npy")

def on_iteration(iteration, elapsed, loss):
    print("iteration", iteration + 1, flush=True)

with threadpool_limits(1, "blas"):  # multi-threaded OpenBLAS makes implicit up to 10x slower
    model = AlternatingLeastSquares(
        factors=cfg["factors"],
        regularization=cfg["regularization"],
        alpha=1.0,  # the confidence is already in the matrix
        iterations=cfg["iterations"],
        calculate_training_loss=False,
        num_threads=cfg["num_threads"],
        random_state=cfg["seed"],
    )
    model.fit(confidence, show_progress=False, callback=on_iteration)
np.save(work + "/user_factors.npy", np.asarray(model.user_factors, dtype=np.float32))
np.save(work + "/item_factors.npy", np.asarray(model.item_factors, dtype=np.float32))
print("done", flush=True)
"""


def _fit_als(
    ratings: sp.csr_matrix, cfg: CollabSection, seed: int, progress: Progress, num_threads: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Implicit ALS on confidences ``c_ui = 1 + alpha * r_ui``, in a fresh Python process.

    Why a separate process: implicit parallelises with GNU OpenMP (libgomp), which is not
    fork-safe - a process that has run an OpenMP region and then forks (every stage runs in a
    forked child, see tasks.budget) hangs forever in the child's next OpenMP region (measured).
    A fresh interpreter (about 0.3 s to start) never inherits that state, and the caller's process
    never starts an OpenMP pool, so later forks elsewhere stay safe too. The worker is killed
    with its parent, so a stage budget still stops the fit.
    """
    confidence = ratings.astype(np.float32, copy=True)
    confidence.data = 1.0 + np.float32(cfg.confidence_alpha) * confidence.data
    with tempfile.TemporaryDirectory(prefix="movierec-als-") as work:
        np.save(Path(work) / "data.npy", confidence.data)
        np.save(Path(work) / "indices.npy", confidence.indices)
        np.save(Path(work) / "indptr.npy", confidence.indptr)
        config = {
            "shape": list(confidence.shape),
            "factors": int(cfg.factors),
            "regularization": float(cfg.regularization),
            "iterations": int(cfg.iterations),
            "num_threads": int(num_threads),
            "seed": int(seed),
        }
        (Path(work) / "config.json").write_text(json.dumps(config), encoding="utf-8")
        del confidence
        with open(Path(work) / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _ALS_WORKER_SOURCE, work, str(os.getpid())],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("iteration"):
                        done = int(line.split()[1])
                        progress(
                            0.1 + 0.85 * done / cfg.iterations,
                            f"ALS iteration {done}/{cfg.iterations}",
                        )
                code = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if code != 0:
            tail = (Path(work) / "stderr.txt").read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"the ALS worker process failed (exit code {code}):\n{tail}")
        # the largest finished child of this process so far: the worker, on a first fit
        worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return (
            np.load(Path(work) / "user_factors.npy"),
            np.load(Path(work) / "item_factors.npy"),
            {"worker_peak_rss_mb": round(worker_rss / 2**20, 1)},
        )


def _fit_puresvd(
    ratings: sp.csr_matrix, cfg: CollabSection, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import TruncatedSVD

    n_users, n_items = ratings.shape
    f = int(cfg.factors)
    k = min(f, min(n_users, n_items) - 1)
    if k < 1:
        raise InputDataError(
            f"PureSVD needs at least 2 users and 2 items, got {n_users} x {n_items}."
        )
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
    user = svd.fit_transform(ratings.astype(np.float64))  # U S
    item = svd.components_.T  # V
    pad = f - k  # keep `factors` columns even on tiny data
    return (
        np.pad(user, ((0, 0), (0, pad))).astype(np.float32),
        np.pad(item, ((0, 0), (0, pad))).astype(np.float32),
    )


def fit_collaborative(
    train: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    cfg: CollabSection,
    seed: int,
    progress: Progress | None = None,
) -> CollabModel:
    """Fit ALS or PureSVD (``cfg.model``) on ``train`` over the given sorted user / item ids."""
    progress = progress or (lambda fraction, message="": None)
    user_ids = np.asarray(user_ids, np.int32)
    item_ids = np.asarray(item_ids, np.int32)
    for name, ids in (("user ids", user_ids), ("item ids", item_ids)):
        if len(ids) > 1 and not (np.diff(ids) > 0).all():
            raise InputDataError(f"{name} must be sorted and unique (the shared index convention).")
    started = time.perf_counter()
    ratings = interaction_matrix(train, user_ids, item_ids)
    if ratings.nnz == 0:
        raise InputDataError("train has no ratings: nothing to fit the collaborative model on.")
    build_s = time.perf_counter() - started
    progress(
        0.1,
        f"{cfg.model}: {ratings.shape[0]:,} users x {ratings.shape[1]:,} items, {ratings.nnz:,} ratings",
    )
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if cfg.model == "als":
        user, item, extra = _fit_als(ratings, cfg, seed, progress)
    else:
        user, item = _fit_puresvd(ratings, cfg, seed)
    fit_s = time.perf_counter() - t0
    user_has = np.diff(ratings.indptr) > 0
    item_has = np.bincount(ratings.indices, minlength=len(item_ids)) > 0
    user[~user_has] = 0.0
    item[~item_has] = 0.0
    if not (np.isfinite(user).all() and np.isfinite(item).all()):
        raise InputDataError(
            f"{cfg.model} produced non-finite factors; lower collab.confidence_alpha or raise "
            "collab.regularization."
        )
    progress(1.0, f"{cfg.model} fitted in {fit_s:.1f} s")
    return CollabModel(
        user_ids=user_ids,
        item_ids=item_ids,
        user_factors=np.ascontiguousarray(user),
        item_factors=np.ascontiguousarray(item),
        user_has_factors=user_has,
        item_has_factors=item_has,
        model_name=cfg.model,
        info={
            "model": cfg.model,
            "factors": int(cfg.factors),
            "n_users": len(user_ids),
            "n_items": len(item_ids),
            "n_ratings": int(ratings.nnz),
            "users_with_factors": int(user_has.sum()),
            "items_with_factors": int(item_has.sum()),
            "matrix_s": round(build_s, 3),
            "fit_s": round(fit_s, 3),
            **extra,
            "config": cfg.model_dump(mode="json"),
        },
    )


# --------------------------------------------------------------------------------------------
# Derived table for validation and files
# --------------------------------------------------------------------------------------------
def factor_row_table(factors: np.ndarray, has_factors: np.ndarray) -> pd.DataFrame:
    """One row per factor row: ``row, norm, all_finite, n_nonzero, has_factors, zero_iff_no_factors``.

    ``zero_iff_no_factors`` is True when a row without factors is all zero and a row with factors
    is not (64-bit columns: GX checks them fast).
    """
    a = np.asarray(factors)
    finite = np.isfinite(a).all(axis=1)
    norm = np.linalg.norm(np.where(np.isfinite(a), a, 0.0).astype(np.float64), axis=1)
    has = np.asarray(has_factors, bool)
    return pd.DataFrame(
        {
            "row": np.arange(len(a), dtype=np.int64),
            "norm": norm,
            "all_finite": finite,
            "n_nonzero": (a != 0).sum(axis=1).astype(np.int64),
            "has_factors": has,
            "zero_iff_no_factors": np.where(has, norm > 0, norm == 0),
        }
    )


def save_collab_model(model: CollabModel, run_dir: Path | str) -> dict[str, ArtifactRef]:
    """Write factors, index maps and a small meta JSON under ``models/`` (see :data:`FILES`)."""
    users = pd.DataFrame(
        {
            Col.USER: model.user_ids.astype(np.int32),
            USER_IDX: np.arange(len(model.user_ids), dtype=np.int32),
            "has_factors": model.user_has_factors.astype(bool),
        }
    )
    items = pd.DataFrame(
        {
            Col.ITEM: model.item_ids.astype(np.int32),
            ITEM_IDX: np.arange(len(model.item_ids), dtype=np.int32),
            "has_factors": model.item_has_factors.astype(bool),
        }
    )
    return {
        "user_factors": save_array(
            model.user_factors.astype(np.float32), run_dir, FILES["user_factors"]
        ),
        "item_factors": save_array(
            model.item_factors.astype(np.float32), run_dir, FILES["item_factors"]
        ),
        "user_index": write_table(users, run_dir, FILES["user_index"]),
        "collab_item_index": write_table(items, run_dir, FILES["collab_item_index"]),
        "collab_meta": write_json(
            # timings and memory stay out (they are in the stage's facts): same inputs, same bytes
            {**{k: v for k, v in model.info.items() if k not in _RUN_FACTS}, "files": FILES},
            run_dir,
            FILES["collab_meta"],
        ),
    }


def _resolve(source: Path | str | Mapping[str, ArtifactRef], name: str) -> Path:
    path = resolve_artifact(source, name, FILES, stage="collaborative", optional=frozenset({"collab_meta"}))
    return path if path is not None else Path("/nonexistent/collab_meta.json")  # optional: fit details


def load_collab_model(source: Path | str | Mapping[str, ArtifactRef]) -> CollabModel:
    """Load a model written by :func:`save_collab_model` from a run directory or its refs."""
    users = read_table(_resolve(source, "user_index"))
    items = read_table(_resolve(source, "collab_item_index"))
    meta_path = _resolve(source, "collab_meta")
    info = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    return CollabModel(
        user_ids=users[Col.USER].to_numpy(np.int32),
        item_ids=items[Col.ITEM].to_numpy(np.int32),
        user_factors=load_array(_resolve(source, "user_factors")),
        item_factors=load_array(_resolve(source, "item_factors")),
        user_has_factors=users["has_factors"].to_numpy(bool),
        item_has_factors=items["has_factors"].to_numpy(bool),
        model_name=str(info.get("model", "unknown")),
        info=info,
    )


# --------------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------------
def _validate(model: CollabModel) -> dict[str, Any]:
    """Run the ``factors`` suite on both factor tables (blocking)."""
    from tasks.validation import require_valid

    return {
        "user_factors": require_valid(
            factor_row_table(model.user_factors, model.user_has_factors),
            "factors",
            source=FILES["user_factors"],
        ),
        "item_factors": require_valid(
            factor_row_table(model.item_factors, model.item_has_factors),
            "factors",
            source=FILES["item_factors"],
        ),
    }


def collab_core(
    train_path: str,
    cohorts_path: str,
    movies_path: str,
    cfg: CollabSection,
    seed: int,
    run_dir: str,
) -> dict[str, Any]:
    """Pure core of the ``collaborative`` stage: index, fit, validate, write; refs + facts."""
    from tasks.budget import report_progress

    train = read_table(train_path, columns=[Col.USER, Col.ITEM, Col.RATING])
    user_ids = np.unique(read_table(cohorts_path, columns=[Col.USER])[Col.USER].to_numpy()).astype(
        np.int32
    )
    item_ids = np.unique(read_table(movies_path, columns=[Col.ITEM])[Col.ITEM].to_numpy()).astype(
        np.int32
    )
    model = fit_collaborative(train, user_ids, item_ids, cfg, seed, progress=report_progress)
    validation = _validate(model)
    refs = save_collab_model(model, run_dir)
    facts = {k: v for k, v in model.info.items() if k != "config"}
    if validation:
        facts["validation"] = validation
    return {"artifacts": refs, "facts": facts}


@stage_task("collaborative")
def fit_collab(
    train: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    cfg: CollabSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``collaborative``: ALS (or PureSVD) factors and the user / item index maps."""
    result = run_stage_core(
        "collaborative",
        budget_seconds,
        collab_core,
        str(train.path),
        str(cohorts.path),
        str(movies.path),
        cfg,
        seed,
        run_dir,
    )
    return StageOutput.from_result("collaborative", result)
