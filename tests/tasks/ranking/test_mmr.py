"""Tests for tasks/ranking/_mmr.py: maximal marginal relevance with lambda_div = the weight of
diversity. lambda_div = 0 is the score order; a near-duplicate is demoted when the diversity
weight is large enough, and only then; the batched greedy equals a naive per-user loop over the
docstring formula; the engine's lists obey the same rules end to end."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.ranking import minmax_rows, mmr_rerank, mmr_select, rank_batch
from tasks.ranking._mmr import tie_order


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def naive_mmr(pool, rel, sim, lambda_div, k):
    """The docstring formula, one user at a time, in float32 with the engine's operation order:
    value_i = (1 - lambda) rel_i - lambda max_{j chosen} sim_ij (first pick: the most relevant);
    ties to the higher relevance, then the smaller item."""
    lam = np.float32(lambda_div)
    out = np.full((len(pool), k), -1, np.int64)
    for u in range(len(pool)):  # the reference loops over users and steps on purpose
        usable = [c for c in range(pool.shape[1]) if pool[u, c] >= 0 and np.isfinite(rel[u, c])]
        chosen: list[int] = []
        for step in range(k):
            best, best_key = None, None
            for c in usable:
                if c in chosen:
                    continue
                rel_term = (np.float32(1.0) - lam) * np.float32(rel[u, c])
                if chosen:
                    max_sim = max(np.float32(sim[u, c, j]) for j in chosen)
                    value = rel_term - lam * max_sim
                else:
                    value = rel_term
                key = (np.float32(value), np.float32(rel[u, c]), -int(pool[u, c]))
                if best_key is None or key > best_key:
                    best, best_key = c, key
            if best is None:
                break
            chosen.append(best)
            out[u, step] = best
    return out


def random_case(seed: int, b: int = 200, c: int = 25, n_items: int = 80):
    rng = np.random.default_rng(seed)
    emb = unit(rng.standard_normal((n_items, 6)))
    emb[1] = emb[0]  # an exact duplicate pair
    pool = np.stack([rng.permutation(n_items)[:c] for _ in range(b)])
    pool[0, c - 5 :] = -1  # padded pools
    pool[3, :] = -1
    rel = np.round(rng.random((b, c)), 1).astype(np.float32)  # many relevance ties
    rel[1, 3] = np.nan
    rel[2, :] = 0.5  # one row all tied
    g = emb[np.maximum(pool, 0)]
    sim = np.matmul(g, g.transpose(0, 2, 1)).astype(np.float32)
    return pool, rel, sim, emb


@pytest.mark.parametrize("lambda_div", [0.0, 0.1, 0.3, 0.7, 1.0])
def test_mmr_select_equals_a_naive_loop_over_the_formula(lambda_div):
    pool, rel, sim, _ = random_case(int(lambda_div * 10))
    got = mmr_select(pool, rel, sim, lambda_div, 12)
    np.testing.assert_array_equal(got, naive_mmr(pool, rel, sim, lambda_div, 12))


def test_lambda_zero_is_exactly_the_relevance_order_with_ties_to_the_smaller_item():
    pool, rel, sim, _ = random_case(5)
    got = mmr_select(pool, rel, sim, 0.0, pool.shape[1])
    for u in range(len(pool)):
        ok = np.flatnonzero((pool[u] >= 0) & np.isfinite(rel[u]))
        want = ok[np.lexsort((pool[u, ok], -rel[u, ok]))]
        assert got[u, : len(want)].tolist() == want.tolist()
        assert (got[u, len(want) :] == -1).all()


def test_mmr_rerank_is_mmr_select_on_minmax_relevance_and_cosines():
    pool, rel, _, emb = random_case(6)
    scores = rel * 3.0 - 1.0  # any scale: relevance is min-max scaled per row
    g = emb[np.maximum(pool, 0)]
    sim = np.matmul(g, g.transpose(0, 2, 1))
    expect = mmr_select(pool, minmax_rows(scores, pool >= 0), sim, 0.4, 10)
    np.testing.assert_array_equal(mmr_rerank(pool, scores, emb, 0.4, 10), expect)


@pytest.mark.parametrize(("lambda_div", "second"), [(0.05, 1), (0.3, 2), (0.75, 2)])
def test_a_near_duplicate_is_demoted_only_when_diversity_weighs_enough(lambda_div, second):
    # items 0 and 1 have the same embedding, item 2 is orthogonal; relevance 1.0, 0.9, 0.8.
    # After item 0: value(1) = (1 - l) 0.9 - l, value(2) = (1 - l) 0.8: item 2 wins iff l > 1/11
    emb = unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    pool, rel = np.array([[0, 1, 2]]), np.array([[1.0, 0.9, 0.8]], np.float32)
    sim = (emb[pool] @ emb[pool].transpose(0, 2, 1)).astype(np.float32)
    picks = mmr_select(pool, rel, sim, lambda_div, 3)[0]
    assert picks[0] == 0 and picks[1] == second


def test_tie_order_puts_unusable_entries_last():
    pool = np.array([[3, -1, 2, 5, 4]])
    rel = np.array([[0.1, 0.9, 0.5, 0.1, np.nan]], np.float32)
    assert tie_order(pool, rel).tolist() == [[2, 0, 3, 1, 4]]


def test_minmax_rows_over_the_masked_entries():
    v = np.array([[2.0, 4.0, np.nan, 3.0], [1.0, 1.0, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    out = minmax_rows(v, mask)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.0, 0.5], [1.0, 1.0, 0.0, 0.0], [0.0] * 4])


# --------------------------------------------------------------------------------------------
# end to end: the engine's MMR
# --------------------------------------------------------------------------------------------
def score_order(result, u):
    items, scores = result["item_idx"][u], result["score"][u]
    n = int((items >= 0).sum())
    return items[:n], scores[:n]


def test_lambda_zero_serves_the_score_order_end_to_end(rand, rand_policy):
    policy = rand_policy(lambda_div=0.0, k_final=60, mmr_pool=60)
    users = np.arange(rand.n_users)
    out = rank_batch(rand, users, policy, k=20)
    full = rank_batch(rand, users, policy)  # every item of the MMR selection
    for u in users:
        items, scores = score_order(out, u)
        assert len(items) == min(20, out["pool_size"][u])
        order = np.lexsort((items, -scores.astype(np.float64)))
        assert order.tolist() == list(range(len(items)))  # desc, ties to the smaller item
        all_items, _ = score_order(full, u)
        assert items.tolist() == all_items[: len(items)].tolist()


def test_lambda_zero_serves_small_pools_in_full(make_tiny, make_policy):
    """Pools narrower than the MMR selection (a filter leaves few allowed items): the score
    order must serve every pooled item, not the padding of the selection."""
    arrays = make_tiny()
    for lambda_div in (0.0, 0.3):
        out = rank_batch(
            arrays,
            np.arange(arrays.n_users),
            make_policy(lambda_div=lambda_div),
            k=4,
            genres=["Action"],
            min_results=1,
        )
        n = (out["item_idx"] >= 0).sum(axis=1)
        np.testing.assert_array_equal(n, np.minimum(out["pool_size"], 4))
        assert np.isfinite(out["score"][out["item_idx"] >= 0]).all()


def test_the_engine_demotes_a_duplicate_of_its_first_pick(make_tiny, make_policy):
    """User 0 (Action fan) with item 2's embedding copied onto item 3: its top two by score are
    the twins; with diversity weighed in, the twin drops below an item of another cluster."""
    base = make_tiny()
    emb = base.embeddings.copy()
    emb[3] = emb[2]
    arrays = make_tiny(embeddings=emb)
    policy = make_policy(n_cf_seed=10, c_max=10, w_q=0.0, w_r=0.0, w_p=0.0)
    alphas = np.ones(1, np.float32)  # content only: the twins are the two best items
    plain = rank_batch(arrays, np.array([0]), policy.model_copy(update={"lambda_div": 0.0}),
                       alphas=alphas)["item_idx"][0]  # fmt: skip
    assert sorted(plain[:2].tolist()) == [2, 3]
    first, twin = plain[0], plain[1]
    diverse = rank_batch(arrays, np.array([0]), policy.model_copy(update={"lambda_div": 0.6}),
                         alphas=alphas)["item_idx"][0]  # fmt: skip
    assert diverse[0] == first and diverse[1] != twin
    assert diverse.tolist().index(twin) > 1
    slight = rank_batch(arrays, np.array([0]), policy.model_copy(update={"lambda_div": 0.01}),
                        alphas=alphas)["item_idx"][0]  # fmt: skip
    assert slight[:2].tolist() == plain[:2].tolist()


def test_equal_scores_are_ordered_by_item_end_to_end(make_tiny, make_policy, make_cf):
    """Every item identical (embedding, factors, quality, recency, no provider): all scores tie,
    so the list is the unseen items by index, for any lambda_div."""
    base = make_tiny()
    n = base.n_items
    cf = make_cf(base.user_ids, base.item_ids, np.ones((5, 3)), np.ones((n, 3)))
    arrays = make_tiny(
        embeddings=np.tile(unit(np.ones((1, 4))), (n, 1)),
        quality=np.full(n, 0.5, np.float32),
        recency=np.full(n, 0.5, np.float32),
        provider_matrix=np.zeros((n, 3), bool),
        popularity=np.full(n, 0.5, np.float32),
        cf=cf,
    )
    for lambda_div in (0.0, 0.5):
        out = rank_batch(arrays, np.array([2]), make_policy(lambda_div=lambda_div), k=4)
        assert out["item_idx"][0].tolist() == [0, 1, 2, 3]  # item 9 is seen; the rest tie
