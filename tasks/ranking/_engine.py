"""The one ranking path: pools -> scores on one scale -> exact re-score -> MMR -> top-k.

Part of :mod:`tasks.ranking`; every caller ranks through here (the evaluation, the tuning trials,
the candidates stage, ``movierec recommend``, case studies, edge cases). Per sub-batch of users:

1. pools (:mod:`tasks.ranking._pools`);
2. :func:`score_pools` - everything a policy variant does not change: CF z-scores, first-pass
   content cosines in the rank-32 principal subspace (exact dot products there, 12x less memory
   traffic than 384 dimensions) and their pool statistics, the boost signals' z-scores;
3. :func:`rerank` for one :class:`Variant` (alphas, lambda_div, boost weights): the score of
   :mod:`tasks.ranking._scores` over the pool, the best ``mmr_pool`` re-scored with the exact
   content cosine (put on the same scale with the first pass's statistics), then MMR
   (:mod:`tasks.ranking._mmr`) or, for ``lambda_div = 0``, score order. Scores returned are exact.

:func:`rank_variants` scores several variants over the same pools (the tuning's alpha grid);
:func:`rank_batch` one policy; :func:`rank_users` many users on worker processes.

Measured on ml-latest-small (TF-IDF/SVD embeddings, k_final 50, session 1): the first-pass
approximation keeps 96.8% of the items of an all-exact pipeline's lists.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tasks.budget import die_with_parent
from tasks.ranking._arrays import RecommenderArrays
from tasks.ranking._mmr import minmax_rows, mmr_in_tie_order, tie_order
from tasks.ranking._policy import RankingPolicy
from tasks.ranking._pools import (
    SUB_BATCH,
    CandidatePool,
    PoolContext,
    Workspace,
    concat_pools,
    gather_rows,
    generate_pool,
    pool_context,
)
from tasks.ranking._scores import apply_zscore, pool_zscores
from tasks.ranking._topk import NEG_INF, select_top

__all__ = [
    "TASK_USERS",
    "PoolParts",
    "build_pools",
    "fork_map",
    "Variant",
    "concat_results",
    "rank_batch",
    "rank_users",
    "rank_variants",
    "rerank",
    "score_pools",
]

#: Users per task of a worker process (a few sub-batches: small results, little IPC).
TASK_USERS = 256

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str = "") -> None:
    return None


@dataclass(frozen=True)
class Variant:
    """What changes between policies ranked over the same pools."""

    alphas: np.ndarray  # float32 (b,): content weight of each user
    lambda_div: float
    w_q: float
    w_r: float
    w_p: float

    @classmethod
    def of(cls, policy: RankingPolicy, alphas: np.ndarray) -> Variant:
        return cls(
            np.asarray(alphas, np.float32), policy.lambda_div, policy.w_q, policy.w_r, policy.w_p
        )

    def rows(self, lo: int, hi: int) -> Variant:
        return Variant(self.alphas[lo:hi], self.lambda_div, self.w_q, self.w_r, self.w_p)


@dataclass
class PoolParts:
    """The variant-independent parts of a sub-batch's pools (:func:`score_pools`)."""

    users: np.ndarray  # int64 (b,)
    idx: np.ndarray  # int32 (b, c), -1 pad
    valid: np.ndarray  # bool (b, c)
    key_idx: np.ndarray  # idx with -1 where not valid
    user_cf: np.ndarray  # bool (b,): the user has CF evidence
    item_cf: np.ndarray  # bool (b, c): the entry has CF evidence
    z_collab: np.ndarray  # float32 (b, c)
    z_content: np.ndarray  # float32 (b, c), first pass (rank-r cosines)
    content_mean: np.ndarray  # float32 (b,): statistics of the first-pass cosines
    content_sd: np.ndarray
    z_quality: np.ndarray
    z_recency: np.ndarray
    z_provider: np.ndarray
    steps: np.ndarray  # int8 (b,) relaxation step
    sizes: np.ndarray  # int (b,) pool size


