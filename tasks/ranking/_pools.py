"""Candidate pools: CF seeds + content expansion, filtered, capped (part of :mod:`tasks.ranking`).

For user u (item_idx = position in the movies sorted by movie_id), with the policy's knobs:

1. **Relaxation step** (:mod:`tasks.ranking._filters`) when genre / provider filters are asked.
2. **CF seeds**: the ``n_cf_seed`` items with the highest CF score ``s_ui`` (:mod:`tasks.cf`) among
   allowed, not excluded items with CF evidence (users without CF evidence: the most popular
   allowed, not excluded items instead, with or without CF evidence). An exact top-k
   (:func:`tasks.ranking._topk.top_k_columns`).
3. **Content expansion**: the ``k_neighbors`` nearest items of each of u's ``m_seed_items`` best
   recent liked items, in neighbour-rank order, deduplicated, allowed and not excluded only.
   A user without a liked item has no seed items and so no content expansion.
4. Union capped at ``c_max`` (all CF seeds first). **Short pools are completed**: a pool holding
   fewer than ``min(e_L(u), max(n_cf_seed, min_results, k_final), c_max)`` items gets the missing
   allowed items - by first-pass content score for users with CF evidence, by popularity for the
   others (:func:`_fill_short_pools`; only those rows pay). ``k_final`` is in the bound so that a
   list of k <= k_final ranks the same pool as the ``k_final`` list (its first k items).

Users go in sub-batches of :data:`SUB_BATCH` (32: the ``32 x n_items`` float32 score buffer stays
cache-resident, measured faster than 256); no users x items matrix ever exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tasks.ranking._arrays import RecommenderArrays
from tasks.ranking._filters import filter_levels, relaxation_steps, resolve_names, row_coords
from tasks.ranking._policy import RankingPolicy
from tasks.ranking._topk import FLT_MAX, KEY_PAD, NEG_INF, order_keys, top_by_key, top_k_columns

__all__ = [
    "SOURCE_CF",
    "SOURCE_CONTENT",
    "SUB_BATCH",
    "CandidatePool",
    "PoolContext",
    "Workspace",
    "concat_pools",
    "generate_candidates",
    "generate_pool",
    "pool_context",
]

#: Users scored against the catalogue at once (one SUB_BATCH x n_items float32 buffer per thread).
SUB_BATCH = 32
SOURCE_CF, SOURCE_CONTENT = np.uint8(1), np.uint8(2)


@dataclass
class CandidatePool:
    """A batch of padded candidate pools (-1 = no item)."""

    item_idx: np.ndarray  # int32 (b, c_max)
    source: np.ndarray  # uint8 (b, c_max): 1 CF seed, 2 content expansion, 3 both
    cf_raw: np.ndarray  # float32 (b, c_max): x_u . y_i (0 for items without factors)
    steps: np.ndarray  # int8 (b,) relaxation step

    @property
    def sizes(self) -> np.ndarray:
        return (self.item_idx >= 0).sum(axis=1)


@dataclass
class PoolContext:
    """Per-call settings shared by every sub-batch (filters, cold seeds, derived sizes)."""

    allowed: np.ndarray  # bool (3, n_items)
    allowed_counts: np.ndarray  # int64 (3,): allowed items per level
    disallowed_cols: list[np.ndarray]  # per level: item columns to exclude
    nofactor_cols: np.ndarray
    cold_seeds: np.ndarray  # int64 (3, L) popularity order of allowed items per level
    provider_match: np.ndarray  # float32 (n_items,)
    genres_active: bool
    providers_active: bool
    min_results: int


def pool_context(
    arrays: RecommenderArrays,
    policy: RankingPolicy,
    genres: Sequence[str] | None,
    providers: Sequence[str] | None,
    min_results: int | None,
) -> PoolContext:
    allowed = filter_levels(arrays, genres, providers)
    p = resolve_names(providers, arrays.provider_names, "provider")
    if p is not None:
        provider_match = arrays.provider_matrix[:, p].any(axis=1)
    else:
        provider_match = arrays.provider_matrix.any(axis=1)
    width = policy.n_cf_seed + 64
    cold = np.full((3, width), -1, dtype=np.int64)
    for level in range(3):  # three fixed levels
        keys = order_keys(
            np.where(allowed[level], arrays.popularity, NEG_INF), np.arange(arrays.n_items)
        )
        top = top_by_key(keys[None, :], min(width, arrays.n_items))[0]
        ok = keys[top] != KEY_PAD
        cold[level, : len(top)] = np.where(ok, top, -1)
    return PoolContext(
        allowed=allowed,
        allowed_counts=allowed.sum(axis=1).astype(np.int64),
        disallowed_cols=[np.flatnonzero(~allowed[level]) for level in range(3)],
        nofactor_cols=np.flatnonzero(~arrays.item_has_factors),
        cold_seeds=cold,
        provider_match=provider_match.astype(np.float32),
        genres_active=bool(genres),
        providers_active=bool(providers),
        min_results=policy.k_final if min_results is None else int(min_results),
    )


class Workspace:
    """Reusable per-thread buffers (large fresh allocations page-fault on every batch here)."""

    def __init__(self, rows: int, n_items: int):
        self.scores = np.empty((rows, n_items), dtype=np.float32)
        self.mask = np.empty((rows, n_items), dtype=bool)
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 buffer of at least ``shape`` (kept for the next sub-batch), sliced to it."""
        key = (name, shape[1:])
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < shape[0]:
            buf = np.empty(shape, dtype=np.float32)
            self._buffers[key] = buf
        return buf[: shape[0]]


