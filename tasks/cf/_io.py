"""Files of a fitted CF model, and loading them back (part of :mod:`tasks.cf`).

Under ``<run_dir>/<folder>/``: ``cf_meta.json`` (kind, config, info without timings: the same
inputs give the same bytes), ``user_index.parquet`` (user_id, user_idx, known),
``item_index.parquet`` (movie_id, item_idx, known) and the kind's arrays:

- factors: ``user_factors.npy``, ``item_factors.npy`` (float32, zero rows for unknown ids);
- ease: ``ease_weights.npy`` (float32 B, active x active), ``ease_items.npy`` (int32 item_idx);
- knn: ``knn_similarity.npz`` (scipy sparse CSR, float32, full item index).

Item-item models also need X, which is not stored: :func:`load_cf_model` rebuilds it from the
training ratings with the model's own rule (:func:`tasks.cf.interactions`) and checks it against
the fingerprint in the meta file.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.cf._fit import RUN_FACTS
from tasks.cf._interactions import (
    active_parts,
    as_rating_csr,
    binary,
    interactions,
    interactions_fingerprint,
)
from tasks.cf._model import CFModel, EaseCF, FactorCF, ItemKnnCF
from tasks.columns import Col
from tasks.errors import InputDataError, UsageError
from tasks.io import (
    ArtifactRef,
    atomic_path,
    load_array,
    read_table,
    resolve_artifact,
    save_array,
    write_json,
    write_table,
)
from tasks.profile import CollabSection

__all__ = ["FILES", "KIND_FILES", "load_cf_model", "save_cf_model"]

#: Same column names as tasks.content.USER_IDX / ITEM_IDX (not imported: tasks.content imports Prefect).
USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
KNOWN = "known"
FORMAT_VERSION = 1

FILES = {
    "cf_meta": "cf_meta.json",
    "user_index": "user_index.parquet",
    "item_index": "item_index.parquet",
    "user_factors": "user_factors.npy",
    "item_factors": "item_factors.npy",
    "ease_weights": "ease_weights.npy",
    "ease_items": "ease_items.npy",
    "knn_similarity": "knn_similarity.npz",
}
#: The array files of each kind (besides cf_meta, user_index, item_index).
KIND_FILES = {
    "factors": ("user_factors", "item_factors"),
    "ease": ("ease_weights", "ease_items"),
    "knn": ("knn_similarity",),
}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry dates: same matrix, same bytes


def _save_csr(matrix: sp.csr_matrix, run_dir: Path | str, relpath: str) -> ArtifactRef:
    """Write a CSR as scipy's ``.npz`` layout (``sp.load_npz`` reads it), atomically, with fixed
    zip dates (``sp.save_npz`` stamps the current time, so equal matrices would differ in bytes)."""
    arrays = {
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "format": np.array(b"csr"),
        "shape": np.array(matrix.shape),
        "data": matrix.data,
    }
    with (
        atomic_path(Path(run_dir) / relpath) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, buffer.getvalue())
    return ArtifactRef.of(run_dir, relpath)


def _index_table(ids: np.ndarray, known: np.ndarray, id_col: str, idx_col: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            id_col: np.asarray(ids, np.int32),
            idx_col: np.arange(len(ids), dtype=np.int32),
            KNOWN: np.asarray(known, bool),
        }
    )


def save_cf_model(model: CFModel, run_dir: Path | str, folder: str) -> dict[str, ArtifactRef]:
    """Write ``model`` under ``<run_dir>/<folder>/`` (see the module docstring); name -> ref."""
    folder = folder.strip("/")

    def rel(name: str) -> str:
        return f"{folder}/{FILES[name]}"

    refs = {
        "user_index": write_table(
            _index_table(model.user_ids, model.user_known, Col.USER, USER_IDX),
            run_dir,
            rel("user_index"),
        ),
        "item_index": write_table(
            _index_table(model.item_ids, model.item_known, Col.ITEM, ITEM_IDX),
            run_dir,
            rel("item_index"),
        ),
    }
    if isinstance(model, FactorCF):
        refs["user_factors"] = save_array(
            model.user_factors.astype(np.float32), run_dir, rel("user_factors")
        )
        refs["item_factors"] = save_array(
            model.item_factors.astype(np.float32), run_dir, rel("item_factors")
        )
    elif isinstance(model, EaseCF):
        refs["ease_weights"] = save_array(
            model.weights.astype(np.float32), run_dir, rel("ease_weights")
        )
        refs["ease_items"] = save_array(model.items.astype(np.int32), run_dir, rel("ease_items"))
    elif isinstance(model, ItemKnnCF):
        refs["knn_similarity"] = _save_csr(model.similarity, run_dir, rel("knn_similarity"))
    else:
        raise TypeError(f"cannot save a {type(model).__name__}")
    meta = {
        "format": FORMAT_VERSION,
        "kind": model.kind,
        "config": model.config.model_dump(mode="json"),
        "info": {k: v for k, v in model.info.items() if k not in RUN_FACTS},
        "files": {
            name: FILES[name]
            for name in ("cf_meta", "user_index", "item_index", *KIND_FILES[model.kind])
        },
    }
    refs["cf_meta"] = write_json(meta, run_dir, rel("cf_meta"))
    return refs


def _path(source: Path | str | Mapping[str, ArtifactRef], name: str) -> Path:
    path = resolve_artifact(source, name, FILES, stage="collaborative")
    assert path is not None
    if not path.exists():
        raise UsageError(
            f"{path}: missing file of a saved CF model; run the collaborative stage again."
        )
    return path


def load_cf_model(
    source: Path | str | Mapping[str, ArtifactRef], *, ratings: sp.csr_matrix | None = None
) -> CFModel:
    """Rebuild a model written by :func:`save_cf_model` from its folder or its artifact refs.

    EASE and item kNN score with X, so they need ``ratings``: the same training rating CSR they
    were fitted on (checked against the fingerprint of the kept pairs).
    """
    meta = json.loads(_path(source, "cf_meta").read_text(encoding="utf-8"))
    kind = meta.get("kind")
    if kind not in KIND_FILES:
        raise UsageError(f"{_path(source, 'cf_meta')}: unknown CF model kind {kind!r}.")
    cfg = CollabSection(**meta["config"])
    info: dict[str, Any] = dict(meta.get("info", {}))
    users = read_table(_path(source, "user_index"))
    items = read_table(_path(source, "item_index"))
    common = dict(
        user_ids=users[Col.USER].to_numpy(np.int32),
        item_ids=items[Col.ITEM].to_numpy(np.int32),
        user_known=users[KNOWN].to_numpy(bool),
        item_known=items[KNOWN].to_numpy(bool),
        config=cfg,
        info=info,
    )
    n_users, n_items = len(users), len(items)
    if kind == "factors":
        return FactorCF(
            **common,
            user_factors=np.ascontiguousarray(load_array(_path(source, "user_factors"))),
            item_factors=np.ascontiguousarray(load_array(_path(source, "item_factors"))),
        )
    if ratings is None:
        raise UsageError(
            f"a saved {cfg.model} model scores with the training interactions: pass "
            "load_cf_model(..., ratings=<the training rating CSR it was fitted on>)."
        )
    x = interactions(as_rating_csr(ratings, shape=(n_users, n_items)), cfg)
    expected = info.get("interactions_fingerprint")
    if expected is not None and interactions_fingerprint(x) != expected:
        raise InputDataError(
            f"the ratings passed to load_cf_model are not the ones this {cfg.model} model was fitted "
            f"on (their kept pairs differ: {x.nnz:,} vs {info.get('n_interactions')}); pass the same "
            "training table (train for test runs, train_fit for the validation search)."
        )
    parts = active_parts(x)
    if not (
        np.array_equal(parts.user_known, common["user_known"])
        and np.array_equal(parts.item_known, common["item_known"])
    ):
        raise InputDataError(
            "the ratings' known users / items differ from the saved model's index files."
        )
    xb = binary(x)
    if kind == "ease":
        active = load_array(_path(source, "ease_items")).astype(np.int64)
        if not np.array_equal(active, parts.items):
            raise InputDataError(
                "ease_items.npy does not match the items with interactions in the ratings."
            )
        x_active = sp.csr_matrix(xb[:, active] if len(active) < n_items else xb)
        x_active.sort_indices()
        return EaseCF(
            **common, x=x_active, weights=load_array(_path(source, "ease_weights")), items=active
        )
    similarity = sp.csr_matrix(sp.load_npz(_path(source, "knn_similarity")), dtype=np.float32)
    return ItemKnnCF(**common, x=xb, similarity=similarity)
