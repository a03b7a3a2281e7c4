"""Who is evaluated on test, in which batches, and where the batches' checkpoints live.

Part of :mod:`tasks.evaluation`. **Who**: every user (in user_idx order) with at least one relevant
held-out item (test ``relevant`` = rating >= the split's threshold); ``eval.sample_users > 0``
takes a seeded sample instead. The users are cut into batches of ``eval.batch_size``.

**Checkpoints**: each batch's per-user results are one part file
``<artifacts>/<profile>/.eval-parts/<key>/batch-<i>.parquet`` written atomically. ``key`` = hash
of the inputs' fingerprints (models, policy, data), the settings that change a part and the
source of the modules that compute it - never the run id - so a killed run resumes with its
finished batches, and an unchanged re-run reads every part (the models are not even loaded).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from tasks.columns import COHORTS, Col
from tasks.io import ArtifactRef, atomic_path
from tasks.metrics import relevance_matrix

__all__ = ["EvalPlan", "PartStore", "evaluation_plan", "part_key"]

_META_KEY = b"movierec_eval"
#: Modules whose source decides what a part holds.
PART_MODULES = ("tasks.evaluation", "tasks.ranking", "tasks.cf", "tasks.metrics")


@dataclass
class EvalPlan:
    """Who is evaluated, with what relevance, in which batches (built without the model files)."""

    user_ids: np.ndarray  # int32 (n_users,): the user index (sorted ids)
    item_ids: np.ndarray  # int32 (n_items,): the item index (sorted ids)
    relevant: sp.csr_matrix  # bool (n_users, n_items): relevant held-out items
    users: np.ndarray  # int64: user_idx of the evaluated users, sorted
    cohorts: np.ndarray  # object (n_users,): cohort of every user of the index
    eligible: dict[str, int]  # users with a relevant item, per cohort and "all"
    batch_size: int

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_batches(self) -> int:
        return math.ceil(len(self.users) / self.batch_size) if len(self.users) else 0

    def batch(self, index: int) -> np.ndarray:
        return self.users[index * self.batch_size : (index + 1) * self.batch_size]

    def users_per_cohort(self) -> dict[str, int]:
        labels = self.cohorts[self.users]
        present = [c for c in COHORTS if (labels == c).any()] + sorted(set(labels) - set(COHORTS))
        return {"all": int(len(labels)), **{str(c): int((labels == c).sum()) for c in present}}


def evaluation_plan(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    test: pd.DataFrame,
    cohorts: pd.DataFrame | None,
    batch_size: int,
    *,
    sample_users: int = 0,
    seed: int = 42,
) -> EvalPlan:
    """The evaluated users: every user with a relevant test item (``relevant`` column), in
    user_idx order; a seeded sample of ``sample_users`` of them when asked (0 = all)."""
    user_ids = np.asarray(user_ids, dtype=np.int64)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    if np.any(np.diff(user_ids) <= 0) or np.any(np.diff(item_ids) <= 0):
        raise ValueError("user and item indexes must be sorted and unique (models/*_index.parquet)")
    rel = test.loc[test[Col.RELEVANT].to_numpy(bool)]
    u = _positions(
        user_ids, rel[Col.USER].to_numpy(np.int64), "test user_id", "models/user_index.parquet"
    )
    i = _positions(
        item_ids, rel[Col.ITEM].to_numpy(np.int64), "test movie_id", "models/item_index.parquet"
    )
    relevant = relevance_matrix(u, i, len(user_ids), len(item_ids))
    labels = np.full(len(user_ids), "cold", dtype=object)  # as RecommenderArrays.from_parts
    if cohorts is not None:
        cu = _positions(
            user_ids,
            cohorts[Col.USER].to_numpy(np.int64),
            "cohorts user_id",
            "models/user_index.parquet",
        )
        labels[cu] = cohorts[Col.COHORT].astype(str).to_numpy()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0).astype(np.int64)
    eligible = {"all": int(len(users))}
    for cohort in [*COHORTS, *sorted({str(c) for c in labels[users]} - set(COHORTS))]:
        eligible[cohort] = int((labels[users] == cohort).sum())
    if 0 < sample_users < len(users):
        users = np.sort(
            np.random.default_rng(seed).choice(users, size=int(sample_users), replace=False)
        )
    return EvalPlan(
        user_ids=user_ids.astype(np.int32),
        item_ids=item_ids.astype(np.int32),
        relevant=relevant,
        users=users,
        cohorts=labels,
        eligible=eligible,
        batch_size=max(1, int(batch_size)),
    )


def _positions(sorted_ids: np.ndarray, values: np.ndarray, what: str, index: str) -> np.ndarray:
    pos = np.searchsorted(sorted_ids, values)
    ok = (pos < len(sorted_ids)) & (sorted_ids[np.minimum(pos, len(sorted_ids) - 1)] == values)
    if not ok.all():
        raise ValueError(
            f"{int((~ok).sum())} {what} values are not in {index}, e.g. {values[~ok][:5].tolist()}: "
            "the split and the model stages come from different runs; run them together."
        )
    return pos.astype(np.int64)


def part_key(
    refs: Mapping[str, ArtifactRef], settings: Mapping[str, Any], extra: Mapping[str, Any]
) -> str:
    """The checkpoint key: inputs' fingerprints + settings + module sources (never the run id)."""
    from tasks.stage import source_hash

    payload = {
        "inputs": {name: ref.cache_token() for name, ref in sorted(refs.items())},
        "settings": dict(settings),
        "extra": {k: extra[k] for k in sorted(extra)},
        "code": source_hash(list(PART_MODULES)),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class PartStore:
    """The part files of one key, in a folder shared by every run of a profile (atomic writes)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    def read(self, name: str) -> tuple[pa.Table, dict[str, Any]] | None:
        path = self.path(name)
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid):  # a damaged part is recomputed, never trusted
            return None
        return table, json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))

    def write(self, name: str, table: pa.Table, meta: Mapping[str, Any]) -> None:
        schema_meta = {
            **(table.schema.metadata or {}),
            _META_KEY: json.dumps(meta, default=float).encode(),
        }
        with atomic_path(self.path(name)) as tmp:
            pq.write_table(table.replace_schema_metadata(schema_meta), tmp, compression="zstd")