def gather_rows(table: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``table[idx]`` into ``out`` (idx must be in range; ``mode="clip"`` avoids numpy's buffered
    copy that ``out=`` with the default mode makes)."""
    return np.take(table, idx, axis=0, out=out, mode="clip")


def generate_pool(
    arrays: RecommenderArrays,
    users: np.ndarray,
    policy: RankingPolicy,
    ctx: PoolContext,
    ws: Workspace,
) -> CandidatePool:
    b = len(users)
    s = ws.scores[:b]
    rows, items, _ = row_coords(arrays.exclude, users)
    if ctx.genres_active or ctx.providers_active:
        steps, _ = relaxation_steps(
            ctx.allowed,
            rows,
            items,
            b,
            ctx.min_results,
            genres_active=ctx.genres_active,
            providers_active=ctx.providers_active,
        )
    else:  # no filter requested: nothing to relax
        steps = np.zeros(b, np.int8)
    # 1. CF scores of the sub-batch against the catalogue; seen and disallowed items -> -inf
    n = arrays.n_items
    flat_s = s.reshape(-1)
    arrays.cf.score_into(users, s)
    np.put(flat_s, rows * n + items, NEG_INF)
    for level in np.unique(steps):  # at most three groups
        cols = ctx.disallowed_cols[level]
        if len(cols):
            grp = np.flatnonzero(steps == level)
            if len(grp) == b:
                s[:, cols] = NEG_INF
            else:
                s[np.ix_(grp, cols)] = NEG_INF
    # 2. content expansion: neighbours of the best recent items, neighbour-rank-major order
    m, kn = policy.m_seed_items, min(policy.k_neighbors, arrays.neighbor_idx.shape[1])
    seeds = arrays.seed_items[users, :m]
    nb = arrays.neighbor_idx[np.maximum(seeds, 0), :kn]
    nb = np.where(seeds[:, :, None] >= 0, nb, -1)
    expansion = np.ascontiguousarray(nb.transpose(0, 2, 1)).reshape(b, -1)
    r_base = (np.arange(b, dtype=np.int64) * n)[:, None]
    exp_val = flat_s.take(r_base + np.maximum(expansion, 0))
    exp_ok = (expansion >= 0) & (exp_val > NEG_INF)  # NaN compares False
    # 3. CF seeds: exact top n_cf_seed (items without factors carry no CF evidence)
    has_f = arrays.user_has_factors[users]
    cold_rows = np.flatnonzero(~has_f)
    # users without factors: which popular items are open is read before the no-factor mask
    # (their signal, popularity, needs no CF evidence)
    cand = ctx.cold_seeds[steps[cold_rows]]
    open_ = s[cold_rows[:, None], np.maximum(cand, 0)] > NEG_INF
    if len(ctx.nofactor_cols):
        s[:, ctx.nofactor_cols] = NEG_INF
    cf_idx, cf_val = top_k_columns(s, policy.n_cf_seed, mask_buffer=ws.mask, ordered=False)
    if len(cold_rows):  # users without factors: most popular allowed unseen items instead
        ok = (cand >= 0) & open_
        ok &= np.cumsum(ok, axis=1) <= policy.n_cf_seed
        rank = np.cumsum(ok, axis=1) - 1
        new_idx = np.full((len(cold_rows), policy.n_cf_seed), -1, dtype=np.int32)
        rr, cc = np.nonzero(ok)
        new_idx[rr, rank[rr, cc]] = cand[rr, cc]
        cf_idx[cold_rows] = new_idx
        cf_val[cold_rows] = np.where(new_idx >= 0, np.float32(0.0), NEG_INF)
    # 4. union without duplicates (first occurrence wins), cap at c_max
    cand = np.concatenate([cf_idx.astype(np.int64), expansion.astype(np.int64)], axis=1)
    cand_val = np.concatenate([cf_val, exp_val], axis=1)
    ok = np.concatenate([cf_idx >= 0, exp_ok], axis=1)
    src = np.concatenate(
        [
            np.full(cf_idx.shape, SOURCE_CF, np.uint8),
            np.full(expansion.shape, SOURCE_CONTENT, np.uint8),
        ],
        axis=1,
    )
    rr, cc = np.nonzero(ok)
    it = cand[rr, cc]
    # the score buffer is free now: stamp each (row, item) with a position, written in reverse so
    # that the first occurrence's position is the one left; an entry survives when it reads back
    cell = rr * n + it
    np.put(flat_s, cell[::-1], cc[::-1].astype(np.float32))
    winner = flat_s.take(cell).astype(np.int64)
    first = winner == cc
    dup = ~first
    if dup.any():
        src[rr[dup], winner[dup]] |= src[rr[dup], cc[dup]]
    keep = np.zeros_like(ok)
    keep[rr[first], cc[first]] = True
    rank = np.cumsum(keep, axis=1)
    keep &= rank <= policy.c_max
    rr, cc = np.nonzero(keep)
    out_idx = np.full((b, policy.c_max), -1, dtype=np.int32)
    out_src = np.zeros((b, policy.c_max), dtype=np.uint8)
    out_cf = np.zeros((b, policy.c_max), dtype=np.float32)
    slot = rank[rr, cc] - 1
    out_idx[rr, slot] = cand[rr, cc]
    out_src[rr, slot] = src[rr, cc]
    out_cf[rr, slot] = np.where(arrays.item_has_factors[cand[rr, cc]], cand_val[rr, cc], 0.0)
    # 5. short pools: a user with fewer allowed unseen items than a pool needs gets all of them
    sizes = keep.sum(axis=1)
    need = min(policy.c_max, max(policy.n_cf_seed, ctx.min_results, policy.k_final))
    seen_allowed = np.bincount(rows, weights=ctx.allowed[steps[rows], items], minlength=b).astype(
        np.int64
    )
    target = np.minimum(ctx.allowed_counts[steps] - seen_allowed, need)
    short = np.flatnonzero(sizes < target)
    if len(short):  # rare (users who have seen almost everything allowed): only they pay
        pool = (out_idx, out_src, out_cf)
        _fill_short_pools(arrays, users, steps, (rows, items), ctx, short, sizes, target, pool)
    return CandidatePool(item_idx=out_idx, source=out_src, cf_raw=out_cf, steps=steps)


def _fill_short_pools(
    arrays: RecommenderArrays,
    users: np.ndarray,
    steps: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    ctx: PoolContext,
    short: np.ndarray,
    sizes: np.ndarray,
    target: np.ndarray,
    pool: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Complete the pools of the ``short`` rows in place up to ``target`` items.

    CF seeds only cover items with factors and content expansion only the neighbours of the seed
    items, so an allowed unseen item can be in neither (1,900 of ml-latest-small's 9,742 movies
    have no factors), and a user without factors only looks at a fixed window of the most popular
    items. For the rows whose pool holds fewer than ``target = min(allowed unseen, pool size
    needed)`` items, the missing ones are added from every allowed unseen item not yet pooled:
    users with factors by first-pass content score (the only evidence an item without factors
    has; source = content), users without factors by popularity (their seed rule; source = CF
    seed). Ties go to the smaller item index. Costs one (len(short), n_items) pass.
    """
    seen_rows, seen_items = seen  # (local row, item) of the batch's training ratings
    out_idx, out_src, out_cf = pool  # (b, c_max) pool arrays, filled in place
    n = arrays.n_items
    u = users[short]
    has_f = arrays.user_has_factors[u]
    vals = np.where(
        has_f[:, None],
        arrays.profiles_reduced[u] @ arrays.emb_reduced.T,
        np.maximum(arrays.popularity, -FLT_MAX)[None, :],  # unknown popularity: last, not out
    ).astype(np.float32)
    vals[~ctx.allowed[steps[short]]] = NEG_INF
    local = np.full(len(sizes), -1, np.int64)
    local[short] = np.arange(len(short))
    mine = local[seen_rows] >= 0
    vals.reshape(-1)[local[seen_rows[mine]] * n + seen_items[mine]] = NEG_INF
    pooled = out_idx[short]
    pr, pc = np.nonzero(pooled >= 0)
    vals[pr, pooled[pr, pc]] = NEG_INF
    missing = target[short] - sizes[short]
    add_idx, _ = top_k_columns(vals, int(missing.max()), ordered=True)
    take = (add_idx >= 0) & (np.arange(add_idx.shape[1])[None, :] < missing[:, None])
    rr, cc = np.nonzero(take)
    row, it = short[rr], add_idx[rr, cc].astype(np.int64)
    slot = sizes[row] + cc  # picks are ordered best first, valid ones before the -1 pad
    out_idx[row, slot] = it
    out_src[row, slot] = np.where(has_f[rr], SOURCE_CONTENT, SOURCE_CF)
    cf = arrays.cf.pair_scores(users[row], it)
    out_cf[row, slot] = np.where(arrays.item_has_factors[it] & has_f[rr], cf, 0.0)


def generate_candidates(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    policy: RankingPolicy,
    *,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    min_results: int | None = None,
) -> CandidatePool:
    """Candidate pools of a batch of users (CF seeds + content expansion, filtered, capped).

    Returns a :class:`CandidatePool`: ``item_idx`` (b, c_max) int32 with -1 padding, ``source``
    flags, raw CF scores and the relaxation step of each user.
    """
    users = np.asarray(user_idx, dtype=np.int64)
    ctx = pool_context(arrays, policy, genres, providers, min_results)
    ws = Workspace(min(len(users), SUB_BATCH), arrays.n_items)
    parts = [
        generate_pool(arrays, users[i : i + SUB_BATCH], policy, ctx, ws)
        for i in range(0, len(users), SUB_BATCH)
    ]
    return concat_pools(parts, policy.c_max)


def concat_pools(parts: list[CandidatePool], c_max: int) -> CandidatePool:
    if not parts:
        return CandidatePool(
            np.zeros((0, c_max), np.int32),
            np.zeros((0, c_max), np.uint8),
            np.zeros((0, c_max), np.float32),
            np.zeros(0, np.int8),
        )
    return CandidatePool(
        item_idx=np.concatenate([p.item_idx for p in parts]),
        source=np.concatenate([p.source for p in parts]),
        cf_raw=np.concatenate([p.cf_raw for p in parts]),
        steps=np.concatenate([p.steps for p in parts]),
    )
