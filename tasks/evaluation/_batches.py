"""Every evaluated test user's lists and metrics, batch by batch (part of :mod:`tasks.evaluation`).

The models were chosen on validation (``tuning/policy.json``, ``tuning/baselines.json``) and refit
on the full train by the ``collaborative`` stage (``models/cf/<role>/``); here each is scored ONCE
on test. Per chunk of :data:`CHUNK` users (two chunks at a time, on two threads):

- ``tuned_policy``: the ranking engine (:mod:`tasks.ranking`) with the chosen policy and CF model -
  the very function ``movierec recommend`` serves with; the pools also give the candidate recall
  (relevant items inside the pool / relevant items: the ceiling of the re-ranked list);
- ``seed_policy``: the engine with the profile's ``[policy]`` / ``[candidates]`` / ``[collab]``;
- ``ease``, ``item_knn``, ``als``: each tuned CF model's own top-k (:func:`tasks.ranking.cf_lists`);
- ``popularity`` and ``content`` (:mod:`tasks.ranking._baselines`);

then every ranking and beyond-accuracy metric of every list (:mod:`tasks.metrics`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from tasks.evaluation._plan import EvalPlan, PartStore
from tasks.io import ArtifactRef
from tasks.metrics import beyond_accuracy_metrics, ranking_metrics
from tasks.ranking import (
    RankingPolicy,
    RecommenderArrays,
    Variant,
    build_pools,
    cf_lists,
    content_lists,
    popularity_lists,
    popularity_order,
    rank_batch,
    rank_variants,
)

__all__ = [
    "CHUNK",
    "MODELS",
    "BatchResults",
    "EvalModels",
    "compute_batch",
    "evaluate_batches",
    "list_metrics",
    "metric_context",
]

#: Users per chunk: one thread's unit of work.
CHUNK = 128
#: Every model evaluated, in report order (the tuned policy first, then the baselines).
MODELS: tuple[str, ...] = (
    "tuned_policy",
    "ease",
    "item_knn",
    "als",
    "popularity",
    "content",
    "seed_policy",
)
#: Baselines that are a CF model's own top-k (their models are in models/cf/<name>/).
CF_BASELINES = ("ease", "item_knn", "als")

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str = "") -> None:
    return None


def metric_context(seen: sp.csr_matrix) -> tuple[np.ndarray, int]:
    """(share of training users who rated each item, number of users with a training rating)."""
    n_train = max(int((np.diff(seen.indptr) > 0).sum()), 1)
    share = np.bincount(seen.indices, minlength=seen.shape[1]) / n_train
    return np.clip(share, 0.0, 1.0), n_train


def list_metrics(recs: np.ndarray, relevant: sp.csr_matrix, ks: Sequence[int], item_share: np.ndarray,
                 n_train_users: int, embeddings: np.ndarray) -> dict[tuple[str, int], np.ndarray]:  # fmt: skip
    """Every ranking and beyond-accuracy metric (tasks.metrics) of lists at every K."""
    out = ranking_metrics(recs, relevant, ks)
    out.update(beyond_accuracy_metrics(recs, ks, item_user_share=item_share, n_train_users=n_train_users,
                                       embeddings=embeddings))  # fmt: skip
    return out


@dataclass
class EvalModels:
    """The arrays (full train), the two policies and every CF model, loaded once per process."""

    base: RecommenderArrays
    policy: RankingPolicy
    policy_cf: Any
    seed: RankingPolicy
    seed_cf: Any
    baselines: dict[str, Any]  # CF baseline name -> CFModel (absent: not run, e.g. EASE too big)
    pop_order: np.ndarray = field(init=False)
    item_share: np.ndarray = field(init=False)
    n_train_users: int = field(init=False)
    local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.pop_order = popularity_order(self.base)
        self.item_share, self.n_train_users = metric_context(self.base.seen)
        self.arrays_policy = self.base.with_cf(self.policy_cf)
        self.arrays_seed = self.base.with_cf(self.seed_cf)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for m in MODELS if m not in CF_BASELINES or m in self.baselines)

    @classmethod
    def load(cls, run_dir: Path | str, refs: Mapping[str, ArtifactRef], *, relevance_threshold: float,
             bayes_prior_weight: float, seed_policy: RankingPolicy) -> EvalModels:  # fmt: skip
        """From the run directory: content features, full train, and ``models/cf/*``."""
        from tasks.cf import load_cf_model
        from tasks.ranking import cf_folder, read_policy

        run_dir = Path(run_dir)
        base = RecommenderArrays.base_from_run(
            run_dir, refs=refs, relevance_threshold=relevance_threshold,
            bayes_prior_weight=bayes_prior_weight,
        )  # fmt: skip
        roles = json.loads((run_dir / "models/cf/roles.json").read_text(encoding="utf-8"))["roles"]

        def cf(role: str) -> Any:
            return load_cf_model(run_dir / cf_folder(role), ratings=base.seen)

        policy, _ = read_policy(run_dir)
        baselines = {name: cf(name) for name in CF_BASELINES if name in roles}
        return cls(base, policy, cf("policy"), seed_policy, cf("seed_policy"), baselines)


def _chunk(models: EvalModels, users: np.ndarray, k: int) -> dict[str, Any]:
    """Lists of every model for one chunk of users, and the policy's pool statistics."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    policy = models.policy
    k_list = max(policy.k_final, k)
    alphas = policy.alphas_of(models.base.cohorts[users])
    pools = build_pools(models.arrays_policy, users, policy)
    tuned = rank_variants(
        models.arrays_policy, users, policy, [Variant.of(policy, alphas)], k=k_list, pools=pools
    )[0]
    timings["tuned_policy"] = time.perf_counter() - t
    recs: dict[str, np.ndarray] = {"tuned_policy": tuned["item_idx"][:, :k]}
    t = time.perf_counter()
    recs["seed_policy"] = rank_batch(
        models.arrays_seed, users, models.seed, k=max(models.seed.k_final, k)
    )["item_idx"][:, :k]
    timings["seed_policy"] = time.perf_counter() - t
    for name, cf in models.baselines.items():
        t = time.perf_counter()
        recs[name] = cf_lists(models.base, users, k, cf=cf)
        timings[name] = time.perf_counter() - t
    t = time.perf_counter()
    recs["popularity"] = popularity_lists(models.base, users, k, order=models.pop_order)
    recs["content"] = content_lists(models.base, users, k)
    timings["popularity+content"] = time.perf_counter() - t
    return {
        "recs": recs,
        "pool_item_idx": pools.item_idx,
        "pool_size": pools.sizes.astype(np.int32),
        "timings": timings,
    }


def _pool_hits(pool_idx: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    n = relevant.shape[1]
    rows, cols = relevant.nonzero()
    keys = np.sort(rows.astype(np.int64) * n + cols)
    if keys.size == 0:
        return np.zeros(len(pool_idx), np.int32)
    idx = pool_idx.astype(np.int64)
    query = np.arange(len(idx), dtype=np.int64)[:, None] * n + np.maximum(idx, 0)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return ((keys[pos] == query) & (idx >= 0)).sum(axis=1).astype(np.int32)


def metric_column(model: str, metric: str, k: int) -> str:
    return f"{model}|{metric}|{k}"


def recs_column(model: str) -> str:
    return f"recs|{model}"


def _fixed_list(recs: np.ndarray) -> pa.FixedSizeListArray:
    recs = np.ascontiguousarray(recs, dtype=np.int32)
    return pa.FixedSizeListArray.from_arrays(pa.array(recs.reshape(-1)), recs.shape[1])


def list_values(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A fixed-size list column of a part back to an int32 (n, width) array."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.int32).reshape(
        -1, width
    )


def compute_batch(models: EvalModels, plan: EvalPlan, users: np.ndarray, ks: Sequence[int], *,
                  threads: int = 2, chunk: int = CHUNK) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """One batch: every model's lists and per-user metrics, as a part table plus its meta."""
    from threadpoolctl import threadpool_limits

    k = max(max(ks), 10)
    starts = list(range(0, len(users), chunk))
    with threadpool_limits(1, "blas"):  # one BLAS thread per worker thread
        if threads <= 1 or len(starts) <= 1:
            chunks = [_chunk(models, users[lo : lo + chunk], k) for lo in starts]
        else:
            with ThreadPoolExecutor(min(threads, len(starts))) as pool:
                chunks = list(
                    pool.map(lambda lo: _chunk(models, users[lo : lo + chunk], k), starts)
                )
        relevant = plan.relevant[users]
        t = time.perf_counter()

        def model_metrics(model: str) -> dict[tuple[str, int], np.ndarray]:
            recs = np.concatenate([c["recs"][model] for c in chunks])
            return list_metrics(
                recs, relevant, ks, models.item_share, models.n_train_users, models.base.embeddings
            )

        names = models.models
        if threads <= 1:
            metrics = {m: model_metrics(m) for m in names}
        else:
            with ThreadPoolExecutor(threads) as pool:
                metrics = dict(zip(names, pool.map(model_metrics, names), strict=True))
        metrics_seconds = time.perf_counter() - t
    pool_idx = np.concatenate([c["pool_item_idx"] for c in chunks])
    columns: dict[str, Any] = {
        "user_idx": pa.array(users.astype(np.int32)),
        "cohort": pa.array(plan.cohorts[users].astype(str)),
        "n_relevant": pa.array(np.diff(relevant.indptr).astype(np.int32)),
        "pool_size": pa.array(np.concatenate([c["pool_size"] for c in chunks])),
        "candidate_hits": pa.array(_pool_hits(pool_idx, relevant)),
    }
    for model in names:
        for key, values in metrics[model].items():
            columns[metric_column(model, *key)] = pa.array(np.asarray(values, dtype=np.float64))
        columns[recs_column(model)] = _fixed_list(
            np.concatenate([c["recs"][model] for c in chunks])
        )
    timings: dict[str, float] = {"metrics": metrics_seconds}
    for c in chunks:
        for name, value in c["timings"].items():
            timings[name] = timings.get(name, 0.0) + value
    meta = {
        "timings": {k_: round(v, 4) for k_, v in timings.items()},
        "users": int(len(users)),
        "models": list(names),
    }
    return pa.table(columns), meta


@dataclass
class BatchResults:
    """Every batch's part (in batch order) and how each was obtained."""

    table: pa.Table
    metas: list[dict[str, Any]]
    computed: list[int]
    reused: list[int]
    seconds: float
    load_seconds: float
    models: EvalModels | None


def evaluate_batches(
    load: Callable[[], EvalModels],
    plan: EvalPlan,
    ks: Sequence[int],
    store: PartStore,
    *,
    threads: int = 2,
    on_batch: Callable[[int], None] | None = None,
    progress: Progress = _no_progress,
    span: tuple[float, float] = (0.02, 0.8),
) -> BatchResults:
    """Every batch, from its checkpoint when one exists, else computed and checkpointed."""
    start = time.perf_counter()
    loaded: dict[str, Any] = {}
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
            if "models" not in loaded:
                t = time.perf_counter()
                loaded["models"] = load()
                loaded["seconds"] = time.perf_counter() - t
            table, meta = compute_batch(loaded["models"], plan, users, ks, threads=threads)
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
        load_seconds=float(loaded.get("seconds", 0.0)),
        models=loaded.get("models"),
    )