def score_pools(
    arrays: RecommenderArrays,
    users: np.ndarray,
    pool: CandidatePool,
    ctx: PoolContext,
    ws: Workspace,
) -> PoolParts:
    """The variant-independent scores of the pools (module docstring, step 2)."""
    users = np.asarray(users, dtype=np.int64)
    idx = pool.item_idx
    valid = idx >= 0
    safe = np.maximum(idx, 0)
    user_cf = arrays.user_has_factors[users]
    item_cf = arrays.item_has_factors[safe] & valid
    z_cf, _, _ = pool_zscores(pool.cf_raw, item_cf)
    lowest = np.where(item_cf, z_cf, np.inf).min(axis=1)
    lowest = np.where(np.isfinite(lowest), lowest, 0.0).astype(np.float32)
    z_cf = np.where(item_cf, z_cf, lowest[:, None])
    if not user_cf.all():  # users without CF evidence: popularity is their collaborative signal
        z_pop, _, _ = pool_zscores(arrays.popularity[safe], valid)
        z_cf = np.where(user_cf[:, None], z_cf, z_pop)
    z_cf = np.where(valid, z_cf, np.float32(0.0)).astype(np.float32)
    red = gather_rows(
        arrays.emb_reduced, safe, ws.buffer("reduced", (*safe.shape, arrays.emb_reduced.shape[1]))
    )
    cos = np.matmul(red, arrays.profiles_reduced[users][:, :, None])[:, :, 0]
    z_ct, ct_mean, ct_sd = pool_zscores(cos, valid)
    return PoolParts(
        users=users,
        idx=idx,
        valid=valid,
        key_idx=np.where(valid, idx, -1),
        user_cf=user_cf,
        item_cf=item_cf,
        z_collab=z_cf,
        z_content=z_ct,
        content_mean=ct_mean,
        content_sd=ct_sd,
        z_quality=pool_zscores(arrays.quality[safe], valid)[0],
        z_recency=pool_zscores(arrays.recency[safe], valid)[0],
        z_provider=pool_zscores(ctx.provider_match[safe], valid)[0],
        steps=pool.steps.astype(np.int8),
        sizes=pool.sizes.astype(np.int32),
    )


def _take(parts: PoolParts, pos: np.ndarray) -> dict[str, np.ndarray]:
    return {
        name: np.take_along_axis(getattr(parts, name), pos, axis=1)
        for name in ("idx", "item_cf", "z_collab", "z_quality", "z_recency", "z_provider")
    }


def _score(z_content, z_collab, alphas, variant, z_q, z_r, z_p) -> tuple[np.ndarray, np.ndarray]:
    """``(score, boosts)`` of :mod:`tasks.ranking._scores`."""
    a = np.asarray(alphas, np.float32)[:, None]
    blend = a * z_content + (np.float32(1.0) - a) * z_collab
    boosts = (
        np.float32(variant.w_q) * z_q
        + np.float32(variant.w_r) * z_r
        + np.float32(variant.w_p) * z_p
    )
    total = variant.w_q + variant.w_r + variant.w_p
    return (np.float32(1.0 - total) * blend + boosts).astype(np.float32), boosts.astype(np.float32)


