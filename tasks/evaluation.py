"""Evaluation: every test user in checkpointed batches - baselines, the alpha grid, the tuned policy.

Place in the pipeline: the ``evaluation`` stage (DESIGN.md steps 7-8, seeds 3c.3 and 4.1), after
``features`` and ``collaborative``; it calls the candidate functions of :mod:`tasks.candidates`,
the metrics of :mod:`tasks.metrics` and the tuning rules of :mod:`tasks.tuning`. It writes
``eval/metrics.parquet`` (long table), ``eval/paired_tests.parquet``, ``eval/gates.json``,
``eval/per_user.parquet``, ``eval/eval_manifest.json``, ``tuning/tuning_results.csv``,
``tuning/policy.json``, the six figures (:mod:`tasks.charts`) and three reports
(:mod:`tasks.reports`).

**Who.** Every user (in user_idx order) with at least one relevant held-out item (test
``relevant`` = rating >= the split's threshold); ``eval.sample_users > 0`` takes a seeded sample
instead. The users are cut into batches of ``eval.batch_size``; a batch is cut into chunks of
:data:`CHUNK` users that run on two threads.

**Per batch** (one pass; the chosen policy needs no second pass, see below):

1. Candidate pools, once per user: :func:`tasks.candidates._generate` without filters (CF seeds +
   content expansion, seen items removed). Candidate recall = relevant items inside the pool /
   relevant items: the ceiling of every re-ranked list.
2. Content cosines ``p_u . e_i`` against the whole catalogue (one GEMM per chunk): the
   ``content_full`` list and the exact content score of the re-rank's second pass.
3. The re-ranked lists at every alpha of the grid, WITH MMR, by :func:`rerank_alphas`: the
   candidate path of :func:`tasks.candidates._score_and_rerank` step for step (collab min-max
   over the pool; first pass with the rank-32 content; boosts; the best ``3 k`` re-scored with the
   exact content; MMR over them with the same similarities and tie rules), with the parts that do
   not depend on alpha computed once per user instead of once per alpha. Per alpha and user:
   Recall@10, MAP@10, NDCG@10, and the list itself. Each alpha's time is summed over the
   batches; past its budget (``eval.alpha_budget_seconds``) a grid point is skipped for the
   remaining users and reported as timed out (users_eval counts the users it finished). The
   alphas the baselines need (0, 1 and the seed policy's) are always evaluated.
   Every batch also runs the real :func:`tasks.candidates._score_and_rerank` on its first users
   with the seed policy and counts identical lists (``real_path_check`` in the manifest).
4. Baselines: ``popularity`` (training popularity order, seen items removed); ``cf_full`` (exact
   top-K of ``x_u . y_i`` over unseen items with factors - read from the pool, whose CF seeds are
   the exact top ``n_cf_seed`` of that ranking); ``content_full`` (top-K cosine over unseen items
   with metadata); ``cf_only`` = the re-ranked list at alpha 0, ``content_only`` at alpha 1,
   ``seed_policy`` at the profile's ``[policy]`` alpha of the user's cohort. Users without factors
   get the popularity list in ``cf_full``, users without a taste profile in ``content_full``.

**Tuning** (:mod:`tasks.tuning`): per cohort the alpha with the best Recall@10 (ties: MAP@10, then
the smaller alpha) among the grid points that finished (none finished: the seed alpha, and the
provenance says so); ``tuned_policy`` = each user's list at
the chosen alpha of its cohort - the same lists the grid scored, so no pass is repeated.

**Checkpoints**: each batch's per-user results (cohort, ``model|metric|k`` float64 columns, the grid
columns, each list) are one part file ``<artifacts>/<profile>/.eval-parts/<key>/batch-<i>.parquet``
written atomically. ``key`` = hash of the inputs' fingerprints, the settings that change a part
and the source of the modules that compute it - never the run id - so a killed run resumes with
its finished batches, and an unchanged re-run reads every part (the model arrays are not even
loaded). ``on_batch`` (a test hook) is called before a batch is computed.

**Aggregation**: :func:`tasks.metrics.metrics_long_table` of every model and
:func:`tasks.metrics.paired_tests_table` of the tuned policy against every baseline, each as ONE
bootstrap call over the stacked models (same resamples, so the same numbers as a call per model,
at a third of the cost; seed ``eval.seed``), Wilcoxon p-values on Recall/MAP/NDCG at K=10, the
gates (:func:`tasks.tuning.acceptance_gates`), charts and reports. The metrics
and tuning tables are validated by ``expectations/metrics.json`` and
``expectations/tuning_results.json`` before they are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from tasks.candidates import (
    _KEY_PAD,
    _NEG_INF,
    MMR_POOL_FACTOR,
    SOURCE_CF,
    SUB_BATCH,
    CandidatePool,
    RecommenderArrays,
    _concat_pools,
    _context,
    _gather_rows,
    _generate,
    _order_keys,
    _score_and_rerank,
    _seen_coords,
    _select_top,
    _top_by_key,
    _Workspace,
)
from tasks.columns import COHORTS, Col
from tasks.hybrid import blend_scores, content_from_cosine, minmax_normalise, policy_alphas
from tasks.io import ArtifactRef, atomic_path, read_table, write_json, write_table
from tasks.metrics import (
    BEYOND_ACCURACY_METRICS,
    RANKING_METRICS,
    average_precision_at_k,
    beyond_accuracy_metrics,
    metrics_long_table,
    ndcg_at_k,
    paired_tests_table,
    ranking_metrics,
    recall_at_k,
    relevance_matrix,
)
from tasks.profile import CandidatesSection, EvalSection, PolicySection, SplitSection
from tasks.stage import StageOutput, run_stage_core, stage_task
from tasks.tuning import (
    BASELINE_MODELS,
    POLICY_MODEL,
    TUNING_K,
    acceptance_gates,
    choose_alphas,
    policy_document,
    summarise_grid,
    tuning_check_frame,
    write_policy,
    write_tuning_results,
)

__all__ = [
    "CHUNK",
    "DEFAULT_ALPHA_BUDGET_SECONDS",
    "EVAL_FILES",
    "MODELS",
    "REAL_PATH_CHECK_USERS",
    "EvalPlan",
    "EvalSettings",
    "PartStore",
    "aggregate_results",
    "checkpoint_batch",
    "evaluate_batches",
    "evaluate_models",
    "evaluation_core",
    "evaluation_plan",
    "metrics_check_frame",
    "mmr_select",
    "part_key",
    "popularity_lists",
    "rerank_alphas",
    "top_k_dense",
]

#: Users per chunk: one thread's unit of work (pools, a chunk x n_items content GEMM, lists).
CHUNK = 128
#: Default time budget of one grid point (seconds of work on that alpha, summed over batches).
DEFAULT_ALPHA_BUDGET_SECONDS = 120.0
#: Users per batch whose seed-policy lists are recomputed by tasks.candidates._score_and_rerank.
REAL_PATH_CHECK_USERS = 32
#: Every model evaluated, in report order (tasks.charts.MODEL_DESCRIPTIONS says what each is).
MODELS: tuple[str, ...] = (
    POLICY_MODEL,
    "seed_policy",
    "cf_full",
    "cf_only",
    "content_full",
    "content_only",
    "popularity",
)
#: Models whose lists are computed in the batches (the tuned policy is picked from the grid).
_BATCH_MODELS = tuple(m for m in MODELS if m != POLICY_MODEL)
_FULL_MODELS = ("popularity", "cf_full", "content_full")
#: Files of the stage inside the run directory.
EVAL_FILES: dict[str, str] = {
    "metrics": "eval/metrics.parquet",
    "paired_tests": "eval/paired_tests.parquet",
    "gates": "eval/gates.json",
    "per_user": "eval/per_user.parquet",
    "eval_manifest": "eval/eval_manifest.json",
    "tuning_results": "tuning/tuning_results.csv",
    "policy": "tuning/policy.json",
}
#: Modules whose source decides what a part holds: this module and everything the candidate
#: path and the metrics import (transitively, tasks.stage._project_dependencies) - not the
#: presentation (charts, reports) or tuning, which only read the parts.
_PART_MODULES = ("tasks.evaluation", "tasks.candidates", "tasks.metrics")
_META_KEY = b"movierec_eval"
_GRID_METRICS = ("recall", "map", "ndcg")
_SIDE_FILE = "metric_context.npz"

BatchHook = Callable[[int], None]
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str = "") -> None:
    return None


# ---------------------------------------------------------------------------------------------
# Settings, plan, checkpoints
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSettings:
    """What the batches need from the profile, resolved once."""

    ks: tuple[int, ...]
    grid: tuple[float, ...]
    batch_size: int
    seed_policy: dict[str, float]
    candidates: CandidatesSection
    alpha_budget_seconds: float = DEFAULT_ALPHA_BUDGET_SECONDS
    threads: int = 2
    chunk: int = CHUNK

    @property
    def k_max(self) -> int:
        """Length of every stored list: the largest reported K (at least the tuning K)."""
        return max(max(self.ks), TUNING_K)

    @property
    def k_list(self) -> int:
        """Length of the re-ranked lists: what the system serves (k_final), at least k_max."""
        return max(self.candidates.k_final, self.k_max)

    @property
    def alphas(self) -> tuple[float, ...]:
        """Every alpha evaluated: the grid, then 0, 1 and the seed policy's if not on it."""
        extra = [0.0, 1.0, *(float(a) for a in self.seed_policy.values())]
        return tuple(dict.fromkeys([*self.grid, *extra]))

    @property
    def required(self) -> np.ndarray:
        """Alphas the baselines need (never skipped by the grid budget), as a mask over alphas."""
        need = {0.0, 1.0, *(float(a) for a in self.seed_policy.values())}
        return np.array([a in need for a in self.alphas])

    def alpha_index(self, alpha: float) -> int:
        return self.alphas.index(float(alpha))

    @classmethod
    def from_profile(
        cls,
        eval_cfg: EvalSection,
        candidates: CandidatesSection,
        policy: PolicySection,
        *,
        alpha_budget_seconds: float | None = None,
        threads: int | None = None,
        chunk: int = CHUNK,
    ) -> EvalSettings:
        budget = alpha_budget_seconds
        if budget is None:  # the profile field eval.alpha_budget_seconds, once it exists
            budget = float(getattr(eval_cfg, "alpha_budget_seconds", DEFAULT_ALPHA_BUDGET_SECONDS))
        return cls(
            ks=tuple(int(k) for k in eval_cfg.k_values),
            grid=tuple(dict.fromkeys(float(a) for a in eval_cfg.alpha_grid)),
            batch_size=int(eval_cfg.batch_size),
            seed_policy={c: float(a) for c, a in policy.as_dict().items()},
            candidates=candidates,
            alpha_budget_seconds=float(budget),
            threads=max(1, int(threads or os.cpu_count() or 1)),
            chunk=int(chunk),
        )

    def key_payload(self) -> dict[str, Any]:
        """What changes a part (threads do not: chunks are computed the same on any thread)."""
        return {
            "ks": list(self.ks),
            "alphas": list(self.alphas),
            "grid": list(self.grid),
            "batch_size": self.batch_size,
            "seed_policy": self.seed_policy,
            "candidates": self.candidates.model_dump(mode="json"),
            "alpha_budget_seconds": self.alpha_budget_seconds,
            "chunk": self.chunk,
        }


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


