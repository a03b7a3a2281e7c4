"""The validation bench: scores one configuration on the validation users (part of :mod:`tasks.tuning`).

Everything here is fitted on ``train_fit`` and scored on ``validation`` (the last ratings of each
user's training history): the test set is never read. The bench keeps what a trial does not
change - the CF model of each CF configuration (fitted once, :mod:`tasks.cf`), the candidate
pools of each (CF configuration, pool knobs) pair - so a trial that changes only alphas,
lambda_div or boosts costs one re-rank pass. A policy trial ranks every bench user at every alpha
of the grid over the same pools (:func:`tasks.ranking.rank_variants`) and chooses each cohort's
alpha (:func:`tasks.tuning._grid.choose_alphas`); cohorts are the users' ``cohort_fit``.

Metrics per user at K = :data:`tasks.tuning._grid.TUNING_K` (Recall, MAP, NDCG;
:func:`tasks.metrics.ranking_metrics`), meaned over every bench user (a user without a list
scores 0). Users go in chunks of :data:`CHUNK` on ``threads`` threads (BLAS limited to one thread
each); results do not depend on the number of threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.metrics import ranking_metrics
from tasks.profile import CollabSection
from tasks.ranking import (
    SUB_BATCH,
    CandidatePool,
    RankingPolicy,
    RecommenderArrays,
    Variant,
    Workspace,
    cf_lists,
    concat_pools,
    content_lists,
    generate_pool,
    pool_context,
    popularity_lists,
    rank_variants,
)
from tasks.tuning._grid import TUNING_K, choose_alphas, summarise_grid

__all__ = ["CHUNK", "GridOutcome", "ValidationBench", "cf_key"]

#: Users per unit of work of a thread.
CHUNK = 128
_METRICS = ("recall", "map", "ndcg")


def cf_key(cfg: CollabSection) -> str:
    """A stable key of a CF configuration (its JSON)."""
    return json.dumps(cfg.model_dump(mode="json"), sort_keys=True)


def _nbytes(obj: Any) -> int:
    total = 0
    for value in vars(obj).values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif sp.issparse(value):
            total += value.data.nbytes + value.indices.nbytes + value.indptr.nbytes
    return total


@dataclass
class GridOutcome:
    """One policy trial: per-user metrics at every alpha and the alpha chosen per cohort."""

    per_user: dict[str, np.ndarray]  # metric -> (n_users, n_alpha)
    pool_size: np.ndarray
    candidate_hits: np.ndarray
    alpha_seconds: list[float]
    alphas: dict[str, float]  # chosen per cohort
    choices: dict[str, dict[str, Any]]
    table: Any  # the tuning table (pd.DataFrame)
    chosen: dict[str, np.ndarray]  # metric -> (n_users,) at each user's chosen alpha

    def mean(self, metric: str) -> float:
        return float(self.chosen[metric].mean()) if len(self.chosen[metric]) else 0.0


class ValidationBench:
    """Scores configurations on ``users`` (user_idx of ``base``) against their validation items.

    ``base``: the arrays built from ``train_fit`` (cohorts = ``cohort_fit``), without a CF model.
    ``relevant``: CSR (len(users) x n_items) of each bench user's relevant validation items.
    """

    def __init__(
        self,
        base: RecommenderArrays,
        users: np.ndarray,
        relevant: sp.csr_matrix,
        *,
        seed: int = 42,
        threads: int = 2,
        worker: Any = None,
        cache_bytes: float = 4e9,
        progress: Callable[[str], None] | None = None,
    ):
        self.base = base
        self.users = np.asarray(users, dtype=np.int64)
        self.relevant = sp.csr_matrix(relevant)
        self.cohorts = (
            base.cohorts[self.users]
            if base.cohorts is not None
            else np.full(len(self.users), "cold", object)
        )
        self.seed = int(seed)
        self.threads = max(1, int(threads))
        self.worker = worker
        self.cache_bytes = float(cache_bytes)
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._pools: OrderedDict[tuple, CandidatePool] = OrderedDict()
        self._local = threading.local()
        self.fit_seconds: dict[str, float] = {}
        self.n_eligible = len(self.users)  # validation users with a relevant item, before sampling
        self._say = progress or (lambda message: None)

    @property
    def n_users(self) -> int:
        return len(self.users)

    def eligible(self) -> dict[str, int]:
        """Bench users per cohort and in all."""
        labels = self.cohorts
        return {
            "all": int(len(labels)),
            **{str(c): int((labels == c).sum()) for c in sorted(set(labels))},
        }

    # -- cached parts ---------------------------------------------------------------------------
    def cf_model(self, cfg: CollabSection) -> Any:
        """The CF model of ``cfg`` fitted on train_fit (cached; least recently used dropped first)."""
        from tasks.cf import fit_cf

        key = cf_key(cfg)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        start = time.perf_counter()
        model = fit_cf(
            self.base.seen,
            self.base.user_ids,
            self.base.item_ids,
            cfg,
            self.seed,
            worker=self.worker,
        )
        self.fit_seconds[key] = time.perf_counter() - start
        self._models[key] = model
        while (
            len(self._models) > 1
            and sum(_nbytes(m) for m in self._models.values()) > self.cache_bytes
        ):
            dropped = next(iter(self._models))
            self._models.pop(dropped)
            for pool_key in [p for p in self._pools if p[0] == dropped]:
                self._pools.pop(pool_key)
        return model

    def pools(self, cfg: CollabSection, policy: RankingPolicy) -> CandidatePool:
        """The candidate pools of every bench user for a CF configuration and the pool knobs."""
        key = (cf_key(cfg), policy.pool_key(), policy.k_final)
        if key in self._pools:
            self._pools.move_to_end(key)
            return self._pools[key]
        arrays = self.base.with_cf(self.cf_model(cfg))
        ctx = pool_context(arrays, policy, None, None, policy.k_final)

        def run(users: np.ndarray) -> CandidatePool:
            ws = self._workspace(arrays.n_items)
            parts = [
                generate_pool(arrays, users[i : i + SUB_BATCH], policy, ctx, ws)
                for i in range(0, len(users), SUB_BATCH)
            ]
            return concat_pools(parts, policy.c_max)

        pools = concat_pools(self._map_chunks(run, self.users), policy.c_max)
        self._pools[key] = pools
        while len(self._pools) > 6:
            self._pools.popitem(last=False)
        return pools

    def _workspace(self, n_items: int) -> Workspace:
        ws = getattr(self._local, "ws", None)
        if ws is None or ws.scores.shape[1] != n_items:
            ws = self._local.ws = Workspace(SUB_BATCH, n_items)
        return ws

    def _map_chunks(self, fn: Callable[[np.ndarray], Any], users: np.ndarray) -> list[Any]:
        """``fn`` over chunks of users on the bench's threads, results in chunk order."""
        from threadpoolctl import threadpool_limits

        chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
        with threadpool_limits(1, "blas"):
            if self.threads <= 1 or len(chunks) <= 1:
                return [fn(c) for c in chunks]
            with ThreadPoolExecutor(self.threads) as pool:
                return list(pool.map(fn, chunks))

    # -- scoring ----------------------------------------------------------------------------------
    def metrics(self, lists: np.ndarray, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-user Recall / MAP / NDCG at :data:`TUNING_K` of lists of the bench users."""
        relevant = self.relevant if rows is None else self.relevant[rows]
        out = ranking_metrics(lists[:, :TUNING_K], relevant, ks=(TUNING_K,))
        return {m: out[m, TUNING_K] for m in _METRICS}

    def policy_grid(
        self,
        cfg: CollabSection,
        policy: RankingPolicy,
        alpha_grid: Sequence[float],
        *,
        metric: str = "recall",
        fallback: Mapping[str, float] | None = None,
    ) -> GridOutcome:
        """Every bench user at every alpha (same pools, the policy's lambda_div and boosts); the
        alpha per cohort that maximises ``metric``; the metrics at the chosen alphas."""
        grid = [float(a) for a in alpha_grid]
        arrays = self.base.with_cf(self.cf_model(cfg))
        pools = self.pools(cfg, policy)
        ctx = pool_context(arrays, policy, None, None, policy.k_final)
        index = {int(u): j for j, u in enumerate(self.users)}

        def run(users: np.ndarray) -> dict[str, Any]:
            lo = index[int(users[0])]
            sub = CandidatePool(
                *(
                    a[lo : lo + len(users)]
                    for a in (pools.item_idx, pools.source, pools.cf_raw, pools.steps)
                )
            )
            variants = [
                Variant(
                    np.full(len(users), a, np.float32),
                    policy.lambda_div,
                    policy.w_q,
                    policy.w_r,
                    policy.w_p,
                )
                for a in grid
            ]
            start = time.perf_counter()
            results = rank_variants(
                arrays,
                users,
                policy,
                variants,
                k=TUNING_K,
                ctx=ctx,
                ws=self._workspace(arrays.n_items),
                pools=sub,
            )
            seconds = (time.perf_counter() - start) / max(len(grid), 1)
            rows = np.arange(lo, lo + len(users))
            per = [self.metrics(r["item_idx"], rows) for r in results]
            return {"per": per, "seconds": seconds}

        parts = self._map_chunks(run, self.users)
        per_user = {
            m: np.concatenate([np.column_stack([p[m] for p in part["per"]]) for part in parts])
            for m in _METRICS
        }
        n_rel = np.diff(self.relevant.indptr)
        in_pool = _pool_hits(pools, self.relevant)
        table = summarise_grid(
            self.cohorts,
            grid,
            per_user,
            pool_size=pools.sizes,
            candidate_hits=in_pool,
            n_relevant=n_rel,
            alpha_seconds=[sum(p["seconds"] for p in parts)] * len(grid),
            alpha_timed_out=[False] * len(grid),
            eligible_users=self.eligible(),
        )
        tie = "map" if metric != "map" else "recall"
        cohorts = sorted({str(c) for c in self.cohorts})
        alphas, choices = choose_alphas(
            table,
            fallback or {},
            cohorts=cohorts,
            metric=f"{metric}@{TUNING_K}",
            tie_metric=f"{tie}@{TUNING_K}",
        )
        column = np.array([grid.index(alphas[str(c)]) for c in self.cohorts], dtype=np.int64)
        rows = np.arange(self.n_users)
        chosen = {m: per_user[m][rows, column] for m in _METRICS}
        return GridOutcome(
            per_user=per_user,
            pool_size=pools.sizes,
            candidate_hits=in_pool,
            alpha_seconds=[sum(p["seconds"] for p in parts)] * len(grid),
            alphas=alphas,
            choices=choices,
            table=table,
            chosen=chosen,
        )

    def fixed_policy(self, cfg: CollabSection, policy: RankingPolicy) -> dict[str, np.ndarray]:
        """Per-user metrics of a policy with its own alphas (e.g. the seed policy)."""
        arrays = self.base.with_cf(self.cf_model(cfg))
        pools = self.pools(cfg, policy)
        ctx = pool_context(arrays, policy, None, None, policy.k_final)
        index = {int(u): j for j, u in enumerate(self.users)}
        alphas = policy.alphas_of(self.cohorts)

        def run(users: np.ndarray) -> np.ndarray:
            lo = index[int(users[0])]
            sub = CandidatePool(
                *(
                    a[lo : lo + len(users)]
                    for a in (pools.item_idx, pools.source, pools.cf_raw, pools.steps)
                )
            )
            variant = Variant.of(policy, alphas[lo : lo + len(users)])
            return rank_variants(
                arrays,
                users,
                policy,
                [variant],
                k=TUNING_K,
                ctx=ctx,
                ws=self._workspace(arrays.n_items),
                pools=sub,
            )[0]["item_idx"]

        return self.metrics(np.concatenate(self._map_chunks(run, self.users)))

    def cf_only(self, cfg: CollabSection) -> dict[str, np.ndarray]:
        """Per-user metrics of the CF model's own top-k (the CF-only baselines)."""
        arrays = self.base.with_cf(self.cf_model(cfg))
        lists = np.concatenate(
            self._map_chunks(lambda u: cf_lists(arrays, u, TUNING_K), self.users)
        )
        return self.metrics(lists)

    def popularity(self) -> dict[str, np.ndarray]:
        lists = popularity_lists(self.base, self.users, TUNING_K)
        return self.metrics(lists)

    def content(self) -> dict[str, np.ndarray]:
        lists = np.concatenate(
            self._map_chunks(lambda u: content_lists(self.base, u, TUNING_K), self.users)
        )
        return self.metrics(lists)


def _pool_hits(pools: CandidatePool, relevant: sp.csr_matrix) -> np.ndarray:
    """Relevant items inside each user's pool (the ceiling of every re-ranked list)."""
    n = relevant.shape[1]
    rows, cols = relevant.nonzero()
    keys = np.sort(rows.astype(np.int64) * n + cols)
    idx = pools.item_idx.astype(np.int64)
    query = np.arange(len(idx), dtype=np.int64)[:, None] * n + np.maximum(idx, 0)
    if keys.size == 0:
        return np.zeros(len(idx), np.int32)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return ((keys[pos] == query) & (idx >= 0)).sum(axis=1).astype(np.int32)