def rerank(
    arrays: RecommenderArrays,
    parts: PoolParts,
    variant: Variant,
    k: int,
    mmr_pool: int,
    ws: Workspace | None = None,
) -> dict[str, np.ndarray]:
    """The top-k lists of one variant over scored pools (module docstring, step 3).

    Returns (b, k) ``item_idx`` (-1 pad), ``score``, ``collab`` (z; NaN where the user or item has
    no CF evidence), ``content`` (z of the exact cosine), ``boosts`` (their weighted sum), and
    (b,) ``relaxation_step``, ``pool_size``.
    """
    b, c = parts.idx.shape
    score, _ = _score(
        parts.z_content, parts.z_collab, variant.alphas, variant,
        parts.z_quality, parts.z_recency, parts.z_provider,
    )  # fmt: skip
    score = np.where(parts.valid & np.isfinite(score), score, NEG_INF)
    n_top = min(int(mmr_pool), c)
    top = select_top(score, parts.key_idx, n_top)
    # item order within the selection: the float results then never depend on the pool's order
    top = np.take_along_axis(
        top, np.argsort(np.take_along_axis(parts.idx, top, axis=1), axis=1), axis=1
    )
    t = _take(parts, top)
    t_valid = np.take_along_axis(score, top, axis=1) > NEG_INF
    t_idx = np.where(t_valid, t["idx"], -1)
    t_safe = np.maximum(t_idx, 0)
    users = parts.users
    d = arrays.embeddings.shape[1]
    g = (
        gather_rows(arrays.embeddings, t_safe, ws.buffer("top", (*t_safe.shape, d)))
        if ws
        else arrays.embeddings[t_safe]
    )
    cos = np.matmul(g, arrays.profiles[users][:, :, None])[:, :, 0]
    t_content = apply_zscore(cos, parts.content_mean, parts.content_sd, t_valid)
    t_score, t_boosts = _score(
        t_content, t["z_collab"], variant.alphas, variant,
        t["z_quality"], t["z_recency"], t["z_provider"],
    )  # fmt: skip
    t_score = np.where(t_valid & np.isfinite(t_score), t_score, NEG_INF)
    # MMR's tie order first (score desc, item asc), so the similarity comes out in it
    order = tie_order(t_idx, t_score)
    t_idx = np.take_along_axis(t_idx, order, axis=1)
    t_score = np.take_along_axis(t_score, order, axis=1)
    if variant.lambda_div > 0:
        emb = arrays.emb_mmr
        gm = emb[np.maximum(t_idx, 0)]
        sim = np.matmul(gm, gm.transpose(0, 2, 1))
        rel = minmax_rows(t_score, t_idx >= 0)
        rel = np.where(t_score > NEG_INF, rel, NEG_INF)
        picks = mmr_in_tie_order(t_idx, rel, sim, variant.lambda_div, k)
    else:  # score order: the tie order itself
        picks = np.where(np.arange(min(k, n_top))[None, :] < (t_score > NEG_INF).sum(axis=1)[:, None],
                         np.arange(min(k, n_top))[None, :], -1)  # fmt: skip
        if picks.shape[1] < k:
            picks = np.concatenate(
                [picks, np.full((b, k - picks.shape[1]), -1, picks.dtype)], axis=1
            )
    got = picks >= 0
    p = np.maximum(picks, 0)
    pos = np.take_along_axis(order, p, axis=1)  # back to positions in the selection

    def take(a: np.ndarray) -> np.ndarray:
        return np.where(got, np.take_along_axis(a, pos, axis=1), np.nan).astype(np.float32)

    collab = np.where(parts.user_cf[:, None] & t["item_cf"], t["z_collab"], np.nan)
    return {
        "item_idx": np.where(got, np.take_along_axis(t_idx, p, axis=1), -1).astype(np.int32),
        "score": np.where(got, np.take_along_axis(t_score, p, axis=1), np.nan).astype(np.float32),
        "collab": take(collab),
        "content": take(t_content),
        "boosts": take(t_boosts),
        "relaxation_step": parts.steps,
        "pool_size": parts.sizes,
    }


