"""Tests for tasks/ranking/_engine.py: the invariants of the one ranking path.

- the first k items of a ``k_final`` list are the k-list, for every user;
- a user's list does not depend on the batch it is ranked in;
- ``rank_variants`` with one variant is ``rank_batch``; several variants over the same pools are
  each their own ``rank_batch``; precomputed pools (``build_pools``) change nothing;
- ``rank_users`` gives the same arrays with one worker or two (forked) workers;
- every list is valid: no duplicate, nothing excluded, -1 padding only at the end.
"""

from __future__ import annotations

import numpy as np
import pytest

from tasks.ranking import (
    Variant,
    build_pools,
    concat_results,
    fork_map,
    rank_batch,
    rank_users,
    rank_variants,
)
from tasks.ranking._engine import TASK_USERS

RESULT_KEYS = {
    "item_idx",
    "score",
    "collab",
    "content",
    "boosts",
    "relaxation_step",
    "pool_size",
}


def assert_same(a: dict, b: dict, *, rows: slice | np.ndarray | None = None) -> None:
    assert set(a) == set(b) == RESULT_KEYS
    for name in a:
        got = a[name] if rows is None else a[name][rows]
        np.testing.assert_array_equal(got, b[name], err_msg=name)


def excluded_pairs(arrays) -> set[tuple[int, int]]:
    coo = arrays.exclude.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


@pytest.mark.parametrize("n_cf_seed", [5, 40, 60])  # below k_final (50), and above it
@pytest.mark.parametrize("lambda_div", [0.0, 0.3])
def test_the_first_k_items_of_a_k_final_list_are_the_k_list(
    rand, rand_policy, n_cf_seed, lambda_div
):
    policy = rand_policy(n_cf_seed=n_cf_seed, lambda_div=lambda_div, k_final=50, mmr_pool=60)
    users = np.arange(rand.n_users)
    full = rank_batch(rand, users, policy, k=50)
    for k in (1, 10, 49):
        short = rank_batch(rand, users, policy, k=k)
        for name in ("item_idx", "score", "collab", "content", "boosts"):
            np.testing.assert_array_equal(short[name], full[name][:, :k], err_msg=f"{name} k={k}")
    assert (full["item_idx"] >= 0).sum(axis=1).min() > 10  # the lists are not trivially short


def test_a_users_list_does_not_depend_on_its_batch(rand, rand_policy):
    policy = rand_policy()
    users = np.arange(rand.n_users)
    together = rank_batch(rand, users, policy)
    order = np.random.default_rng(0).permutation(np.r_[users, users[:10]])  # shuffled, repeats
    alone = concat_results([rank_batch(rand, np.array([u]), policy) for u in order], 20)
    shuffled = rank_batch(rand, order, policy)
    for other in (alone, shuffled):
        for name in ("item_idx", "relaxation_step", "pool_size"):  # the same lists, exactly
            np.testing.assert_array_equal(other[name], together[name][order], err_msg=name)
        for name in ("score", "collab", "content", "boosts"):  # BLAS: a batch of 1 may round
            np.testing.assert_allclose(other[name], together[name][order], rtol=1e-5, atol=1e-6)


def test_one_variant_is_rank_batch(rand, rand_policy):
    policy = rand_policy()
    users = np.arange(rand.n_users)
    alphas = policy.alphas_of(rand.cohorts[users])
    (one,) = rank_variants(rand, users, policy, [Variant.of(policy, alphas)])
    assert_same(one, rank_batch(rand, users, policy))


def test_several_variants_over_shared_pools_are_each_their_own_rank_batch(rand, rand_policy):
    policy = rand_policy()
    users = np.arange(rand.n_users)
    changes = [
        {"lambda_div": 0.0},
        {"lambda_div": 0.6, "w_q": 0.2},
        {"w_q": 0.0, "w_r": 0.0, "w_p": 0.0},
    ]
    alphas = [np.full(len(users), a, np.float32) for a in (0.0, 0.5, 1.0)]
    variants = [
        Variant.of(policy.model_copy(update=c), a) for c, a in zip(changes, alphas, strict=True)
    ]
    pools = build_pools(rand, users, policy)
    got = rank_variants(rand, users, policy, variants)
    with_pools = rank_variants(rand, users, policy, variants, pools=pools)
    for j, (c, a) in enumerate(zip(changes, alphas, strict=True)):
        want = rank_batch(rand, users, policy.model_copy(update=c), alphas=a)
        assert_same(got[j], want)
        assert_same(with_pools[j], want)


def test_a_variant_needs_one_alpha_per_user(rand, rand_policy):
    policy = rand_policy()
    with pytest.raises(ValueError, match="one per user"):
        rank_variants(rand, np.arange(3), policy, [Variant.of(policy, np.zeros(2, np.float32))])


def test_default_alphas_follow_each_users_cohort(rand, rand_policy):
    policy = rand_policy()
    users = np.arange(rand.n_users)
    alphas = np.array([policy.alphas[c] for c in rand.cohorts], np.float32)
    assert_same(rank_batch(rand, users, policy), rank_batch(rand, users, policy, alphas=alphas))


def test_rank_users_with_two_workers_equals_one(rand, rand_policy):
    policy = rand_policy()
    users = np.tile(np.arange(rand.n_users), 9)  # 630 users: three tasks over two workers
    assert len(users) > 2 * TASK_USERS
    seen: list[float] = []
    one = rank_users(rand, users, policy, workers=1)
    two = rank_users(rand, users, policy, workers=2, progress=lambda f, m: seen.append(f))
    assert_same(one, two)
    assert_same(one, rank_batch(rand, users, policy))
    assert seen[-1] == 1.0


def test_every_list_is_valid(rand, rand_policy):
    policy = rand_policy()
    users = np.arange(rand.n_users)
    out = rank_batch(rand, users, policy)
    excluded = excluded_pairs(rand)
    assert out["item_idx"].shape == (len(users), policy.k_final)
    for u in users:
        row = out["item_idx"][u]
        n = int((row >= 0).sum())
        assert (row[n:] == -1).all() and len(set(row[:n].tolist())) == n
        assert not any((u, int(i)) in excluded for i in row[:n])
        assert rand.has_metadata[row[:n]].all()
        assert np.isfinite(out["score"][u, :n]).all() and np.isnan(out["score"][u, n:]).all()
        assert n == min(policy.k_final, out["pool_size"][u])
    # collab is NaN exactly where the user or the item has no CF evidence
    got = out["item_idx"] >= 0
    evidence = rand.user_has_factors[users][:, None] & rand.item_has_factors[out["item_idx"]]
    assert np.isnan(out["collab"][got & ~evidence]).all()
    assert np.isfinite(out["collab"][got & evidence]).all()
    assert (got & ~evidence).any() and (got & evidence).any()


def test_concat_results_of_nothing_is_empty():
    out = concat_results([], 7)
    assert set(out) == RESULT_KEYS and out["item_idx"].shape == (0, 7)


def test_fork_map_yields_in_task_order_and_reraises_a_workers_error():
    assert list(fork_map(lambda t: t * t, 7, 3)) == [0, 1, 4, 9, 16, 25, 36]

    def boom(task: int) -> int:
        if task == 4:
            raise KeyError("task four")
        return task

    with pytest.raises(KeyError, match="task four"):
        list(fork_map(boom, 6, 2))
