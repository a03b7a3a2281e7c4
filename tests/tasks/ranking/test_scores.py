"""Tests for tasks/ranking/_scores.py and the score the engine computes with it.

The formulas: per-user z-scores over the pool, ``blend = alpha z(content) + (1 - alpha)
z(collab)``, ``score = (1 - W) blend + w_q z(quality) + w_r z(recency) + w_p z(provider)``. A
one-user, four-item pool is computed by hand and compared with ``rank_batch``; then the
cold-start rules: alpha = 0 / 1, an item or a user without CF evidence, a user without profile.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.ranking import (
    RankingPolicy,
    RecommenderArrays,
    apply_zscore,
    generate_candidates,
    pool_context,
    pool_zscores,
    rank_batch,
    score_pools,
)
from tasks.ranking._pools import Workspace, generate_pool

# --------------------------------------------------------------------------------------------
# the formulas
# --------------------------------------------------------------------------------------------


def test_pool_zscores_is_the_population_z_score_of_the_masked_finite_entries():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 30)).astype(np.float32) * 7 + 3
    mask = rng.random((50, 30)) < 0.6
    v[0, :5] = np.nan  # non-finite values count as outside the mask
    v[1, 3] = np.inf
    v[2] = 4.0  # constant row: sd = 0
    mask[3] = False  # empty row
    z, mean, sd = pool_zscores(v, mask)
    for r in range(50):  # the reference: numpy's mean and population std, row by row
        m = mask[r] & np.isfinite(v[r])
        vals = v[r, m].astype(np.float64)
        want_mean = vals.mean() if m.any() else 0.0
        want_sd = vals.std() if m.any() else 0.0
        assert mean[r] == pytest.approx(want_mean, abs=1e-5)
        assert sd[r] == pytest.approx(want_sd, abs=1e-5)
        want = np.zeros(30)
        if want_sd > 0:
            want[m] = (vals - want_mean) / want_sd
        np.testing.assert_allclose(z[r], want, atol=1e-5)
    assert z.dtype == np.float32 and not z[2].any() and not z[3].any()


def test_apply_zscore_uses_the_given_statistics():
    v = np.array([[3.0, 1.0, 5.0], [2.0, 2.0, 9.0], [1.0, 2.0, 3.0]], np.float32)
    mean = np.array([2.0, 1.0, 0.0], np.float32)
    sd = np.array([0.5, 0.0, np.nan], np.float32)
    mask = np.array([[True, True, False], [True, True, True], [True, True, True]])
    np.testing.assert_allclose(
        apply_zscore(v, mean, sd, mask), [[2.0, -2.0, 0.0], [0] * 3, [0] * 3]
    )


# --------------------------------------------------------------------------------------------
# one user, four items, by hand
# --------------------------------------------------------------------------------------------
#   CF score s = x . y_i        = [3, 1, 2, 0]        mean 1.5, sd sqrt(1.25)
#   content cos = p . e_i       = [0, 1, 0.6, 0.8]    mean 0.6, sd sqrt(0.14)
#   quality                     = [0.2, 0.4, 0.6, 0.8] mean 0.5, sd sqrt(0.05)
#   recency                     = [1, 0, 0, 0]        mean 0.25, sd sqrt(0.1875)
#   provider match              = [1, 0, 1, 0]        mean 0.5, sd 0.5
Z_CF = [1.3416, -0.4472, 0.4472, -1.3416]
Z_CONTENT = [-1.6036, 1.0690, 0.0, 0.5345]
Z_QUALITY = [-1.3416, -0.4472, 0.4472, 1.3416]
Z_RECENCY = [1.7321, -0.5774, -0.5774, -0.5774]
Z_PROVIDER = [1.0, -1.0, 1.0, -1.0]


def four_items(make_cf, item_known=None, profile=(1.0, 0.0, 0.0)) -> RecommenderArrays:
    item_ids = np.array([11, 12, 13, 14], np.int32)
    user_ids = np.array([7], np.int32)
    emb = np.array([[0, 1, 0], [1, 0, 0], [0.6, 0.8, 0], [0.8, 0, 0.6]], np.float32)
    item_f = np.array([[3.0, 0.5], [1.0, -2.0], [2.0, 9.0], [0.0, 1.0]])
    cf = make_cf(user_ids, item_ids, np.array([[1.0, 0.0]]), item_f, None, item_known)
    return RecommenderArrays(
        item_ids=item_ids,
        user_ids=user_ids,
        embeddings=emb,
        neighbor_idx=np.array([[1], [2], [3], [0]], np.int32),
        cf=cf,
        profiles=np.array([profile], np.float32),
        quality=np.array([0.2, 0.4, 0.6, 0.8], np.float32),
        recency=np.array([1.0, 0.0, 0.0, 0.0], np.float32),
        genre_names=["Drama"],
        genre_matrix=np.ones((4, 1), bool),
        provider_names=["Netflix"],
        provider_matrix=np.array([[True], [False], [True], [False]]),
        seen=sp.csr_matrix((1, 4), dtype=np.float32),
        seed_items=np.full((1, 2), -1, np.int32),
        cohorts=np.array(["light"], dtype=object),
    )


def four_policy(alpha: float, **changes) -> RankingPolicy:
    knobs = dict(
        alphas={"cold": alpha, "light": alpha, "medium": alpha, "heavy": alpha},
        lambda_div=0.0,
        w_q=0.1,
        w_r=0.05,
        w_p=0.05,
        n_cf_seed=4,
        m_seed_items=2,
        k_neighbors=1,
        c_max=4,
        k_final=4,
        mmr_pool=4,
    )
    knobs.update(changes)
    return RankingPolicy(**knobs)


def by_item(result, field: str) -> np.ndarray:
    """A (4,) array of ``field`` indexed by item (the list is in served order)."""
    out = np.full(4, np.nan)
    items = result["item_idx"][0]
    out[items[items >= 0]] = result[field][0][items >= 0]
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_rerank_scores_equal_the_formula_by_hand(make_cf, alpha):
    arrays = four_items(make_cf)
    out = rank_batch(arrays, np.array([0]), four_policy(alpha))
    w_q, w_r, w_p = 0.1, 0.05, 0.05
    blend = alpha * np.array(Z_CONTENT) + (1 - alpha) * np.array(Z_CF)
    boosts = w_q * np.array(Z_QUALITY) + w_r * np.array(Z_RECENCY) + w_p * np.array(Z_PROVIDER)
    score = (1 - (w_q + w_r + w_p)) * blend + boosts
    np.testing.assert_allclose(by_item(out, "collab"), Z_CF, atol=1e-4)
    np.testing.assert_allclose(by_item(out, "content"), Z_CONTENT, atol=1e-4)
    np.testing.assert_allclose(by_item(out, "boosts"), boosts, atol=1e-4)
    np.testing.assert_allclose(by_item(out, "score"), score, atol=1e-4)
    assert out["item_idx"][0].tolist() == np.argsort(-score, kind="stable").tolist()


def test_alpha_zero_ranks_by_cf_and_alpha_one_by_content(make_cf):
    arrays = four_items(make_cf)
    pure = {"w_q": 0.0, "w_r": 0.0, "w_p": 0.0}
    cf_only = rank_batch(arrays, np.array([0]), four_policy(0.0, **pure))["item_idx"][0]
    content_only = rank_batch(arrays, np.array([0]), four_policy(1.0, **pure))["item_idx"][0]
    assert cf_only.tolist() == [0, 2, 1, 3]  # s = 3, 2, 1, 0
    assert content_only.tolist() == [1, 3, 2, 0]  # cos = 1, 0.8, 0.6, 0


def test_an_item_without_cf_evidence_gets_the_pools_lowest_collab_z(make_cf):
    arrays = four_items(make_cf, item_known=np.array([True, True, True, False]))
    policy = four_policy(0.0, w_q=0.0, w_r=0.0, w_p=0.0)
    out = rank_batch(arrays, np.array([0]), policy)
    # the CF statistics run over items 0-2 (s = 3, 1, 2): z = 1.2247, -1.2247, 0; item 3 is
    # pooled by the short-pool rule and gets the lowest z, tying with item 1 (smaller index first)
    assert out["item_idx"][0].tolist() == [0, 2, 1, 3]
    np.testing.assert_allclose(by_item(out, "score"), [1.2247, -1.2247, 0.0, -1.2247], atol=1e-4)
    assert np.isnan(by_item(out, "collab")[3])  # no evidence: no collab value is reported
    ctx = pool_context(arrays, policy, None, None, 4)
    ws = Workspace(1, 4)
    pool = generate_pool(arrays, np.array([0]), policy, ctx, ws)
    parts = score_pools(arrays, np.array([0]), pool, ctx, ws)
    z = dict(zip(parts.idx[0].tolist(), parts.z_collab[0].tolist(), strict=True))
    assert z[3] == min(z[0], z[1], z[2])


def test_a_user_without_profile_has_zero_content_z(make_cf):
    arrays = four_items(make_cf, profile=(0.0, 0.0, 0.0))
    out = rank_batch(arrays, np.array([0]), four_policy(0.5))
    np.testing.assert_array_equal(by_item(out, "content"), 0.0)
    boosts = 0.1 * np.array(Z_QUALITY) + 0.05 * np.array(Z_RECENCY) + 0.05 * np.array(Z_PROVIDER)
    np.testing.assert_allclose(
        by_item(out, "score"), 0.8 * 0.5 * np.array(Z_CF) + boosts, atol=1e-4
    )


# --------------------------------------------------------------------------------------------
# the same rules on the random arrays (many users, items without CF evidence)
# --------------------------------------------------------------------------------------------
def pool_rows(arrays, users, policy):
    pools = generate_candidates(arrays, users, policy)
    return [row[row >= 0] for row in pools.item_idx]


def test_alpha_zero_is_the_cf_order_of_the_pool(rand, rand_policy):
    policy = rand_policy(lambda_div=0.0, w_q=0.0, w_r=0.0, w_p=0.0, mmr_pool=70)
    users = np.flatnonzero(rand.user_has_factors)
    out = rank_batch(rand, users, policy, alphas=np.zeros(len(users), np.float32))
    for row, (u, pool) in enumerate(zip(users, pool_rows(rand, users, policy), strict=True)):
        s = rand.cf.pair_scores(np.full(len(pool), u), pool)
        known = rand.item_has_factors[pool]
        s = np.where(known, s, s[known].min())  # no evidence: the pool's lowest
        want = pool[np.lexsort((pool, -s.astype(np.float64)))][: policy.k_final]
        assert out["item_idx"][row].tolist() == want.tolist()


def test_alpha_one_is_the_exact_content_order_of_the_pool(rand, rand_policy):
    policy = rand_policy(lambda_div=0.0, w_q=0.0, w_r=0.0, w_p=0.0, mmr_pool=70)
    users = np.flatnonzero(np.abs(rand.profiles).sum(axis=1) > 0)
    out = rank_batch(rand, users, policy, alphas=np.ones(len(users), np.float32))
    for row, (u, pool) in enumerate(zip(users, pool_rows(rand, users, policy), strict=True)):
        cos = rand.embeddings[pool].astype(np.float64) @ rand.profiles[u].astype(np.float64)
        want = pool[np.lexsort((pool, -cos))][: policy.k_final]
        assert out["item_idx"][row].tolist() == want.tolist()


def test_a_user_without_cf_evidence_ranks_by_popularity(rand, rand_policy):
    policy = rand_policy(lambda_div=0.0, w_q=0.0, w_r=0.0, w_p=0.0)
    users = np.flatnonzero(~rand.user_has_factors)  # user 5 (no history) and user 9
    assert len(users) == 2
    out = rank_batch(rand, users, policy, alphas=np.zeros(len(users), np.float32))
    excluded = rand.exclude.toarray() > 0
    for row, (u, pool) in enumerate(zip(users, pool_rows(rand, users, policy), strict=True)):
        # its CF seeds are the most popular items it may be shown
        ok = np.flatnonzero(rand.has_metadata & ~excluded[u])
        popular = ok[np.lexsort((ok, -rand.popularity[ok]))]
        assert set(popular[: policy.n_cf_seed].tolist()) <= set(pool.tolist())
        # and with alpha = 0 the list is the pool in popularity order
        want = pool[np.lexsort((pool, -rand.popularity[pool]))][: policy.k_final]
        assert out["item_idx"][row].tolist() == want.tolist()
        assert np.isnan(out["collab"][row]).all()  # no CF evidence: no collab value


def test_the_user_without_history_has_zero_content_and_a_popular_pool(rand, rand_policy):
    policy = rand_policy()
    out = rank_batch(rand, np.array([5]), policy)
    got = out["item_idx"][0] >= 0
    assert got.all() and not out["content"][0][got].any()
    (pool,) = pool_rows(rand, np.array([5]), policy)
    popular = np.lexsort((np.arange(rand.n_items), -rand.popularity))
    popular = popular[rand.has_metadata[popular]]
    assert pool.tolist() == popular[: policy.n_cf_seed].tolist()