def concat_results(parts: list[dict[str, np.ndarray]], k: int) -> dict[str, np.ndarray]:
    """Concatenate per-sub-batch results (an empty list gives empty arrays)."""
    if not parts:
        empty2 = {n: np.zeros((0, k), np.float32) for n in ("score", "collab", "content", "boosts")}
        return {
            "item_idx": np.zeros((0, k), np.int32),
            **empty2,
            "relaxation_step": np.zeros(0, np.int8),
            "pool_size": np.zeros(0, np.int32),
        }
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def rank_variants(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    policy: RankingPolicy,
    variants: Sequence[Variant],
    *,
    k: int | None = None,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    min_results: int | None = None,
    ctx: PoolContext | None = None,
    ws: Workspace | None = None,
    pools: CandidatePool | None = None,
) -> list[dict[str, np.ndarray]]:
    """Top-k lists of several variants over the same pools (the policy's pool knobs); one result
    dict per variant, each as :func:`rerank`. ``pools`` may be given (computed earlier for the
    same users, policy pool knobs and CF model)."""
    k = policy.k_final if k is None else int(k)
    users = np.asarray(user_idx, dtype=np.int64)
    for v in variants:
        if v.alphas.shape != users.shape:
            raise ValueError(
                f"a variant has {v.alphas.shape} alphas, expected one per user {users.shape}"
            )
    ctx = ctx or pool_context(
        arrays, policy, genres, providers, k if min_results is None else min_results
    )
    ws = ws or Workspace(min(max(len(users), 1), SUB_BATCH), arrays.n_items)
    out: list[list[dict[str, np.ndarray]]] = [[] for _ in variants]
    for lo in range(0, len(users), SUB_BATCH):
        sub = users[lo : lo + SUB_BATCH]
        if pools is None:
            pool = generate_pool(arrays, sub, policy, ctx, ws)
        else:
            pool = CandidatePool(
                *(
                    a[lo : lo + SUB_BATCH]
                    for a in (pools.item_idx, pools.source, pools.cf_raw, pools.steps)
                )
            )
        parts = score_pools(arrays, sub, pool, ctx, ws)
        for j, variant in enumerate(variants):
            out[j].append(
                rerank(arrays, parts, variant.rows(lo, lo + len(sub)), k, policy.mmr_pool, ws)
            )
    return [concat_results(o, k) for o in out]


def build_pools(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    policy: RankingPolicy,
    *,
    ctx: PoolContext | None = None,
) -> CandidatePool:
    """The candidate pools of many users (no filters) in sub-batches: for callers that rank the
    same pools many times (:func:`rank_variants` with ``pools=``)."""
    users = np.asarray(user_idx, dtype=np.int64)
    ctx = ctx or pool_context(arrays, policy, None, None, policy.k_final)
    ws = Workspace(min(max(len(users), 1), SUB_BATCH), arrays.n_items)
    parts = [
        generate_pool(arrays, users[i : i + SUB_BATCH], policy, ctx, ws)
        for i in range(0, len(users), SUB_BATCH)
    ]
    return concat_pools(parts, policy.c_max)


def rank_batch(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    policy: RankingPolicy,
    *,
    alphas: np.ndarray | None = None,
    k: int | None = None,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    min_results: int | None = None,
    ctx: PoolContext | None = None,
    ws: Workspace | None = None,
) -> dict[str, np.ndarray]:
    """Top-k lists of a batch of users under one policy (one thread; see :func:`rank_users`).

    ``alphas`` default to the policy's alpha of each user's cohort (``arrays.cohorts``). ``k``
    defaults to ``policy.k_final``; relaxation triggers when fewer than ``min_results`` (default
    k) allowed items exist. The MMR pool is always ``policy.mmr_pool``, whatever k: so the top-k
    of a k-list is the first k of the ``k_final`` list.
    """
    users = np.asarray(user_idx, dtype=np.int64)
    if alphas is None:
        cohorts = (
            arrays.cohorts[users]
            if arrays.cohorts is not None
            else np.full(len(users), "cold", object)
        )
        alphas = policy.alphas_of(cohorts)
    variant = Variant.of(policy, alphas)
    return rank_variants(
        arrays, users, policy, [variant], k=k, genres=genres, providers=providers,
        min_results=min_results, ctx=ctx, ws=ws,
    )[0]  # fmt: skip


