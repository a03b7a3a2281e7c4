"""Sorting and ties scenarios: the engine's tie-break, seeded determinism, K beyond the pool
(part of :mod:`tasks.edge_cases`).

The tie scenario ranks a hand-built catalogue (:func:`tied_arrays`) where every item scores the
same; the others rank the run's users with the run's chosen policy through
:func:`tasks.ranking.rank_batch` / :func:`tasks.ranking.rank_users`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.edge_cases._context import LIST_K, EdgeContext, Observed, Scenario
from tasks.edge_cases._serving import (
    DotProductCF,
    full_list_unmet,
    heaviest_with_factors,
    history_lines,
    list_summary,
)

__all__ = ["scenarios", "tied_arrays"]


def tied_arrays(n_items: int = 200, n_users: int = 3, dim: int = 8) -> Any:
    """A hand-built catalogue where every item scores the same for every user (one embedding, one
    CF factor vector, equal quality and recency): only the tie-break decides the order."""
    from tasks.ranking import RecommenderArrays

    emb = np.zeros((n_items, dim), np.float32)
    emb[:, 0] = 1.0
    seen = sp.csr_matrix(
        (np.full(3, 4.0, np.float32), (np.zeros(3, np.int64), np.array([0, 5, 7]))),
        shape=(n_users, n_items),
    )
    item_ids = np.arange(n_items, dtype=np.int32) * 3 + 10
    user_ids = np.arange(1, n_users + 1, dtype=np.int32)
    cf = DotProductCF.of(
        user_ids, item_ids, np.ones((n_users, 4), np.float32), np.ones((n_items, 4), np.float32)
    )
    return RecommenderArrays(
        item_ids=item_ids,
        user_ids=user_ids,
        embeddings=emb,
        neighbor_idx=np.tile(np.arange(1, 7, dtype=np.int32), (n_items, 1)),
        cf=cf,
        profiles=np.tile(emb[:1], (n_users, 1)),
        quality=np.full(n_items, 0.5, np.float32),
        recency=np.full(n_items, 0.5, np.float32),
        genre_names=["Drama"],
        genre_matrix=np.ones((n_items, 1), bool),
        provider_names=[],
        provider_matrix=np.zeros((n_items, 0), bool),
        seen=seen,
        seed_items=np.array([[0, 5, 7]] + [[-1, -1, -1]] * (n_users - 1), np.int32),
        cohorts=np.array(["light"] * n_users, dtype=object),
    )


def _run_ties(ctx: EdgeContext) -> Observed:
    from tasks.ranking import rank_batch, rank_users

    arrays = tied_arrays()
    policy = ctx.policy
    one = rank_batch(arrays, np.array([0]), policy, k=LIST_K)
    again = rank_batch(arrays, np.array([0]), policy, k=LIST_K)
    in_batch = rank_users(arrays, np.array([2, 1, 0]), policy, k=LIST_K, workers=1)
    seen = set(arrays.seen[0].indices.tolist())
    unseen = [int(arrays.item_ids[i]) for i in range(arrays.n_items) if i not in seen]
    obs = list_summary(arrays, arrays, one, 0, LIST_K)
    scores = one["score"][0][one["item_idx"][0] >= 0]
    obs.update(
        {
            "distinct_scores": int(len(np.unique(scores))),
            "expected_ids": unseen[:LIST_K],
            "lambda_div": policy.lambda_div,
            "same_on_second_call": bool(np.array_equal(one["item_idx"], again["item_idx"])),
            "same_inside_a_batch": bool(
                np.array_equal(one["item_idx"][0], in_batch["item_idx"][2])
            ),
            "history": ["user 1 rated 3 of 200 identical movies * 4"],
        }
    )
    return obs


def _check_ties(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs)
    if obs.get("distinct_scores") != 1:
        unmet.append(f"{obs.get('distinct_scores')} distinct scores: the scenario did not tie")
    if obs.get("movie_ids") != obs.get("expected_ids"):
        unmet.append("tied items are not in ascending movie id order")
    if not obs.get("same_on_second_call"):
        unmet.append("a second call gave another order")
    if not obs.get("same_inside_a_batch"):
        unmet.append("the order changes when the user is served inside a batch")
    return unmet


def _run_same_seed(ctx: EdgeContext) -> Observed:
    from tasks.candidates import sample_users
    from tasks.metrics import bootstrap_ci
    from tasks.ranking import rank_users

    arrays = ctx.arrays
    n = min(arrays.n_users, max(ctx.candidates_cfg.sample_users, 20))

    def once(seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float, float]]:
        users = sample_users(arrays, n, seed)
        res = rank_users(arrays, users, ctx.policy, k=LIST_K)
        ci = bootstrap_ci(res["score"][:, 0].astype(np.float64), n_boot=200, seed=seed)
        return users, res, ci

    u1, r1, c1 = once(ctx.seed)
    u2, r2, c2 = once(ctx.seed)
    u3, _, _ = once(ctx.seed + 1)
    same_scores = all(
        np.array_equal(r1[name], r2[name], equal_nan=True)
        for name in ("item_idx", "score", "collab", "content", "boosts")
    )
    return {
        "seed": ctx.seed,
        "sample_users": int(n),
        "same_sample": bool(np.array_equal(u1, u2)),
        "same_lists_and_scores": bool(same_scores),
        "same_bootstrap_interval": bool(c1 == c2),
        "bootstrap_interval": [round(v, 6) for v in c1],
        "other_seed_other_sample": bool(not np.array_equal(u1, u3)) if n < arrays.n_users else None,
    }


def _check_same_seed(obs: Observed) -> list[str]:
    unmet = [
        f"{key.replace('_', ' ')} differs"
        for key in ("same_sample", "same_lists_and_scores", "same_bootstrap_interval")
        if not obs.get(key)
    ]
    if obs.get("other_seed_other_sample") is False:
        unmet.append("another seed drew the same sample: the seed is not used")
    return unmet


def _run_k_too_large(ctx: EdgeContext) -> Observed:
    from tasks.ranking import rank_batch

    arrays = ctx.arrays
    user = heaviest_with_factors(arrays)
    k = ctx.policy.c_max + 50
    result = rank_batch(arrays, np.array([user]), ctx.policy, k=k)
    view = copy.copy(arrays)
    view.seen = arrays.seen[user]
    obs = list_summary(arrays, view, result, 0, k)
    obs.pop("movie_ids")
    obs.update(
        {
            "user_id": int(arrays.user_ids[user]),
            "c_max": ctx.policy.c_max,
            "mmr_pool": ctx.policy.mmr_pool,
            "ranked_candidates": min(obs["pool_size"], ctx.policy.mmr_pool),
        }
    )
    obs["history"] = history_lines(arrays, view, limit=10)
    return obs


def _check_k_too_large(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs, k=obs.get("ranked_candidates"))
    if obs.get("ranked_candidates", 0) >= obs.get("k", 0):
        unmet.append(
            "the candidates were not fewer than K: the scenario did not test K > candidates"
        )
    if not obs.get("padding_only_at_end"):
        unmet.append("empty slots are not all at the end of the list")
    return unmet


def scenarios() -> list[Scenario]:
    """The sorting and ties scenarios, in report order."""
    return [
        Scenario(
            "identical_scores_order", "sorting_ties", "Many identical scores",
            "tasks.ranking.rank_batch / rank_users with the run's policy on a hand-built catalogue of 200 "
            "movies that all score the same (one embedding, one CF factor vector, equal boosts).",
            f"All {LIST_K} scores tie; the order is the documented tie-break (ascending movie id), the same "
            "on a second call and inside a batch of users.",
            _run_ties,
            _check_ties,
        ),
        Scenario(
            "same_seed_twice", "sorting_ties", "The same seed twice",
            "tasks.candidates.sample_users + tasks.ranking.rank_users (the run's policy) + "
            "tasks.metrics.bootstrap_ci with the run's seed, twice, then with seed + 1.",
            "Identical sample, lists, scores and bootstrap interval for the same seed; another seed draws "
            "another sample.",
            _run_same_seed,
            _check_same_seed,
            inputs=("seed", "sample_users"),
        ),
        Scenario(
            "k_larger_than_candidates", "sorting_ties", "K larger than the available candidates",
            "tasks.ranking.rank_batch with the run's policy for the heaviest user with CF evidence, "
            "K = the policy's c_max + 50.",
            "No error; every candidate the engine re-ranks (the best mmr_pool items of the pool, or the "
            "whole pool when smaller) is listed once (list length = min(pool size, mmr_pool) < K), none "
            "seen, empty slots only at the end.",
            _run_k_too_large,
            _check_k_too_large,
            inputs=("user_id", "k", "c_max", "mmr_pool"),
        ),
    ]  # fmt: skip
