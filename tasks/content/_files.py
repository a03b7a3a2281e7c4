"""The files of the content features under ``models/`` (part of :mod:`tasks.content`): writing and
loading them, and the derived tables their Great Expectations suites (``expectations/``) check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.content._features import ContentFeatures
from tasks.content._index import ITEM_IDX
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

__all__ = [
    "FILES",
    "GENRE_PREFIX",
    "PROVIDER_PREFIX",
    "embedding_row_table",
    "load_content_features",
    "neighbor_table",
    "save_content_features",
]


def embedding_row_table(arr: np.ndarray) -> pd.DataFrame:
    """One row per array row: ``row``, ``norm``, ``all_finite``, ``n_nonzero`` (64-bit, for GX)."""
    a = np.asarray(arr)
    finite = np.isfinite(a).all(axis=1) if a.ndim == 2 else np.isfinite(a)
    safe = np.where(np.isfinite(a), a, 0.0)
    return pd.DataFrame(
        {
            "row": np.arange(len(a), dtype=np.int64),
            "norm": np.linalg.norm(safe.astype(np.float64), axis=1)
            if a.ndim == 2
            else np.abs(safe),
            "all_finite": finite.astype(bool),
            "n_nonzero": (a != 0).sum(axis=1).astype(np.int64)
            if a.ndim == 2
            else (a != 0).astype(np.int64),
        }
    )


def neighbor_table(
    item_ids: np.ndarray, neighbor_idx: np.ndarray, neighbor_sim: np.ndarray
) -> pd.DataFrame:
    """Long table of neighbours: ``movie_id, neighbor_id, rank (1 = best), similarity, is_self``."""
    n, k = neighbor_idx.shape
    ids = np.asarray(item_ids, dtype=np.int64)
    own = np.repeat(np.arange(n), k)
    other = neighbor_idx.reshape(-1).astype(np.int64)
    valid = (other >= 0) & (other < n)
    return pd.DataFrame(
        {
            Col.ITEM: ids[own],
            "neighbor_id": np.where(valid, ids[np.clip(other, 0, max(n - 1, 0))], -1),
            Col.RANK: np.tile(np.arange(1, k + 1, dtype=np.int64), n),
            "similarity": neighbor_sim.reshape(-1).astype(np.float64),
            "is_self": own == other,
        }
    )


FILES = {
    "item_index": "models/item_index.parquet",
    "content_embeddings": "models/content_embeddings.npy",
    "item_features": "models/item_features.parquet",
    "item_neighbors": "models/item_neighbors.npy",
    "item_neighbor_sims": "models/item_neighbor_sims.npy",
    "content_meta": "models/content_meta.json",
}
GENRE_PREFIX = "genre:"
PROVIDER_PREFIX = "provider:"


def save_content_features(features: ContentFeatures, run_dir: Path | str) -> dict[str, ArtifactRef]:
    """Write the features under ``models/`` (see :data:`FILES`) and return their references.

    ``item_features.parquet`` holds the numeric features plus one bool column per genre
    (``genre:Action``) and per provider (``provider:Netflix``), one row per item in item order.
    """
    n = features.n_items
    index = pd.DataFrame(
        {Col.ITEM: features.item_ids.astype(np.int32), ITEM_IDX: np.arange(n, dtype=np.int32)}
    )
    table = features.numeric.copy()
    for j, name in enumerate(features.genre_names):
        table[GENRE_PREFIX + name] = features.genre_matrix[:, j].astype(bool)
    for j, name in enumerate(features.provider_names):
        table[PROVIDER_PREFIX + name] = features.provider_matrix[:, j].astype(bool)
    refs = {
        "item_index": write_table(index, run_dir, FILES["item_index"]),
        "content_embeddings": save_array(
            features.embeddings.astype(np.float32), run_dir, FILES["content_embeddings"]
        ),
        "item_features": write_table(table, run_dir, FILES["item_features"]),
        "item_neighbors": save_array(
            features.neighbor_idx.astype(np.int32), run_dir, FILES["item_neighbors"]
        ),
        "item_neighbor_sims": save_array(
            features.neighbor_sim.astype(np.float32), run_dir, FILES["item_neighbor_sims"]
        ),
        "content_meta": write_json(
            {
                # timings stay out (they are in the stage's facts): same inputs, same bytes
                **{k: v for k, v in features.info.items() if k != "timings"},
                "genre_names": features.genre_names,
                "provider_names": features.provider_names,
                "files": {k: v for k, v in FILES.items()},
            },
            run_dir,
            FILES["content_meta"],
        ),
    }
    return refs


def _resolve(source: Path | str | Mapping[str, ArtifactRef], name: str) -> Path:
    path = resolve_artifact(
        source, name, FILES, stage="features", optional=frozenset({"content_meta"})
    )
    return (
        path if path is not None else Path("/nonexistent/content_meta.json")
    )  # optional: fit details


def load_content_features(
    source: Path | str | Mapping[str, ArtifactRef], *, mmap_embeddings: bool = False
) -> ContentFeatures:
    """Load features written by :func:`save_content_features` from a run directory or its refs."""
    index = read_table(_resolve(source, "item_index"))
    table = read_table(_resolve(source, "item_features"))
    item_ids = index[Col.ITEM].to_numpy(np.int32)
    if not (table[Col.ITEM].to_numpy(np.int32) == item_ids).all():
        raise InputDataError(
            "models/item_features.parquet is not in item_index order; rebuild the features stage."
        )
    genre_cols = [c for c in table.columns if c.startswith(GENRE_PREFIX)]
    provider_cols = [c for c in table.columns if c.startswith(PROVIDER_PREFIX)]
    meta_path = _resolve(source, "content_meta")
    info = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    return ContentFeatures(
        item_ids=item_ids,
        embeddings=load_array(_resolve(source, "content_embeddings"), mmap=mmap_embeddings),
        genre_names=[c[len(GENRE_PREFIX) :] for c in genre_cols],
        genre_matrix=table[genre_cols].to_numpy(bool)
        if genre_cols
        else np.zeros((len(item_ids), 0), bool),
        provider_names=[c[len(PROVIDER_PREFIX) :] for c in provider_cols],
        provider_matrix=(
            table[provider_cols].to_numpy(bool)
            if provider_cols
            else np.zeros((len(item_ids), 0), bool)
        ),
        numeric=table.drop(columns=genre_cols + provider_cols),
        neighbor_idx=load_array(_resolve(source, "item_neighbors")),
        neighbor_sim=load_array(_resolve(source, "item_neighbor_sims")),
        info=info,
    )