def fork_map(fn: Callable[[int], object], n_tasks: int, workers: int) -> Iterator[object]:
    """``fn(0), fn(1), ...`` computed by ``workers`` forked processes, yielded in task order.

    Worker w computes tasks w, w + workers, ... and sends each result through a pipe. Forked
    workers share the parent's arrays copy-on-write and hold no GIL in common (threads scale
    worse: many short numpy calls). The caller is a stage's single-threaded child process
    (tasks.budget), so forking it is safe; ``os.fork`` rather than ``multiprocessing.Pool``
    because that child is daemonic. A worker's exception is re-raised here with its traceback; on
    any exit the workers are killed.
    """
    import multiprocessing.connection as mpc
    import pickle
    import traceback

    readers, pids = [], []
    try:
        for w in range(workers):
            reader, writer = mpc.Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:  # worker
                code = 0
                try:
                    reader.close()
                    die_with_parent()
                    for task in range(w, n_tasks, workers):
                        writer.send(("ok", task, fn(task)))
                except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                    code = 1
                    try:
                        pickle.dumps(exc)
                        writer.send(("error", exc, traceback.format_exc()))
                    except Exception:  # an exception that cannot be pickled
                        writer.send(
                            (
                                "error",
                                RuntimeError(f"{type(exc).__name__}: {exc}"),
                                traceback.format_exc(),
                            )
                        )
                finally:
                    os._exit(code)
            writer.close()
            readers.append(reader)
            pids.append(pid)
        pending: dict[int, object] = {}
        next_task = 0
        open_readers = list(readers)
        while next_task < n_tasks:  # ends: every task is received once, or a worker fails
            if next_task in pending:
                yield pending.pop(next_task)
                next_task += 1
                continue
            if not open_readers:
                raise RuntimeError(
                    f"ranking workers exited after {next_task} of {n_tasks} tasks without a result; "
                    "they were probably killed for using too much memory."
                )
            for conn in mpc.wait(open_readers):
                try:
                    message = conn.recv()
                except EOFError:
                    open_readers.remove(conn)
                    continue
                if message[0] == "error":
                    exc = message[1]
                    if isinstance(exc, Exception):
                        exc.add_note(f"(raised in a ranking worker)\n{message[2]}")
                    raise exc
                pending[message[1]] = message[2]
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for reader in readers:
            reader.close()


def rank_users(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    policy: RankingPolicy,
    *,
    alphas: np.ndarray | None = None,
    k: int | None = None,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Progress = _no_progress,
    report_every: int = 2000,
) -> dict[str, np.ndarray]:
    """:func:`rank_batch` for many users on ``workers`` processes (default: every core).

    Users go in tasks of :data:`TASK_USERS`; results are in the order of ``user_idx`` and identical
    for any number of workers. ``workers=1`` (or no ``fork``) computes in this process.
    """
    from threadpoolctl import threadpool_limits

    k = policy.k_final if k is None else int(k)
    users = np.asarray(user_idx, dtype=np.int64)
    if alphas is None:
        cohorts = (
            arrays.cohorts[users]
            if arrays.cohorts is not None
            else np.full(len(users), "cold", object)
        )
        alphas = policy.alphas_of(cohorts)
    alphas = np.asarray(alphas, dtype=np.float32)
    workers = max(1, int(workers or os.cpu_count() or 1))
    ctx = pool_context(arrays, policy, genres, providers, k)
    n_tasks = -(-len(users) // TASK_USERS)
    workers = min(workers, max(n_tasks, 1))
    state: dict[str, Workspace] = {}

    def run(task: int) -> dict[str, np.ndarray]:
        if "ws" not in state:
            state["ws"] = Workspace(SUB_BATCH, arrays.n_items)
        lo, hi = task * TASK_USERS, (task + 1) * TASK_USERS
        return rank_batch(
            arrays, users[lo:hi], policy, alphas=alphas[lo:hi], k=k, ctx=ctx, ws=state["ws"]
        )

    parts: list[dict[str, np.ndarray]] = []
    with threadpool_limits(1, "blas"):
        results = (
            fork_map(run, n_tasks, workers)
            if workers > 1 and hasattr(os, "fork")
            else map(run, range(n_tasks))
        )
        reported = 0
        for part in results:
            parts.append(part)
            done = min(len(users), len(parts) * TASK_USERS)
            if done - reported >= report_every or done == len(users):
                progress(done / max(len(users), 1), f"{done:,} of {len(users):,} users")
                reported = done
    return concat_results(parts, k)
