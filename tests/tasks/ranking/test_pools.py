"""Tests for tasks/ranking/_pools.py: CF seeds + content expansion, no duplicates, nothing
excluded, the cold-seed rule (popularity) and the completion of short pools."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tasks.ranking import (
    RecommenderArrays,
    concat_pools,
    generate_candidates,
    rank_batch,
)
from tasks.ranking._pools import SOURCE_CF, SOURCE_CONTENT


def excluded_pairs(arrays) -> set[tuple[int, int]]:
    coo = arrays.exclude.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def items_of(result, row: int) -> list[int]:
    r = result["item_idx"][row]
    return r[r >= 0].tolist()


def test_pool_holds_cf_seeds_and_content_expansion_without_duplicates(tiny, make_policy):
    policy = make_policy()
    pool = generate_candidates(tiny, np.arange(tiny.n_users), policy)
    assert pool.item_idx.shape == (tiny.n_users, policy.c_max)
    excluded = excluded_pairs(tiny)
    for user in range(tiny.n_users):
        row = pool.item_idx[user]
        items = row[row >= 0]
        assert (row[len(items) :] == -1).all()
        assert len(items) == len(set(items.tolist()))
        assert not any((user, int(i)) in excluded for i in items)
        if tiny.user_has_factors[user]:  # the CF seeds are the top unseen items by x_u . y_i
            cf = tiny.cf.scores(np.array([user]))[0]
            unseen = [i for i in np.argsort(-cf, kind="stable") if (user, i) not in excluded]
            seeds = items[(pool.source[user][: len(items)] & SOURCE_CF) > 0]
            assert set(seeds.tolist()) == set(unseen[: policy.n_cf_seed])
            np.testing.assert_allclose(pool.cf_raw[user][: len(items)], cf[items], rtol=1e-6)
    # user 0's best items 0 and 1 have their cluster mates 2 and 3 as nearest neighbours
    flags = dict(zip(pool.item_idx[0].tolist(), pool.source[0].tolist(), strict=True))
    assert flags[2] & SOURCE_CONTENT and flags[3] & SOURCE_CONTENT
    assert pool.steps.tolist() == [0] * tiny.n_users


def test_items_without_cf_evidence_are_no_cf_seeds(make_tiny, make_policy):
    known = np.ones(12, bool)
    known[[3, 6, 11]] = False
    arrays = make_tiny(item_known=known)
    pool = generate_candidates(arrays, np.arange(4), make_policy())
    seeds = pool.item_idx[(pool.source & SOURCE_CF) > 0]
    assert not set(seeds.tolist()) & {3, 6, 11}
    assert (pool.cf_raw[np.isin(pool.item_idx, [3, 6, 11])] == 0).all()


def test_user_who_has_seen_almost_everything_gets_every_unseen_item(make_tiny, make_policy, tiny):
    """Items without CF evidence are no CF seeds; those that are no neighbour of a seed item must
    still reach the pool when the user has fewer unseen items than a pool holds."""
    known = np.ones(12, bool)
    known[[6, 11]] = False
    left = [5, 6, 11]
    assert not set(tiny.neighbor_idx[[0, 1]].ravel()) & {6, 11}  # user 0's seed items: 0, 1
    seen = tiny.seen.tolil()
    for item in sorted(set(range(12)) - set(left) - {0, 1, 8}):
        seen[0, item] = 3.5
    arrays = make_tiny(item_known=known, seen=seen.tocsr())
    policy = make_policy()
    pool = generate_candidates(arrays, np.array([0]), policy)
    assert sorted(pool.item_idx[0][pool.item_idx[0] >= 0].tolist()) == left
    out = rank_batch(arrays, np.array([0]), policy)
    assert sorted(items_of(out, 0)) == left
    assert np.isnan(out["collab"][0][np.isin(out["item_idx"][0], [6, 11])]).all()


def wide_arrays(make_cf, n_items: int = 100) -> RecommenderArrays:
    """One user without CF evidence on a catalogue wider than the cold-seed window (n_cf_seed +
    64): popularity falls with the item index; the user rated the 70 most popular items, all
    low (no seed items, zero profile); items 70-79 have no CF evidence."""
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((n_items, 6))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    known = np.ones(n_items, bool)
    known[70:80] = False
    item_ids = np.arange(1, n_items + 1, dtype=np.int32)
    cf = make_cf(
        np.array([1]), item_ids, np.zeros((1, 3)), rng.standard_normal((n_items, 3)), [False], known
    )
    seen = sp.csr_matrix(
        (np.full(70, 1.0, np.float32), (np.zeros(70, int), np.arange(70))), shape=(1, n_items)
    )
    return RecommenderArrays(
        item_ids=item_ids,
        user_ids=np.array([1], np.int32),
        embeddings=emb,
        neighbor_idx=np.argsort(-sims, axis=1, kind="stable")[:, :4].astype(np.int32),
        cf=cf,
        profiles=np.zeros((1, 6), np.float32),
        quality=np.full(n_items, 0.5, np.float32),
        recency=np.full(n_items, 0.5, np.float32),
        genre_names=["Drama"],
        genre_matrix=np.ones((n_items, 1), bool),
        provider_names=[],
        provider_matrix=np.zeros((n_items, 0), bool),
        seen=seen,
        seed_items=np.full((1, 3), -1, np.int32),
        popularity=np.linspace(1.0, 0.0, n_items).astype(np.float32),
    )


def test_user_without_cf_evidence_beyond_the_popular_window_gets_a_full_list(make_cf, make_policy):
    arrays = wide_arrays(make_cf)
    policy = make_policy()
    assert policy.n_cf_seed + 64 < 70  # every item of the cold-seed window is seen
    out = rank_batch(arrays, np.array([0]), policy, alphas=np.ones(1, np.float32))
    # the most popular unseen items, with or without CF evidence
    assert sorted(items_of(out, 0)) == list(range(70, 70 + policy.k_final))
    by_popularity = make_policy(lambda_div=0.0)  # alpha 0: popularity is the whole blend
    out = rank_batch(arrays, np.array([0]), by_popularity, alphas=np.zeros(1, np.float32))
    assert items_of(out, 0) == list(range(70, 70 + policy.k_final))
    pool = generate_candidates(arrays, np.array([0]), policy)
    assert pool.item_idx[0].tolist()[: policy.n_cf_seed] == list(range(70, 70 + policy.n_cf_seed))


def test_cold_seeds_include_popular_items_without_cf_evidence(make_cf, make_policy):
    """The seeds of a user without CF evidence are the most popular items it may be shown -
    whether or not the items have CF evidence (its signal is popularity, not CF)."""
    arrays = wide_arrays(make_cf)
    arrays = RecommenderArrays(
        **{
            **{f: getattr(arrays, f) for f in ("item_ids", "user_ids", "embeddings", "cf")},
            **{f: getattr(arrays, f) for f in ("neighbor_idx", "profiles", "quality", "recency")},
            **{f: getattr(arrays, f) for f in ("genre_names", "genre_matrix", "provider_names")},
            "provider_matrix": arrays.provider_matrix,
            "seed_items": arrays.seed_items,
            "popularity": arrays.popularity,
            "seen": sp.csr_matrix((1, arrays.n_items), dtype=np.float32),  # nothing seen
        }
    )
    pool = generate_candidates(arrays, np.array([0]), make_policy(n_cf_seed=5, c_max=5))
    assert pool.item_idx[0].tolist() == [0, 1, 2, 3, 4]
    unknown_first = np.r_[np.arange(70, 80), np.arange(70), np.arange(80, 100)]
    popularity = np.zeros(arrays.n_items, np.float32)
    popularity[unknown_first] = np.linspace(1.0, 0.0, arrays.n_items)
    arrays.popularity = popularity
    pool = generate_candidates(arrays, np.array([0]), make_policy(n_cf_seed=5, c_max=5))
    assert pool.item_idx[0].tolist() == [70, 71, 72, 73, 74]


def test_pools_of_users_with_enough_unseen_items_are_left_alone(tiny, make_policy, monkeypatch):
    import tasks.ranking._pools as pools

    def fail(*args, **kwargs):
        raise AssertionError("a full pool was completed")

    policy = make_policy()
    before = generate_candidates(tiny, np.arange(tiny.n_users), policy)
    monkeypatch.setattr(pools, "_fill_short_pools", fail)
    after = generate_candidates(tiny, np.arange(tiny.n_users), policy)  # no short pool here
    np.testing.assert_array_equal(before.item_idx, after.item_idx)


def test_concat_pools_of_nothing_is_empty():
    empty = concat_pools([], 9)
    assert empty.item_idx.shape == (0, 9) and empty.steps.shape == (0,)