def _module_hash(name: str) -> str:
    """sha256 of a module's source file (found without importing it)."""
    module = sys.modules.get(name)
    path = inspect.getsourcefile(module) if module is not None else None
    if path is None:
        spec = importlib.util.find_spec(name)
        path = spec.origin if spec is not None else None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else f"{name}:absent"


def _part_modules() -> list[str]:
    from tasks.stage import _project_dependencies

    modules = {"tasks.evaluation"}
    for name in _PART_MODULES[1:]:
        modules.update(_project_dependencies(name))
    return sorted(modules)


def part_key(
    refs: Mapping[str, ArtifactRef], settings: EvalSettings, extra: Mapping[str, Any]
) -> str:
    """The checkpoint key: inputs' fingerprints + settings + module sources (never the run id)."""
    payload = {
        "inputs": {name: ref.cache_token() for name, ref in sorted(refs.items())},
        "settings": settings.key_payload(),
        "extra": {k: extra[k] for k in sorted(extra)},
        "code": [_module_hash(m) for m in _part_modules()],
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


# ---------------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------------
def _member(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``query in sorted_keys`` elementwise (searchsorted: np.isin / np.unique are slow here)."""
    if sorted_keys.size == 0:
        return np.zeros(np.shape(query), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, query), sorted_keys.size - 1)
    return sorted_keys[pos] == query


def _pad_columns(arr: np.ndarray, k: int, fill: Any = -1) -> np.ndarray:
    if arr.shape[1] >= k:
        return arr[:, :k]
    pad = np.full((arr.shape[0], k - arr.shape[1]), fill, dtype=arr.dtype)
    return np.concatenate([arr, pad], axis=1)


def top_k_dense(scores: np.ndarray, k: int, *, stride: int = 8) -> np.ndarray:
    """Exact top-k columns per row of a dense (b, n) score matrix, best first: (b, k) int32, -1 pad.

    Order: score desc, then column asc; -inf and NaN are never selected. A threshold ``t_u`` = the
    ``ceil(3k / stride)``-th best value of a strided column sample selects a superset
    ``{i : s_ui >= t_u}`` (about 3k columns) that holds every top-k column whenever it has at least
    k members; it is ranked exactly. Rows where it is smaller than k or larger than 16k (mass ties)
    are ranked exactly on the whole row. (With 1.25k - tasks.candidates.top_k_columns - about 12%
    of the rows missed at k = 50 and their full-row fallback took 80% of the time.)

    >>> top_k_dense(np.array([[0.1, 0.9, 0.5, 0.9], [-np.inf, 0.2, -np.inf, -np.inf]], np.float32), 2).tolist()
    [[1, 3], [1, -1]]
    """
    s = np.asarray(scores, dtype=np.float32)
    b, n = s.shape
    out = np.full((b, k), -1, dtype=np.int32)
    if b == 0 or k == 0 or n == 0:
        return out
    exact = np.arange(b)
    cap = 16 * k
    if n > 4 * cap:
        sample = s[:, ::stride]
        ns = sample.shape[1]
        q = min(int(math.ceil(3 * k / stride)), ns - 1)
        thr = np.partition(sample, ns - 1 - q, axis=1)[:, ns - 1 - q]
        thr = np.where(np.isfinite(thr), thr, np.float32(np.finfo(np.float32).max))
        flat = np.flatnonzero(s >= thr[:, None])
        cnt = np.diff(np.searchsorted(flat, np.arange(b + 1, dtype=np.int64) * n))
        bad = (cnt < k) | (cnt > cap)
        if bad.any():
            flat = flat[np.repeat(~bad, cnt)]
            cnt = np.where(bad, 0, cnt)
        rows = np.repeat(np.arange(b), cnt)
        width = max(int(cnt.max(initial=0)), 1)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pad_val = np.full((b, width), _NEG_INF, dtype=np.float32)
        pad_idx = np.full((b, width), -1, dtype=np.int64)
        pad_val[rows, pos] = s.reshape(-1)[flat]
        pad_idx[rows, pos] = flat - rows * n
        keys = _order_keys(pad_val, pad_idx)
        top = _top_by_key(keys, min(k, width))
        ok = np.take_along_axis(keys, top, axis=1) != _KEY_PAD
        out[:, : top.shape[1]] = np.where(ok, np.take_along_axis(pad_idx, top, axis=1), -1)
        exact = np.flatnonzero(bad)
    if len(exact):
        rows_s = s[exact]
        keys = _order_keys(rows_s, np.broadcast_to(np.arange(n), rows_s.shape))
        top = _top_by_key(keys, min(k, n))
        ok = np.take_along_axis(keys, top, axis=1) != _KEY_PAD
        out[exact] = -1
        out[exact, : top.shape[1]] = np.where(ok, top, -1)
    return out


def popularity_order(seen: sp.csr_matrix) -> np.ndarray:
    """Items by number of training ratings, most first; ties to the smaller item index."""
    counts = np.bincount(seen.indices, minlength=seen.shape[1])
    return np.argsort(-counts, kind="stable").astype(np.int64)


def popularity_lists(
    seen: sp.csr_matrix, users: np.ndarray, order: np.ndarray, k: int
) -> np.ndarray:
    """The first k items of the popularity ``order`` each user has not seen: (b, k) int32.

    The first ``k + n_seen(u)`` items of the order always hold k unseen ones, so one window of
    ``k + max n_seen`` items serves the whole batch.

    >>> seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    >>> popularity_lists(seen, np.array([0, 1]), np.array([0, 2, 1, 3]), 2).tolist()
    [[2, 1], [0, 2]]
    """
    users = np.asarray(users, dtype=np.int64)
    b, n = len(users), seen.shape[1]
    out = np.full((b, k), -1, dtype=np.int32)
    if b == 0:
        return out
    n_seen = (seen.indptr[users + 1] - seen.indptr[users]).astype(np.int64)
    window = order[: int(min(len(order), k + n_seen.max(initial=0)))]
    rows, items, _ = _seen_coords(seen, users)
    keep = ~_member(rows * n + items, np.arange(b, dtype=np.int64)[:, None] * n + window[None, :])
    rank = np.cumsum(keep, axis=1)
    keep &= rank <= k
    rr, cc = np.nonzero(keep)
    out[rr, rank[rr, cc] - 1] = window[cc]
    return out


def _cf_full_from_pool(pool: CandidatePool, arrays: RecommenderArrays, k: int) -> np.ndarray:
    """Exact CF top-k over the catalogue read from the pool's CF seeds, which are the exact top
    ``n_cf_seed`` of ``x_u . y_i`` over unseen items with factors (needs k <= n_cf_seed)."""
    idx = pool.item_idx.astype(np.int64)
    valid = idx >= 0
    item_f = arrays.item_has_factors[np.maximum(idx, 0)] & valid
    values = np.where(valid & item_f & ((pool.source & SOURCE_CF) != 0), pool.cf_raw, _NEG_INF)
    keys = _order_keys(values, np.where(valid, idx, -1))
    top = _top_by_key(keys, min(k, keys.shape[1]))
    ok = np.take_along_axis(keys, top, axis=1) != _KEY_PAD
    return _pad_columns(np.where(ok, np.take_along_axis(idx, top, axis=1), -1).astype(np.int32), k)


def mmr_select(
    pool_idx: np.ndarray, relevance: np.ndarray, similarity: np.ndarray, lambda_div: float, k: int
) -> np.ndarray:
    """:func:`tasks.candidates.mmr_rerank` with a precomputed similarity, faster; same picks.

    Positions (b, k) into ``pool_idx`` (-1 pad). See :func:`_mmr_in_tie_order` for the method.

    >>> e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> pool, rel = np.array([[0, 1, 2]]), np.array([[0.9, 0.8, 0.7]], np.float32)
    >>> sim = (e[pool] @ e[pool].transpose(0, 2, 1)).astype(np.float32)
    >>> mmr_select(pool, rel, sim, 1.0, 3).tolist(), mmr_select(pool, rel, sim, 0.25, 3).tolist()
    ([[0, 1, 2]], [[0, 2, 1]])
    """
    pool = np.asarray(pool_idx)
    rel = np.asarray(relevance, dtype=np.float32)
    order = _tie_order(pool, rel)
    rows = np.arange(pool.shape[0])
    sim = np.asarray(similarity)[rows[:, None, None], order[:, :, None], order[:, None, :]]
    picks = _mmr_in_tie_order(
        np.take_along_axis(pool, order, axis=1),
        np.take_along_axis(rel, order, axis=1),
        sim,
        lambda_div,
        k,
    )
    return np.where(picks >= 0, np.take_along_axis(order, np.maximum(picks, 0), axis=1), -1)


def _tie_order(pool: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Positions of each row in MMR's tie order: relevance desc, then item asc; unusable last."""
    avail = (pool >= 0) & np.isfinite(rel)
    keys = _order_keys(np.where(avail, rel, _NEG_INF), np.where(avail, pool, -1))
    return np.argsort(-keys, axis=1, kind="stable")


def _mmr_in_tie_order(
    pool: np.ndarray, rel: np.ndarray, sim: np.ndarray, lambda_div: float, k: int
) -> np.ndarray:
    """Greedy MMR on entries already in tie order (:func:`_tie_order`): positions (b, k), -1 pad.

    ``next = argmax lambda rel_i - (1 - lambda) max_{j chosen} sim_ij`` over the unchosen usable
    entries, the first pick being the most relevant - as :func:`tasks.candidates.mmr_rerank`,
    whose tie rule (higher relevance, then smaller item) is here simply ``argmax``'s first
    maximum, because the entries are in that order. Each step is five vectorised passes over the
    (b, c) values and one row gather of the similarity.
    """
    b, c = pool.shape
    out = np.full((b, k), -1, dtype=np.int64)
    if b == 0 or c == 0:
        return out
    avail = (pool >= 0) & np.isfinite(rel)
    lam = np.float32(lambda_div)
    rel_term = lam * np.where(avail, rel, np.float32(0.0))
    mask = np.where(avail, np.float32(0.0), _NEG_INF)
    max_sim = np.zeros((b, c), dtype=np.float32)
    value = np.empty((b, c), dtype=np.float32)
    one_minus = np.float32(1.0) - lam
    rows = np.arange(b)
    for step in range(min(k, c)):  # k greedy picks, each vectorised over the batch
        if step == 0 or lam == 1.0:
            value[:] = rel_term
        else:
            np.multiply(one_minus, max_sim, out=value)
            np.subtract(rel_term, value, out=value)
        value += mask
        pick = value.argmax(axis=1)
        ok = mask[rows, pick] == 0
        out[:, step] = np.where(ok, pick, -1)
        mask[rows, pick] = _NEG_INF
        if step == 0:
            max_sim[:] = sim[rows, pick]
        else:
            np.maximum(max_sim, sim[rows, pick], out=max_sim)
    return out


@dataclass
class _PoolParts:
    """The alpha-independent parts of the re-rank of a chunk's pools (tasks.candidates
    ._score_and_rerank computes them once per call; here once per chunk for every alpha)."""

    idx: np.ndarray  # int32 (b, c), -1 pad
    valid: np.ndarray
    key_idx: np.ndarray  # idx with -1 where not valid
    has_f: np.ndarray  # (b,)
    item_f: np.ndarray
    collab: np.ndarray
    content: np.ndarray  # first-pass content (rank-r principal subspace)
    boosts: np.ndarray  # boosts of each pool entry
    cos: np.ndarray  # (b, n_items): exact cosines p_u . e_i of the whole catalogue


def _pool_parts(
    arrays: RecommenderArrays,
    users: np.ndarray,
    pool: CandidatePool,
    cfg: CandidatesSection,
    ctx: Any,
    ws: _Workspace,
    cos: np.ndarray,
) -> _PoolParts:
    idx = pool.item_idx
    valid = idx >= 0
    safe = np.maximum(idx, 0)
    item_f = arrays.item_has_factors[safe] & valid
    red = _gather_rows(
        arrays.emb_reduced, safe, ws.buffer("reduced", (*safe.shape, arrays.emb_reduced.shape[1]))
    )
    content = content_from_cosine(
        np.matmul(red, arrays.profiles_reduced[users][:, :, None])[:, :, 0]
    )
    boosts = (
        np.float32(cfg.w_q) * arrays.quality[safe]
        + np.float32(cfg.w_r) * arrays.recency[safe]
        + np.float32(cfg.w_p) * ctx.provider_match[safe]
    )  # = tasks.candidates.boost_scores(...)[1], the same operations in the same order
    return _PoolParts(
        idx=idx,
        valid=valid,
        key_idx=np.where(valid, idx, -1),
        has_f=arrays.user_has_factors[users],
        item_f=item_f,
        collab=minmax_normalise(pool.cf_raw, item_f),
        content=content,
        boosts=boosts.astype(np.float32, copy=False),
        cos=cos,
    )


def _boosted(blend: np.ndarray, boosts: np.ndarray, cfg: CandidatesSection) -> np.ndarray:
    """``tasks.candidates.boost_scores(...)[0]`` given the boosts: clip((1 - W) blend + boosts)."""
    total = cfg.w_q + cfg.w_r + cfg.w_p
    score = np.float32(1.0 - total) * np.asarray(blend, np.float32) + boosts
    return np.clip(score, 0.0, 1.0).astype(np.float32, copy=False)


def rerank_alphas(
    arrays: RecommenderArrays,
    parts: _PoolParts,
    alpha: float,
    cfg: CandidatesSection,
    k: int,
) -> np.ndarray:
    """The served top-k lists of a chunk at one content weight alpha: (b, k) int32 item_idx.

    The steps of :func:`tasks.candidates._score_and_rerank` (with MMR), on the precomputed
    :class:`_PoolParts`: first-pass blend + boosts over the pool, the best ``MMR_POOL_FACTOR * k``
    re-scored with the exact content (read from the catalogue cosines), MMR by
    :func:`mmr_select`. Only the exact cosines are computed differently (one GEMM against the
    catalogue instead of a product per re-scored item): equal up to float rounding.
    """
    b = len(parts.has_f)
    alphas = np.full(b, alpha, dtype=np.float32)
    blend = blend_scores(parts.content, parts.collab, alphas, parts.has_f, parts.item_f)
    score = _boosted(blend, parts.boosts, cfg)
    score = np.where(parts.valid & np.isfinite(score), score, _NEG_INF)
    n_top = min(MMR_POOL_FACTOR * k, parts.idx.shape[1])
    top = _select_top(score, parts.key_idx, n_top)
    t_valid = np.take_along_axis(score, top, axis=1) > _NEG_INF
    t_idx = np.where(t_valid, np.take_along_axis(parts.idx, top, axis=1), -1)
    t_safe = np.maximum(t_idx, 0)
    t_content = content_from_cosine(np.take_along_axis(parts.cos, t_safe, axis=1))
    t_collab = np.take_along_axis(parts.collab, top, axis=1)
    t_item_f = np.take_along_axis(parts.item_f, top, axis=1)
    t_blend = blend_scores(t_content, t_collab, alphas, parts.has_f, t_item_f)
    t_score = _boosted(t_blend, np.take_along_axis(parts.boosts, top, axis=1), cfg)
    t_score = np.where(t_valid & np.isfinite(t_score), t_score, _NEG_INF)
    order = _tie_order(t_idx, t_score)  # MMR's tie order first, so the similarity comes out in it
    t_idx = np.take_along_axis(t_idx, order, axis=1)
    t_score = np.take_along_axis(t_score, order, axis=1)
    emb = arrays.emb_mmr if arrays.mmr_rank < arrays.embeddings.shape[1] else arrays.embeddings
    g = emb[np.maximum(t_idx, 0)]
    sim = np.matmul(g, g.transpose(0, 2, 1))
    picks = _mmr_in_tie_order(t_idx, t_score, sim, cfg.lambda_div, k)
    got = picks >= 0
    return np.where(got, np.take_along_axis(t_idx, np.maximum(picks, 0), axis=1), -1).astype(
        np.int32
    )


# ---------------------------------------------------------------------------------------------
# One chunk of users
# ---------------------------------------------------------------------------------------------
@dataclass
class _Shared:
    """Read-only state of the batches, shared by the worker threads (plus the grid's clock)."""

    arrays: RecommenderArrays
    plan: EvalPlan
    settings: EvalSettings
    ctx: Any
    emb_t: np.ndarray
    unsafe_cols: np.ndarray
    has_profile: np.ndarray
    pop_order: np.ndarray
    item_share: np.ndarray
    n_train_users: int
    alpha_spent: np.ndarray  # seconds of work per alpha so far, all batches
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)

    @classmethod
    def build(cls, arrays: RecommenderArrays, plan: EvalPlan, settings: EvalSettings) -> _Shared:
        if arrays.n_items != plan.n_items or not np.array_equal(arrays.user_ids, plan.user_ids):
            raise ValueError(
                "the model arrays and the evaluation plan use different user/item indexes"
            )
        share, n_train = metric_context(arrays.seen)
        return cls(
            arrays=arrays,
            plan=plan,
            settings=settings,
            ctx=_context(arrays, settings.candidates, None, None, settings.k_list),
            emb_t=np.ascontiguousarray(arrays.embeddings.T),
            unsafe_cols=np.flatnonzero(~arrays.has_metadata),
            has_profile=np.abs(arrays.profiles).sum(axis=1) > 0,
            pop_order=popularity_order(arrays.seen),
            item_share=share,
            n_train_users=n_train,
            alpha_spent=np.zeros(len(settings.alphas)),
        )

    def workspace(self) -> tuple[_Workspace, np.ndarray]:
        local = self.local
        if not hasattr(local, "ws"):
            local.ws = _Workspace(SUB_BATCH, self.arrays.n_items)
            local.cos = np.empty((self.settings.chunk, self.arrays.n_items), dtype=np.float32)
        return local.ws, local.cos

    def relevant_keys(self, users: np.ndarray) -> np.ndarray:
        """Sorted keys ``local_row * n_items + item`` of the users' relevant items."""
        rows, items, _ = _seen_coords(self.plan.relevant, users)
        return rows * self.arrays.n_items + items

    def metrics(self, recs: np.ndarray, users: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
        return list_metrics(
            recs,
            self.plan.relevant[users],
            self.settings.ks,
            self.item_share,
            self.n_train_users,
            self.arrays.embeddings,
        )


def metric_context(seen: sp.csr_matrix) -> tuple[np.ndarray, int]:
    """(share of training users who rated each item, number of users with a training rating)."""
    n_train = max(int((np.diff(seen.indptr) > 0).sum()), 1)
    share = np.bincount(seen.indices, minlength=seen.shape[1]) / n_train
    return np.clip(share, 0.0, 1.0), n_train


def list_metrics(
    recs: np.ndarray,
    relevant: sp.csr_matrix,
    ks: Sequence[int],
    item_share: np.ndarray,
    n_train_users: int,
    embeddings: np.ndarray,
) -> dict[tuple[str, int], np.ndarray]:
    """Every ranking and beyond-accuracy metric (tasks.metrics) of lists at every K."""
    out = ranking_metrics(recs, relevant, ks)
    out.update(
        beyond_accuracy_metrics(
            recs, ks, item_user_share=item_share, n_train_users=n_train_users, embeddings=embeddings
        )
    )
    return out


def _chunk(shared: _Shared, users: np.ndarray, is_batch_start: bool) -> dict[str, Any]:
    """One chunk: pools, candidate recall, lists at every alpha, baselines, per-user metrics."""
    arrays, settings = shared.arrays, shared.settings
    cfg = settings.candidates
    ws, cos_buf = shared.workspace()
    b, n, k = len(users), arrays.n_items, settings.k_max
    timings: dict[str, float] = {}

    t = time.perf_counter()
    pool = _concat_pools(
        [
            _generate(arrays, users[i : i + SUB_BATCH], cfg, shared.ctx, ws)
            for i in range(0, b, SUB_BATCH)
        ],
        cfg.c_max,
    )
    rel_keys = shared.relevant_keys(users)
    in_pool = _member(
        rel_keys, np.arange(b, dtype=np.int64)[:, None] * n + np.maximum(pool.item_idx, 0)
    )
    candidate_hits = (in_pool & (pool.item_idx >= 0)).sum(axis=1)
    timings["pools"] = time.perf_counter() - t

    t = time.perf_counter()
    cos = cos_buf[:b]
    np.matmul(arrays.profiles[users], shared.emb_t, out=cos)
    parts = _pool_parts(arrays, users, pool, cfg, shared.ctx, ws, cos)
    timings["content_scores"] = time.perf_counter() - t

    # the re-ranked lists at every alpha (grid points past their budget are skipped)
    n_alpha = len(settings.alphas)
    required = settings.required
    lists = np.full((n_alpha, b, k), -1, dtype=np.int32)
    done = np.zeros(n_alpha, dtype=bool)
    spent = np.zeros(n_alpha)
    grid = {m: np.full((b, n_alpha), np.nan, dtype=np.float64) for m in _GRID_METRICS}
    n_rel = np.diff(shared.plan.relevant.indptr)[users]
    rows = np.arange(b, dtype=np.int64)[:, None]
    for j, alpha in enumerate(settings.alphas):  # one vectorised re-rank of the chunk per alpha
        if not required[j]:
            with shared.lock:
                if shared.alpha_spent[j] > settings.alpha_budget_seconds:
                    continue
        start = time.perf_counter()
        lists[j] = _pad_columns(rerank_alphas(arrays, parts, alpha, cfg, settings.k_list), k)[:, :k]
        top = lists[j][:, :TUNING_K]
        hits = _member(rel_keys, rows * n + np.maximum(top, 0)) & (top >= 0)
        grid["recall"][:, j] = recall_at_k(hits, n_rel, TUNING_K)
        grid["map"][:, j] = average_precision_at_k(hits, n_rel, TUNING_K)
        grid["ndcg"][:, j] = ndcg_at_k(hits, n_rel, TUNING_K)
        done[j] = True
        spent[j] = time.perf_counter() - start
        with shared.lock:
            shared.alpha_spent[j] += spent[j]
    timings["rerank_alphas"] = float(spent.sum())

    t = time.perf_counter()
    pop = popularity_lists(arrays.seen, users, shared.pop_order, k)
    rows_s, items_s, _ = _seen_coords(arrays.seen, users)
    cos.reshape(-1)[rows_s * n + items_s] = _NEG_INF  # after the re-ranks: pools hold no seen item
    if len(shared.unsafe_cols):
        cos[:, shared.unsafe_cols] = _NEG_INF
    content_full = top_k_dense(cos, k)
    if cfg.n_cf_seed >= k:
        cf_full = _cf_full_from_pool(pool, arrays, k)
    else:  # pools too small to hold the CF top-k: score the catalogue
        cf = arrays.user_factors[users] @ arrays.item_factors_t
        cf.reshape(-1)[rows_s * n + items_s] = _NEG_INF
        cf[:, ~(arrays.item_has_factors & arrays.has_metadata)] = _NEG_INF
        cf_full = top_k_dense(cf, k)
    recs = {
        "popularity": pop,
        "cf_full": np.where(arrays.user_has_factors[users][:, None], cf_full, pop),
        "content_full": np.where(shared.has_profile[users][:, None], content_full, pop),
        "cf_only": lists[settings.alpha_index(0.0)],
        "content_only": lists[settings.alpha_index(1.0)],
    }
    recs["seed_policy"] = lists[
        _alpha_of_users(settings, shared.plan.cohorts[users], settings.seed_policy), np.arange(b)
    ]
    timings["baselines"] = time.perf_counter() - t

    check = {"users": 0, "identical": 0}
    if is_batch_start:  # the real re-rank function on the batch's first users: same lists?
        t = time.perf_counter()
        m = min(REAL_PATH_CHECK_USERS, b)
        sub = CandidatePool(pool.item_idx[:m], pool.source[:m], pool.cf_raw[:m], pool.steps[:m])
        real = _score_and_rerank(
            arrays,
            users[:m],
            sub,
            policy_alphas(shared.plan.cohorts[users[:m]], settings.seed_policy),
            cfg,
            shared.ctx,
            ws,
            settings.k_list,
            True,
            MMR_POOL_FACTOR * settings.k_list,
        )["item_idx"]
        same = (_pad_columns(real, k)[:, :k] == recs["seed_policy"][:m]).all(axis=1)
        check = {"users": int(m), "identical": int(same.sum())}
        timings["real_path_check"] = time.perf_counter() - t

    return {
        "lists": lists,
        "done": done,
        "recs": recs,
        "grid": grid,
        "alpha_seconds": spent,
        "pool_size": pool.sizes.astype(np.int32),
        "candidate_hits": candidate_hits.astype(np.int32),
        "n_relevant": n_rel.astype(np.int32),
        "real_path_check": check,
        "timings": timings,
    }


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------
def _metric_column(model: str, metric: str, k: int) -> str:
    return f"{model}|{metric}|{k}"


def _grid_column(j: int, metric: str) -> str:
    return f"alpha|{j}|{metric}@{TUNING_K}"


def _recs_column(name: str) -> str:
    return f"recs|{name}"


def _alpha_recs_column(j: int) -> str:
    return f"recs|alpha|{j}"


def _fixed_list(recs: np.ndarray) -> pa.FixedSizeListArray:
    recs = np.ascontiguousarray(recs, dtype=np.int32)
    return pa.FixedSizeListArray.from_arrays(pa.array(recs.reshape(-1)), recs.shape[1])


def _list_values(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.int32).reshape(
        -1, width
    )


def _batch_table(
    shared: _Shared, users: np.ndarray, chunks: list[dict[str, Any]], metrics: Mapping[str, Mapping]
) -> tuple[pa.Table, dict[str, Any]]:
    settings = shared.settings

    def cat(name: str) -> np.ndarray:
        return np.concatenate([c[name] for c in chunks])

    columns: dict[str, Any] = {
        "user_idx": pa.array(users.astype(np.int32)),
        "cohort": pa.array(shared.plan.cohorts[users].astype(str)),
        "n_relevant": pa.array(cat("n_relevant")),
        "pool_size": pa.array(cat("pool_size")),
        "candidate_hits": pa.array(cat("candidate_hits")),
    }
    for model in _BATCH_MODELS:
        for key, values in metrics[model].items():
            # float64, like the tuned policy's metrics: identical lists must give identical numbers
            columns[_metric_column(model, *key)] = pa.array(np.asarray(values, dtype=np.float64))
    for j in range(len(settings.alphas)):
        for metric in _GRID_METRICS:
            columns[_grid_column(j, metric)] = pa.array(
                np.concatenate([c["grid"][metric][:, j] for c in chunks])
            )
        columns[_alpha_recs_column(j)] = _fixed_list(
            np.concatenate([c["lists"][j] for c in chunks])
        )
    for model in _FULL_MODELS:
        columns[_recs_column(model)] = _fixed_list(
            np.concatenate([c["recs"][model] for c in chunks])
        )
    timings: dict[str, float] = {}
    for c in chunks:
        for name, value in c["timings"].items():
            timings[name] = timings.get(name, 0.0) + value
    check = {
        "users": sum(c["real_path_check"]["users"] for c in chunks),
        "identical": sum(c["real_path_check"]["identical"] for c in chunks),
    }
    meta = {
        "alpha_seconds": [float(x) for x in np.sum([c["alpha_seconds"] for c in chunks], axis=0)],
        "alpha_complete": [bool(x) for x in np.all([c["done"] for c in chunks], axis=0)],
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "real_path_check": check,
        "users": int(len(users)),
    }
    return pa.table(columns), meta


class _SharedSource:
    """Builds the shared state (loading the model arrays) only when a batch must be computed."""

    def __init__(
        self,
        load: Callable[[], RecommenderArrays] | RecommenderArrays,
        plan: EvalPlan,
        settings: EvalSettings,
    ):
        self._load, self.plan, self.settings = load, plan, settings
        self._shared: _Shared | None = None
        self.load_seconds = 0.0

    def get(self) -> _Shared:
        if self._shared is None:
            start = time.perf_counter()
            arrays = self._load if isinstance(self._load, RecommenderArrays) else self._load()
            self._shared = _Shared.build(arrays, self.plan, self.settings)
            self.load_seconds = time.perf_counter() - start
        return self._shared


@dataclass
class BatchResults:
    """Every batch's part (in batch order) and how each was obtained."""

    table: pa.Table
    metas: list[dict[str, Any]]
    computed: list[int]
    reused: list[int]
    seconds: float
    load_seconds: float
    shared: _Shared | None


def _compute_batch(shared: _Shared, users: np.ndarray) -> tuple[pa.Table, dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    chunk = shared.settings.chunk
    starts = list(range(0, len(users), chunk))

    def run(lo: int) -> dict[str, Any]:
        return _chunk(shared, users[lo : lo + chunk], lo == 0)

    def model_metrics(model: str) -> dict[tuple[str, int], np.ndarray]:
        # per batch, not per chunk: tasks.metrics has a fixed cost per call (the diversity
        # recomputes the norms of every embedding, ~25 ms at 87.6k x 384)
        recs = np.concatenate([c["recs"][model] for c in chunks])
        return shared.metrics(recs, users)

    threads = shared.settings.threads
    with threadpool_limits(1, "blas"):  # one BLAS thread per worker thread
        if threads <= 1 or len(starts) <= 1:
            chunks = [run(lo) for lo in starts]
        else:
            with ThreadPoolExecutor(min(threads, len(starts))) as pool:
                chunks = list(pool.map(run, starts))
        start = time.perf_counter()
        if threads <= 1:
            metrics = {m: model_metrics(m) for m in _BATCH_MODELS}
        else:
            with ThreadPoolExecutor(threads) as pool:
                metrics = dict(
                    zip(_BATCH_MODELS, pool.map(model_metrics, _BATCH_MODELS), strict=True)
                )
        chunks[0]["timings"]["metrics"] = time.perf_counter() - start
    return _batch_table(shared, users, chunks, metrics)


def evaluate_batches(
    load: Callable[[], RecommenderArrays] | RecommenderArrays,
    plan: EvalPlan,
    settings: EvalSettings,
    store: PartStore,
    *,
    on_batch: BatchHook | None = None,
    progress: Progress = _no_progress,
    span: tuple[float, float] = (0.02, 0.8),
) -> BatchResults:
    """Every batch, from its checkpoint when one exists, else computed and checkpointed.

    The grid's clock continues from the parts on disk, so a resumed run keeps each alpha's budget.
    """
    source = _SharedSource(load, plan, settings)
    start = time.perf_counter()
    tables, metas, computed, reused = [], [], [], []
    for index in range(plan.n_batches):
        users = plan.batch(index)
        name = f"batch-{index:05d}.parquet"
        found = store.read(name)
        if found is not None and np.array_equal(
            found[0].column("user_idx").to_numpy(), users.astype(np.int32)
        ):
            table, meta = found
            reused.append(index)
        else:
            if on_batch is not None:
                on_batch(index)
            shared = source.get()
            spent = np.zeros(len(settings.alphas))
            for earlier in metas:
                spent += np.asarray(earlier["alpha_seconds"], dtype=float)
            with shared.lock:
                shared.alpha_spent[:] = spent
            table, meta = _compute_batch(shared, users)
            meta["batch"] = index
            store.write(name, table, meta)
            computed.append(index)
        tables.append(table)
        metas.append(meta)
        progress(
            span[0] + (span[1] - span[0]) * (index + 1) / plan.n_batches,
            f"batch {index + 1}/{plan.n_batches}: {len(computed)} computed, {len(reused)} from checkpoints",
        )
    return BatchResults(
        table=pa.concat_tables(tables) if tables else pa.table({}),
        metas=metas,
        computed=computed,
        reused=reused,
        seconds=time.perf_counter() - start,
        load_seconds=source.load_seconds,
        shared=source._shared,
    )


# ---------------------------------------------------------------------------------------------
# Tuning and aggregation
# ---------------------------------------------------------------------------------------------
def grid_summary(
    results: BatchResults, settings: EvalSettings, eligible: Mapping[str, int]
) -> pd.DataFrame:
    """tuning_results (tasks.tuning.summarise_grid) of the grid's alphas, from the parts."""
    table = results.table
    grid_j = [settings.alpha_index(a) for a in settings.grid]
    per_user = {
        m: np.column_stack([table.column(_grid_column(j, m)).to_numpy() for j in grid_j])
        for m in _GRID_METRICS
    }
    seconds = np.sum([m["alpha_seconds"] for m in results.metas], axis=0)[grid_j]
    complete = np.all([m["alpha_complete"] for m in results.metas], axis=0)[grid_j]
    return summarise_grid(
        table.column("cohort").to_numpy(zero_copy_only=False),
        settings.grid,
        per_user,
        pool_size=table.column("pool_size").to_numpy(),
        candidate_hits=table.column("candidate_hits").to_numpy(),
        n_relevant=table.column("n_relevant").to_numpy(),
        alpha_seconds=seconds.tolist(),
        alpha_timed_out=(~complete).tolist(),
        eligible_users=eligible,
    )


def _per_user(table: pa.Table, model: str, ks: Sequence[int]) -> dict[tuple[str, int], np.ndarray]:
    out: dict[tuple[str, int], np.ndarray] = {}
    for metric in (*RANKING_METRICS, *BEYOND_ACCURACY_METRICS):
        for k in ks:
            name = _metric_column(model, metric, k)
            if name in table.column_names:
                out[metric, int(k)] = table.column(name).to_numpy().astype(np.float64)
    return out


def _alpha_of_users(
    settings: EvalSettings, labels: np.ndarray, policy: Mapping[str, float]
) -> np.ndarray:
    """Index into ``settings.alphas`` of each user's cohort alpha under ``policy``."""
    policy_alphas(labels, policy)  # raises when a cohort is not covered
    out = np.zeros(len(labels), dtype=np.int64)
    for cohort, alpha in policy.items():
        out[labels == cohort] = settings.alpha_index(alpha)
    return out


def _model_lists(
    table: pa.Table, settings: EvalSettings, labels: np.ndarray, alphas: Mapping[str, float]
) -> np.ndarray:
    """Each user's list at the alpha of its cohort (from the per-alpha lists of the parts)."""
    user_j = _alpha_of_users(settings, labels, alphas)
    out = np.full((len(labels), settings.k_max), -1, dtype=np.int32)
    for j in range(len(settings.alphas)):  # a handful of alphas; each a vectorised copy
        sel = user_j == j
        if sel.any():
            out[sel] = _list_values(table.column(_alpha_recs_column(int(j))), settings.k_max)[sel]
    return out


def metrics_check_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table plus derived flags for its suite: ``key_unique`` ((model, cohort, metric, k)
    occurs once), ``ci_contains_value`` (ci_low <= value <= ci_high, 1e-9 slack), ``value_in_range``
    (ranking metrics and coverages in [0, 1], diversity in [0, 2], novelty >= 0)."""
    out = metrics.copy()
    key = out[["model", "cohort", "metric", "k"]].astype(str).agg("|".join, axis=1)
    out["key_unique"] = ~key.duplicated(keep=False).to_numpy()
    value, low, high = (out[c].astype(float).to_numpy() for c in ("value", "ci_low", "ci_high"))
    out["ci_contains_value"] = (low <= value + 1e-9) & (value <= high + 1e-9)
    metric = out["metric"].astype(str).to_numpy()
    upper = np.where(
        metric == "intra_list_diversity", 2.0, np.where(metric == "novelty", np.inf, 1.0)
    )
    out["value_in_range"] = np.isfinite(value) & (value >= -1e-12) & (value <= upper + 1e-9)
    return out


def _wilcoxon_headline(
    paired: pd.DataFrame, labels: np.ndarray, tuned: Mapping, bases: Mapping, k: int
) -> pd.DataFrame:
    """Wilcoxon signed-rank p-values of the headline rows (Recall/MAP/NDCG at K=k).

    Zero differences dropped (``zero_method="wilcox"``); the normal approximation with tie
    correction (``method="asymptotic"``, what scipy's "auto" uses for large samples): for small
    cohorts with ties "auto" runs a 9,999-resample permutation test, about 1.4 s per row here.
    """
    import scipy.stats

    paired = paired.copy()
    headline = (paired["k"].astype(int) == k) & paired["metric"].isin(["recall", "map", "ndcg"])
    for i in np.flatnonzero(headline.to_numpy()):  # tens of rows; one scipy call each
        row = paired.iloc[i]
        key = (str(row["metric"]), k)
        diff = tuned[key] - bases[str(row["baseline"])][key]
        if row["cohort"] != "all":
            diff = diff[labels == row["cohort"]]
        p = (
            1.0
            if not np.any(diff != 0)
            else float(scipy.stats.wilcoxon(diff, zero_method="wilcox", method="asymptotic").pvalue)
        )
        paired.iloc[i, paired.columns.get_loc("wilcoxon_p")] = p
    return paired


_SEP = "\x1f"  # joins model and metric names in the stacked bootstrap calls


def _stacked_metrics_table(
    per_user: Mapping[str, Mapping[tuple[str, int], np.ndarray]],
    recs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    n_items: int,
    n_boot: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`tasks.metrics.metrics_long_table` of every model from ONE bootstrap call.

    The resamples depend only on (seed, users, n_boot), so stacking the models' per-user columns
    gives exactly the per-model tables, at a third of the cost (the draws dominate). Catalog
    coverage rows (a count, no interval) are added per model as metrics_long_table does.
    """
    stacked = {
        (f"{model}{_SEP}{metric}", k): values
        for model in MODELS
        for (metric, k), values in per_user[model].items()
    }
    table = metrics_long_table("stacked", labels, stacked, n_boot, confidence, seed)
    split = table["metric"].str.split(_SEP, n=1, expand=True)
    table = table.assign(model=split[0], metric=split[1])
    groups = [("all", np.ones(len(labels), bool))] + [
        (c, labels == c)
        for c in [*COHORTS, *sorted(set(labels) - set(COHORTS))]
        if (labels == c).any()
    ]
    ks = sorted({k for (_, k) in per_user[MODELS[0]]})
    rows = []
    for model in MODELS:
        for cohort, member in groups:
            for k in ks:
                top = recs[model][member, :k]
                present = np.zeros(n_items, dtype=bool)
                present[top[top >= 0]] = True
                value = float(present.sum()) / float(n_items)  # = tasks.metrics.catalog_coverage
                rows.append(
                    {
                        "model": model,
                        "cohort": cohort,
                        "metric": "catalog_coverage",
                        "k": int(k),
                        "value": value,
                        "ci_low": value,
                        "ci_high": value,
                        "n_users": int(member.sum()),
                    }
                )
    table = pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)
    order = {
        "model": {m: i for i, m in enumerate(MODELS)},
        "cohort": {c: i for i, (c, _) in enumerate(groups)},
        "metric": {m: i for i, m in enumerate((*RANKING_METRICS, *BEYOND_ACCURACY_METRICS))},
    }
    sort_keys = pd.DataFrame({col: table[col].map(pos) for col, pos in order.items()}).assign(
        k=table["k"]
    )
    table = table.loc[
        sort_keys.sort_values(["model", "cohort", "metric", "k"], kind="stable").index
    ]
    return table.reset_index(drop=True).astype({"k": "int64", "n_users": "int64"})


def _stacked_paired_table(
    tuned: Mapping[tuple[str, int], np.ndarray],
    bases: Mapping[str, Mapping[tuple[str, int], np.ndarray]],
    labels: np.ndarray,
    n_boot: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`tasks.metrics.paired_tests_table` of the tuned policy against every baseline from
    ONE bootstrap call (same resamples, so the same rows as one call per baseline)."""
    model_cols = {(f"{b}{_SEP}{m}", k): tuned[m, k] for b in bases for (m, k) in tuned}
    base_cols = {(f"{b}{_SEP}{m}", k): bases[b][m, k] for b in bases for (m, k) in tuned}
    table = paired_tests_table(
        POLICY_MODEL,
        "stacked",
        labels,
        model_cols,
        base_cols,
        n_boot,
        confidence,
        seed,
        wilcoxon=False,
    )
    split = table["metric"].str.split(_SEP, n=1, expand=True)
    table = table.assign(baseline=split[0], metric=split[1])
    rank = table["baseline"].map({b: i for i, b in enumerate(bases)})
    return table.loc[rank.sort_values(kind="stable").index].reset_index(drop=True)


def aggregate_results(
    results: BatchResults,
    settings: EvalSettings,
    alphas: Mapping[str, float],
    *,
    plan: EvalPlan,
    metric_inputs: tuple[np.ndarray, int, np.ndarray],
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], np.ndarray, dict]:
    """(metrics long table, paired tests, per-user Recall@10 per model, tuned lists, tuned per-user
    metrics).

    The tuned policy's lists are each user's list at the chosen alpha of its cohort; its metrics
    are computed here (``metric_inputs`` = item user share, training users, embeddings).
    """
    table = results.table
    labels = table.column("cohort").to_numpy(zero_copy_only=False).astype(object)
    users = table.column("user_idx").to_numpy().astype(np.int64)
    ks = settings.ks
    tuned_recs = _model_lists(table, settings, labels, alphas)
    share, n_train, embeddings = metric_inputs
    per_user = {
        POLICY_MODEL: list_metrics(tuned_recs, plan.relevant[users], ks, share, n_train, embeddings)
    }
    recs = {POLICY_MODEL: tuned_recs}
    for model in _BATCH_MODELS:
        per_user[model] = _per_user(table, model, ks)
        if model in _FULL_MODELS:
            recs[model] = _list_values(table.column(_recs_column(model)), settings.k_max)
        elif model == "seed_policy":
            recs[model] = _model_lists(table, settings, labels, settings.seed_policy)
        else:
            a = 0.0 if model == "cf_only" else 1.0
            recs[model] = _list_values(
                table.column(_alpha_recs_column(settings.alpha_index(a))), settings.k_max
            )
    metrics = _stacked_metrics_table(per_user, recs, labels, plan.n_items, n_boot, confidence, seed)
    keys = [(m, int(k)) for m in RANKING_METRICS for k in ks]
    tuned = {key: per_user[POLICY_MODEL][key] for key in keys}
    bases = {b: {key: per_user[b][key] for key in keys} for b in BASELINE_MODELS}
    paired = _stacked_paired_table(tuned, bases, labels, n_boot, confidence, seed)
    if TUNING_K in ks:
        paired = _wilcoxon_headline(paired, labels, tuned, bases, TUNING_K)
    k_recall = TUNING_K if TUNING_K in ks else ks[0]
    per_user_recall = {m: per_user[m][("recall", k_recall)] for m in MODELS}
    return metrics, paired, per_user_recall, tuned_recs, per_user[POLICY_MODEL]


# ---------------------------------------------------------------------------------------------
# Stage core and task
# ---------------------------------------------------------------------------------------------
def _read_json(ref: ArtifactRef | None) -> dict[str, Any]:
    if ref is None or not ref.path.exists():
        return {}
    try:
        return json.loads(ref.path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _metric_inputs(
    results: BatchResults,
    store: PartStore,
    refs: Mapping[str, ArtifactRef],
    load: Callable[[], RecommenderArrays],
) -> tuple[np.ndarray, int, np.ndarray]:
    """Item user shares, training users and embeddings for the tuned policy's metrics: from the
    loaded arrays, else from the checkpoint folder's side file and the embeddings file."""
    side = store.path(_SIDE_FILE)
    if results.shared is not None:
        shared = results.shared
        with atomic_path(side) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, item_share=shared.item_share, n_train_users=shared.n_train_users)
        return shared.item_share, shared.n_train_users, shared.arrays.embeddings
    if side.exists() and "content_embeddings" in refs:
        with np.load(side) as data:
            share, n_train = data["item_share"], int(data["n_train_users"])
        return share, n_train, np.load(refs["content_embeddings"].path)
    arrays = load()
    share, n_train = metric_context(arrays.seen)
    return share, n_train, arrays.embeddings


def _candidate_recall(table: pa.Table) -> dict[str, float]:
    """Share of the held-out relevant items that were inside the candidate pool, per cohort and
    over all evaluated users (sum of items in the pool / sum of relevant items)."""
    labels = table.column("cohort").to_numpy(zero_copy_only=False)
    hits = table.column("candidate_hits").to_numpy().astype(np.float64)
    n_rel = table.column("n_relevant").to_numpy().astype(np.float64)
    out = {"all": float(hits.sum() / max(n_rel.sum(), 1.0))}
    for cohort in [*COHORTS, *sorted(set(labels) - set(COHORTS))]:
        member = labels == cohort
        if member.any():
            out[str(cohort)] = float(hits[member].sum() / max(n_rel[member].sum(), 1.0))
    return out


def _sum_timings(metas: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for meta in metas:
        for name, value in meta.get("timings", {}).items():
            total[name] = round(total.get(name, 0.0) + float(value), 3)
    return total


def _per_user_frame(
    plan: EvalPlan,
    table: pa.Table,
    tuned_recs: np.ndarray,
    tuned_metrics: Mapping,
    settings: EvalSettings,
) -> pd.DataFrame:
    """eval/per_user.parquet, for case studies: per evaluated user its cohort, relevant items,
    pool size, candidate recall, Recall/MAP/NDCG@10 of every model and the tuned list (movie ids)."""
    users = table.column("user_idx").to_numpy().astype(np.int64)
    n_rel = table.column("n_relevant").to_numpy()
    frame = pd.DataFrame(
        {
            Col.USER: plan.user_ids[users].astype(np.int32),
            Col.COHORT: table.column("cohort").to_numpy(zero_copy_only=False).astype(str),
            "n_relevant": n_rel.astype(np.int32),
            "pool_size": table.column("pool_size").to_numpy().astype(np.int32),
            "candidate_recall": (
                table.column("candidate_hits").to_numpy() / np.maximum(n_rel, 1)
            ).astype(np.float32),
        }
    )
    k = TUNING_K if TUNING_K in settings.ks else settings.ks[0]
    for model in MODELS:
        for metric in ("recall", "map", "ndcg"):
            if model == POLICY_MODEL:
                values = tuned_metrics[metric, k]
            else:
                values = table.column(_metric_column(model, metric, k)).to_numpy()
            frame[f"{model}_{metric}@{k}"] = np.asarray(values, dtype=np.float32)
    movie_ids = np.where(tuned_recs >= 0, plan.item_ids[np.maximum(tuned_recs, 0)], -1).astype(
        np.int32
    )
    frame[f"{POLICY_MODEL}_movie_ids"] = list(movie_ids)  # best first; -1 = no item
    return frame


def _write_charts_and_reports(
    run_path: Path,
    refs: Mapping[str, ArtifactRef],
    plan: EvalPlan,
    settings: EvalSettings,
    eval_cfg: EvalSection,
    split_cfg: SplitSection,
    metrics: pd.DataFrame,
    paired: pd.DataFrame,
    tuning: pd.DataFrame,
    policy_doc: Mapping[str, Any],
    gates: Mapping[str, Any],
    per_user_recall: Mapping[str, np.ndarray],
    candidate_recall: Mapping[str, float],
) -> dict[str, ArtifactRef]:
    """The six figures (tasks.charts) and three reports (tasks.reports), from this run's tables."""
    from tasks.charts import write_all_charts
    from tasks.reports import write_offline_reports

    artifacts: dict[str, ArtifactRef] = {}
    figures = write_all_charts(
        run_path,
        metrics,
        tuning,
        per_user_recall,
        paired=paired,
        policy=policy_doc,
        k=TUNING_K,
        min_lift=eval_cfg.min_lift,
    )
    for name, path in figures.items():
        artifacts[f"figure_{name}"] = ArtifactRef.of(
            run_path, Path(path).relative_to(run_path).as_posix()
        )
    context = {
        "run_id": run_path.name,
        "profile": run_path.parent.name,
        "split": split_cfg.model_dump(mode="json"),
        "dataset": {
            "n_users": int(len(plan.user_ids)),
            "n_items": int(plan.n_items),
            "n_test_users_with_relevant": int(plan.eligible["all"]),
            "n_users_evaluated": int(len(plan.users)),
            "n_relevant_pairs": int(plan.relevant.nnz),
        },
        "eval": {
            **eval_cfg.model_dump(mode="json"),
            "alpha_budget_seconds": settings.alpha_budget_seconds,
        },
        "candidate_recall": candidate_recall,
        "mmr_skipped_in_grid": False,
        "seed_policy": settings.seed_policy,
        "collab": _read_json(refs.get("collab_meta")).get("config"),
        "content": {
            k: v
            for k, v in _read_json(refs.get("content_meta")).items()
            if k in ("encoder", "embedding_size", "energy_kept", "reduction")
        },
        "sources": dict(EVAL_FILES),
    }
    reports = write_offline_reports(
        run_path, metrics, paired, tuning, policy_doc, gates, context, figures, k=TUNING_K
    )
    artifacts.update({f"report_{name}": ref for name, ref in reports.items()})

    return artifacts


def _batch_setup(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    *,
    alpha_budget_seconds: float | None = None,
    parts_root: str | None = None,
    threads: int | None = None,
) -> tuple[EvalSettings, EvalPlan, str, PartStore, Callable[[], RecommenderArrays]]:
    """Settings, plan, checkpoint key, part store and model loader of one evaluation (shared by
    :func:`evaluation_core` and :func:`checkpoint_batch`, so both use the same part files)."""
    from tasks.budget import report_progress

    run_path = Path(run_dir)
    settings = EvalSettings.from_profile(
        eval_cfg, candidates_cfg, policy, alpha_budget_seconds=alpha_budget_seconds, threads=threads
    )
    plan = evaluation_plan(
        read_table(refs["user_index"], columns=[Col.USER])[Col.USER].to_numpy(),
        read_table(refs["item_index"], columns=[Col.ITEM])[Col.ITEM].to_numpy(),
        read_table(refs["test"], columns=[Col.USER, Col.ITEM, Col.RELEVANT]),
        read_table(refs["cohorts"], columns=[Col.USER, Col.COHORT]) if "cohorts" in refs else None,
        settings.batch_size,
        sample_users=eval_cfg.sample_users,
        seed=eval_cfg.seed,
    )
    if len(plan.users) == 0:
        raise ValueError(
            f"no test user has a relevant held-out item (rating >= {split_cfg.relevance_threshold}): "
            "nothing to evaluate. Check split.relevance_threshold and data/test.parquet."
        )
    extra = {
        "relevance_threshold": split_cfg.relevance_threshold,
        "sample_users": eval_cfg.sample_users,
        "eval_seed": eval_cfg.seed,
    }
    key = part_key(refs, settings, extra)
    store = PartStore((Path(parts_root) if parts_root else run_path.parent / ".eval-parts") / key)

    def load() -> RecommenderArrays:
        report_progress(0.01, "loading models")
        return RecommenderArrays.from_run(
            run_path,
            refs=dict(refs),
            relevance_threshold=split_cfg.relevance_threshold,
            m_seed_items=candidates_cfg.m_seed_items,
        )

    return settings, plan, key, store, load


@dataclass
class _WorkerState:
    """One evaluation's plan, part store and (once a batch is computed) loaded model arrays."""

    settings: EvalSettings
    plan: EvalPlan
    key: str
    store: PartStore
    source: _SharedSource


#: What a worker process keeps between batches, per set of inputs (only the newest is kept).
_WORKER_STATE: dict[str, _WorkerState] = {}


def checkpoint_batch(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    index: int | None,
    *,
    parts_root: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Compute batch ``index`` of the evaluation and write its part file, unless a valid part is
    already there - for a remote worker (:mod:`flows.dask_batches`); the ``evaluation`` stage then
    reuses the part exactly as if it had computed it (same key, same file, same columns).

    ``index=None`` only plans: returns ``{"n_batches", "missing", "parts_folder"}``, the batches
    whose part is missing. Otherwise returns ``{"batch", "computed", "users", "seconds"}``.
    The plan and the model arrays are loaded once per process and set of inputs (a worker
    computes many batches). The alpha grid's time budget counts the earlier batches' parts that
    are already finished, so it is approximate when batches run in parallel.
    """
    signature = json.dumps(
        [
            str(Path(run_dir).resolve()),
            {name: ref.cache_token() for name, ref in sorted(refs.items())},
            [c.model_dump(mode="json") for c in (eval_cfg, candidates_cfg, policy, split_cfg)],
            parts_root,
            threads,
        ],
        sort_keys=True,
    )
    state = _WORKER_STATE.get(signature)
    if state is None:
        settings, plan, key, store, load = _batch_setup(
            run_dir,
            refs,
            eval_cfg,
            candidates_cfg,
            policy,
            split_cfg,
            parts_root=parts_root,
            threads=threads,
        )
        _WORKER_STATE.clear()
        state = _WORKER_STATE[signature] = _WorkerState(
            settings, plan, key, store, _SharedSource(load, plan, settings)
        )
    settings, plan, store = state.settings, state.plan, state.store

    def part_ok(i: int) -> bool:
        found = store.read(f"batch-{i:05d}.parquet")
        return found is not None and np.array_equal(
            found[0].column("user_idx").to_numpy(), plan.batch(i).astype(np.int32)
        )

    if index is None:
        missing = [i for i in range(plan.n_batches) if not part_ok(i)]
        return {"n_batches": plan.n_batches, "missing": missing, "parts_folder": str(store.folder)}
    if not 0 <= index < plan.n_batches:
        raise ValueError(f"batch {index} does not exist: the plan has {plan.n_batches} batches")
    started = time.perf_counter()
    users = plan.batch(index)
    if part_ok(index):
        return {"batch": index, "computed": False, "users": int(len(users)), "seconds": 0.0}
    shared = state.source.get()
    spent = np.zeros(len(settings.alphas))
    for earlier in range(index):
        path = store.path(f"batch-{earlier:05d}.parquet")
        if path.exists():
            with contextlib.suppress(OSError, pa.ArrowInvalid, json.JSONDecodeError):
                meta = json.loads((pq.read_schema(path).metadata or {}).get(_META_KEY, b"{}"))
                spent += np.asarray(meta.get("alpha_seconds", np.zeros(len(spent))), dtype=float)
    with shared.lock:
        shared.alpha_spent[:] = spent
    table, meta = _compute_batch(shared, users)
    meta["batch"] = index
    store.write(f"batch-{index:05d}.parquet", table, meta)
    return {
        "batch": index,
        "computed": True,
        "users": int(len(users)),
        "seconds": round(time.perf_counter() - started, 3),
    }


def evaluation_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    seed: int,
    *,
    alpha_budget_seconds: float | None = None,
    parts_root: str | None = None,
    threads: int | None = None,
    on_batch: BatchHook | None = None,
    reports: bool = True,
) -> dict[str, Any]:
    """Pure core of the ``evaluation`` stage (module docstring); returns refs + facts.

    ``refs``: the features and collaborative stages' artifacts plus ``train``, ``test``,
    ``cohorts`` and ``movies``. ``parts_root``: the checkpoint folder (default
    ``<run_dir>/../.eval-parts``). ``on_batch(batch)`` is called before a batch is computed (not
    when it is read from a checkpoint); tests use it to interrupt a run. ``seed`` (the run seed)
    is recorded; the bootstrap uses ``eval.seed``. ``reports=False`` skips figures and reports.
    """
    from tasks.budget import report_progress
    from tasks.validation import require_valid

    started = time.perf_counter()
    run_path = Path(run_dir)
    report_progress(0.0, "planning the evaluation")
    settings, plan, key, store, load = _batch_setup(
        run_dir,
        refs,
        eval_cfg,
        candidates_cfg,
        policy,
        split_cfg,
        alpha_budget_seconds=alpha_budget_seconds,
        parts_root=parts_root,
        threads=threads,
    )

    results = evaluate_batches(
        load, plan, settings, store, on_batch=on_batch, progress=report_progress
    )

    report_progress(0.8, "choosing the policy")
    tuning = grid_summary(results, settings, plan.eligible)
    require_valid(
        tuning_check_frame(tuning),
        "tuning_results",
        source=str(run_path / EVAL_FILES["tuning_results"]),
    )
    # a timed-out grid point has no list for the users it skipped: never chosen (seed alpha instead)
    alphas, choices = choose_alphas(tuning, settings.seed_policy, allow_timed_out=False)
    timed_out = sorted({float(a) for a in tuning.loc[tuning["alpha_timed_out"], "alpha"]})
    policy_doc = policy_document(
        alphas,
        choices,
        grid=settings.grid,
        run_id=run_path.name,
        profile=run_path.parent.name,
        n_users=plan.users_per_cohort(),
        seed_policy=settings.seed_policy,
        mmr_in_grid=True,
        timed_out_alphas=timed_out,
    )

    report_progress(0.82, "metrics, bootstrap intervals and paired tests")
    agg_start = time.perf_counter()
    metrics, paired, per_user_recall, tuned_recs, tuned_metrics = aggregate_results(
        results,
        settings,
        alphas,
        plan=plan,
        metric_inputs=_metric_inputs(results, store, refs, load),
        n_boot=eval_cfg.bootstrap_samples,
        confidence=eval_cfg.confidence,
        seed=eval_cfg.seed,
    )
    require_valid(
        metrics_check_frame(metrics), "metrics", source=str(run_path / EVAL_FILES["metrics"])
    )
    gates = acceptance_gates(metrics, paired, min_lift=eval_cfg.min_lift)
    candidate_recall = _candidate_recall(results.table)
    aggregate_seconds = time.perf_counter() - agg_start

    artifacts: dict[str, ArtifactRef] = {
        "metrics": write_table(metrics, run_path, EVAL_FILES["metrics"]),
        "paired_tests": write_table(paired, run_path, EVAL_FILES["paired_tests"]),
        "gates": write_json(gates, run_path, EVAL_FILES["gates"]),
        "tuning_results": write_tuning_results(tuning, run_path, EVAL_FILES["tuning_results"]),
        "policy": write_policy(policy_doc, run_path, EVAL_FILES["policy"]),
        "per_user": write_table(
            _per_user_frame(plan, results.table, tuned_recs, tuned_metrics, settings),
            run_path,
            EVAL_FILES["per_user"],
        ),
    }

    if reports:
        report_progress(0.92, "charts and reports")
        artifacts.update(
            _write_charts_and_reports(
                run_path,
                refs,
                plan,
                settings,
                eval_cfg,
                split_cfg,
                metrics,
                paired,
                tuning,
                policy_doc,
                gates,
                per_user_recall,
                candidate_recall,
            )
        )
    n_eval = len(plan.users)
    check = {
        "users": sum(m.get("real_path_check", {}).get("users", 0) for m in results.metas),
        "identical": sum(m.get("real_path_check", {}).get("identical", 0) for m in results.metas),
    }
    headline = metrics.loc[
        (metrics["cohort"] == "all")
        & metrics["metric"].isin(["recall", "map"])
        & (metrics["k"] == TUNING_K)
    ]
    facts = {
        "users_eval": int(n_eval),
        "users_with_relevant": int(plan.eligible["all"]),
        "batches": plan.n_batches,
        "batches_computed": len(results.computed),
        "batches_reused": len(results.reused),
        "parts_folder": str(store.folder),
        "policy": alphas,
        "policy_id": policy_doc["policy_id"],
        "gates_passed": bool(gates["all_passed"]),
        "failed_gates": [g["name"] for g in gates["gates"] if g["passed"] is not True],
        "timed_out_alphas": timed_out,
        "real_path_check": check,
        "candidate_recall": candidate_recall,
        "headline": {
            f"{r['model']}|{r['metric']}@{TUNING_K}": round(float(r["value"]), 6)
            for r in headline.to_dict("records")
        },
        "seconds": {
            "load": round(results.load_seconds, 3),
            "batches": round(results.seconds, 3),
            "aggregate": round(aggregate_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        "users_per_second": round(n_eval / results.seconds, 1)
        if results.computed and results.seconds > 0
        else None,
        "work_seconds": _sum_timings(results.metas),
    }
    artifacts["eval_manifest"] = write_json(
        {"kind": "evaluation", "key": key, "settings": settings.key_payload(), "facts": facts},
        run_path,
        EVAL_FILES["eval_manifest"],
    )
    report_progress(1.0, "done")
    return {"artifacts": artifacts, "facts": facts}


@stage_task("evaluation")
def evaluate_models(
    features: StageOutput,
    collab: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
    movies: ArtifactRef | None = None,
) -> StageOutput:
    """Stage task ``evaluation``: every test user, baselines, alpha grid, tuned policy, gates,
    charts and reports (see :mod:`tasks.evaluation`).

    ``features`` / ``collab`` are the outputs of the features and collaborative stages (their
    artifacts are looked up by name); ``train``, ``test`` and ``cohorts`` come from the split,
    ``movies`` from ingest. The inputs' fingerprints and the config sections are the cache key.
    Batches are checkpointed in ``<artifacts>/<profile>/.eval-parts/``, so a killed or timed-out
    run resumes there.
    """
    refs: dict[str, ArtifactRef] = {
        **features.artifacts,
        **collab.artifacts,
        "train": train,
        "test": test,
        "cohorts": cohorts,
    }
    if movies is not None:
        refs["movies"] = movies
    result = run_stage_core(
        "evaluation",
        budget_seconds,
        evaluation_core,
        run_dir,
        refs,
        eval_cfg,
        candidates_cfg,
        policy,
        split_cfg,
        seed,
    )
    return StageOutput.from_result("evaluation", result)
