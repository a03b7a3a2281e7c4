"""Candidate pools, filters and the relaxation ladder, boosts, MMR, determinism - on tiny hand-built arrays.

The fixture catalogue has 12 movies (ids 10, 20, ..., 120) in three content clusters, genres
Action / Comedy / Drama / Empty (no movie has Empty) and providers Netflix / Hulu / Nowhere
(no movie is on Nowhere); 5 users, user 4 is cold (no factors, no history).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.candidates import (
    RecommenderArrays,
    apply_filters,
    best_recent_items,
    boost_scores,
    candidates_check_frame,
    candidates_frame,
    explain,
    filter_levels,
    generate_candidates,
    manifest_facts,
    mmr_rerank,
    recommend_batch,
    recommend_for_user,
    recommend_users,
    relaxation_steps,
    top_k_columns,
)
from tasks.columns import Col
from tasks.errors import UsageError
from tasks.profile import CandidatesSection

N_ITEMS, N_USERS = 12, 5
GENRES = ["Action", "Comedy", "Drama", "Empty"]
PROVIDERS = ["Netflix", "Hulu", "Nowhere"]
CFG = CandidatesSection(
    n_cf_seed=5, m_seed_items=3, k_neighbors=4, c_max=8, k_final=5, w_q=0.05, w_r=0.03, w_p=0.02
)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def make_arrays(**overrides) -> RecommenderArrays:
    # three clusters of four items: directions e0, e1, e2 with a small item-specific tilt along e3
    base = np.repeat(np.eye(4)[:3], 4, axis=0) + 0.15 * np.outer(
        np.tile(np.arange(4), 3), np.eye(4)[3]
    )
    emb = _unit(base)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    neighbors = np.argsort(-sims, axis=1, kind="stable")[:, :4].astype(np.int32)
    genre = np.zeros((N_ITEMS, 4), bool)
    genre[0:4, 0] = True  # Action: cluster 0
    genre[4:8, 1] = True  # Comedy: cluster 1
    genre[8:12, 2] = True  # Drama: cluster 2
    genre[[3, 7], 2] = True  # two cross-genre movies
    provider = np.zeros((N_ITEMS, 3), bool)
    provider[::2, 0] = True  # Netflix: even items
    provider[[1, 5], 1] = True  # Hulu
    rng = np.random.default_rng(7)
    user_factors = rng.standard_normal((N_USERS, 3)).astype(np.float32)
    user_factors[4] = 0.0
    item_factors = rng.standard_normal((N_ITEMS, 3)).astype(np.float32)
    # training ratings: (user, item, rating)
    train = [
        (0, 0, 5.0),
        (0, 1, 4.0),
        (0, 8, 2.0),
        (1, 4, 5.0),
        (1, 5, 4.5),
        (2, 9, 4.0),
        (3, 2, 3.0),
        (3, 10, 5.0),
    ]
    u, i, r = (np.array(c) for c in zip(*train, strict=True))
    seen = sp.csr_matrix((r.astype(np.float32), (u, i)), shape=(N_USERS, N_ITEMS))
    profiles = np.zeros((N_USERS, 4), np.float32)
    for user in range(4):
        liked = [it for (uu, it, rr) in train if uu == user and rr >= 4.0]
        profiles[user] = emb[liked].sum(axis=0)  # users 0-3 each liked at least one item
    profiles[:4] = _unit(profiles[:4])
    seeds = np.full((N_USERS, 3), -1, np.int32)
    seeds[0, :2], seeds[1, :2], seeds[2, 0], seeds[3, :2] = [0, 1], [4, 5], 9, [10, 2]
    fields = dict(
        item_ids=np.arange(10, 130, 10, dtype=np.int32),
        user_ids=np.array([1, 2, 3, 4, 5], np.int32),
        embeddings=emb,
        neighbor_idx=neighbors,
        user_factors=user_factors,
        item_factors=item_factors,
        user_has_factors=np.array([True, True, True, True, False]),
        item_has_factors=np.ones(N_ITEMS, bool),
        profiles=profiles,
        quality=np.linspace(0.1, 0.9, N_ITEMS).astype(np.float32),
        recency=np.linspace(1.0, 0.0, N_ITEMS).astype(np.float32),
        genre_names=GENRES,
        genre_matrix=genre,
        provider_names=PROVIDERS,
        provider_matrix=provider,
        seen=seen,
        seed_items=seeds,
        cohorts=np.array(["light", "light", "cold", "medium", "cold"], dtype=object),
        titles=np.array([f"Movie {10 * (j + 1)}" for j in range(N_ITEMS)], dtype=object),
    )
    fields.update(overrides)
    return RecommenderArrays(**fields)


ARRAYS = make_arrays()
ALL_USERS = np.arange(N_USERS)
ALPHAS = np.full(N_USERS, 0.5, np.float32)


def _seen_pairs(arrays: RecommenderArrays) -> set[tuple[int, int]]:
    coo = arrays.seen.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def _items(result, user: int) -> list[int]:
    row = result["item_idx"][user]
    return row[row >= 0].tolist()


# --------------------------------------------------------------------------------------------
# cold start
# --------------------------------------------------------------------------------------------
def test_cold_user_gets_content_only_scores():
    arrays = make_arrays(user_has_factors=np.array([True, True, True, False, False]))
    out = recommend_batch(arrays, np.array([3]), np.array([0.15], np.float32), CFG)
    items = _items(out, 0)
    assert len(items) == CFG.k_final
    content = (1.0 + arrays.embeddings[items] @ arrays.profiles[3]) / 2.0
    np.testing.assert_allclose(out["content"][0], content, atol=1e-6)
    assert np.isnan(out["collab"][0]).all()  # no collaborative part at all
    w = CFG.w_q + CFG.w_r + CFG.w_p
    np.testing.assert_allclose(out["score"][0], (1 - w) * content + out["boosts"][0], atol=1e-6)


def test_brand_new_user_is_ranked_by_popularity_and_boosts():
    out = recommend_batch(ARRAYS, np.array([4]), np.array([1.0], np.float32), CFG)
    np.testing.assert_allclose(out["content"][0], 0.5)  # zero profile
    # every score is the neutral blend 0.5 plus the boosts; the seeds are the most popular items
    np.testing.assert_allclose(out["score"][0], 0.9 * 0.5 + out["boosts"][0], atol=1e-6)
    assert np.isnan(out["collab"][0]).all()


def test_items_without_factors_use_content_only():
    has = np.ones(N_ITEMS, bool)
    has[[3, 6, 11]] = False
    arrays = make_arrays(item_has_factors=has)
    out = recommend_users(arrays, ALL_USERS[:4], ALPHAS[:4], CFG, workers=1)
    items = out["item_idx"]
    no_factor = np.isin(items, [3, 6, 11])
    assert np.isnan(out["collab"][no_factor]).all()
    assert np.isfinite(out["collab"][(items >= 0) & ~no_factor]).all()


# --------------------------------------------------------------------------------------------
# filters and the relaxation ladder
# --------------------------------------------------------------------------------------------
def test_seen_items_are_never_returned():
    out = recommend_users(ARRAYS, ALL_USERS, ALPHAS, CFG, workers=1, k=N_ITEMS)
    seen = _seen_pairs(ARRAYS)
    for user in ALL_USERS:
        assert not any((user, item) in seen for item in _items(out, user))


def test_genre_filter_has_or_semantics():
    out = recommend_users(
        ARRAYS, ALL_USERS, ALPHAS, CFG, genres=["Action", "Comedy"], workers=1, k=4
    )
    g = ARRAYS.genre_matrix
    returned = set()
    for user in ALL_USERS:
        items = _items(out, user)
        assert all(g[i, 0] or g[i, 1] for i in items)
        returned.update(items)
    assert out["relaxation_step"].tolist() == [0] * N_USERS
    assert any(g[i, 0] and not g[i, 1] for i in returned)  # Action-only movies
    assert any(g[i, 1] and not g[i, 0] for i in returned)  # Comedy-only movies
    assert not any(g[i, 2] and not (g[i, 0] or g[i, 1]) for i in returned)  # no Drama-only movie


def test_provider_filter_keeps_only_offered_items():
    out = recommend_users(
        ARRAYS, ALL_USERS, ALPHAS, CFG, providers=["Hulu", "netflix"], workers=1, k=3
    )
    p = ARRAYS.provider_matrix
    for user in ALL_USERS:
        items = _items(out, user)
        assert items and all(p[i, 0] or p[i, 1] for i in items)
    assert set(out["relaxation_step"].tolist()) == {0}


def test_filter_that_matches_nothing_relaxes_two_steps_and_says_so():
    out = recommend_users(
        ARRAYS, ALL_USERS, ALPHAS, CFG, genres=["Empty"], providers=["Nowhere"], workers=1
    )
    assert out["relaxation_step"].tolist() == [2] * N_USERS
    assert ((out["item_idx"] >= 0).sum(axis=1) == CFG.k_final).all()  # then it returns what it has


def test_provider_that_matches_nothing_relaxes_one_step():
    out = recommend_users(
        ARRAYS, ALL_USERS, ALPHAS, CFG, genres=["Drama"], providers=["Nowhere"], workers=1, k=3
    )
    assert out["relaxation_step"].tolist() == [1] * N_USERS
    g = ARRAYS.genre_matrix
    for user in ALL_USERS:
        assert all(g[i, 2] for i in _items(out, user))  # genres kept at step 1


def test_relaxation_steps_known_answer():
    allowed = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    # user 0 saw item 0; user 1 saw items 0, 1, 2; user 2 saw everything
    rows = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2, 2])
    items = np.array([0, 0, 1, 2, 0, 1, 2, 3, 4, 5])
    steps, counts = relaxation_steps(
        allowed, rows, items, 3, 1, genres_active=True, providers_active=True
    )
    assert counts.tolist() == [[1, 3, 5], [0, 1, 3], [0, 0, 0]]
    assert steps.tolist() == [0, 1, 2]
    steps, _ = relaxation_steps(
        allowed, rows, items, 3, 1, genres_active=False, providers_active=False
    )
    assert steps.tolist() == [0, 0, 0]  # nothing to relax


def test_apply_filters_on_a_padded_pool():
    pool = np.array([[0, 1, 2, 4, -1, 99], [4, 5, 6, 7, 8, -1]])
    keep, steps = apply_filters(ARRAYS, np.array([0, 1]), pool, genres=["Action"], min_results=1)
    # user 0 saw items 0 and 1; item 99 is unknown; user 1's pool has no Action item but the catalogue has
    assert keep.tolist() == [[False, False, True, False, False, False], [False] * 6]
    assert steps.tolist() == [0, 0]


def test_unknown_filter_names_list_the_valid_ones():
    with pytest.raises(UsageError, match="valid genres are: Action, Comedy, Drama, Empty"):
        filter_levels(ARRAYS, genres=["Western"])
    with pytest.raises(UsageError, match="Netflix, Hulu, Nowhere"):
        filter_levels(ARRAYS, providers=["Max"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    genres=st.lists(st.sampled_from(GENRES), max_size=3, unique=True),
    providers=st.lists(st.sampled_from(PROVIDERS), max_size=2, unique=True),
    users=st.lists(st.integers(0, N_USERS - 1), min_size=1, max_size=6),
    k=st.integers(1, 14),
    mmr=st.booleans(),
)
def test_any_filter_terminates_with_a_bounded_valid_list(genres, providers, users, k, mmr):
    users = np.array(users)
    out = recommend_batch(
        ARRAYS, users, ALPHAS[users], CFG, genres or None, providers or None, mmr, k=k
    )
    allowed = filter_levels(ARRAYS, genres or None, providers or None)
    seen = _seen_pairs(ARRAYS)
    assert out["item_idx"].shape == (len(users), k)
    assert set(out["relaxation_step"].tolist()) <= {0, 1, 2}
    for row, user in enumerate(users):
        items = out["item_idx"][row]
        n = int((items >= 0).sum())
        assert (items[:n] >= 0).all() and (items[n:] == -1).all()  # contiguous, padded at the end
        step = out["relaxation_step"][row]
        assert len(set(items[:n].tolist())) == n
        for item in items[:n]:
            assert allowed[step, item] and (user, item) not in seen
        scores = out["score"][row, :n]
        assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()


# --------------------------------------------------------------------------------------------
# candidate pools
# --------------------------------------------------------------------------------------------
def test_pool_holds_cf_seeds_and_content_expansion_without_duplicates():
    pool = generate_candidates(ARRAYS, ALL_USERS, CFG)
    assert pool.item_idx.shape == (N_USERS, CFG.c_max)
    seen = _seen_pairs(ARRAYS)
    for user in range(N_USERS):
        items = pool.item_idx[user][pool.item_idx[user] >= 0]
        assert len(items) == len(set(items.tolist()))
        assert not any((user, i) in seen for i in items)
        # the CF seeds are the top unseen items by x_u . y_i (user 4 has no factors: popularity)
        if ARRAYS.user_has_factors[user]:
            cf = ARRAYS.user_factors[user] @ ARRAYS.item_factors.T
            unseen = [i for i in np.argsort(-cf, kind="stable") if (user, i) not in seen]
            seeds = items[(pool.source[user][: len(items)] & 1) > 0]
            assert set(seeds.tolist()) == set(unseen[: CFG.n_cf_seed])
    # user 0's best item 0 has neighbours 1, 2, 3 (same cluster): unseen ones come by expansion
    flags = dict(zip(pool.item_idx[0].tolist(), pool.source[0].tolist(), strict=True))
    assert flags[2] & 2 and flags[3] & 2


def test_user_who_has_seen_almost_everything_gets_every_unseen_item():
    """Items without factors are no CF seeds; those that are no neighbour of a seed item must
    still reach the pool when the user has fewer unseen items than a pool holds."""
    has = np.ones(N_ITEMS, bool)
    has[[6, 11]] = False
    left = [5, 6, 11]
    assert not set(ARRAYS.neighbor_idx[[0, 1]].ravel()) & {6, 11}  # user 0's seed items: 0, 1
    seen = ARRAYS.seen.tolil()
    for item in sorted(set(range(N_ITEMS)) - set(left) - {0, 1, 8}):
        seen[0, item] = 3.5
    arrays = make_arrays(item_has_factors=has, seen=seen.tocsr())
    pool = generate_candidates(arrays, np.array([0]), CFG)
    assert sorted(pool.item_idx[0][pool.item_idx[0] >= 0].tolist()) == left
    out = recommend_batch(arrays, np.array([0]), ALPHAS[:1], CFG)
    assert sorted(_items(out, 0)) == left
    assert np.isnan(out["collab"][0][np.isin(out["item_idx"][0], [6, 11])]).all()


def _wide_arrays(n_items: int = 100) -> RecommenderArrays:
    """One user without factors on a catalogue wider than the cold-seed window (n_cf_seed + 64):
    popularity falls with the item index; the user rated the 70 most popular items, all low (no
    seed items, zero profile); items 70-79 have no factors."""
    rng = np.random.default_rng(5)
    emb = _unit(rng.standard_normal((n_items, 6)))
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    has = np.ones(n_items, bool)
    has[70:80] = False
    seen = sp.csr_matrix(
        (np.full(70, 1.0, np.float32), (np.zeros(70, int), np.arange(70))), shape=(1, n_items)
    )
    return RecommenderArrays(
        item_ids=np.arange(1, n_items + 1, dtype=np.int32),
        user_ids=np.array([1], np.int32),
        embeddings=emb,
        neighbor_idx=np.argsort(-sims, axis=1, kind="stable")[:, :4].astype(np.int32),
        user_factors=np.zeros((1, 3), np.float32),
        item_factors=rng.standard_normal((n_items, 3)).astype(np.float32),
        user_has_factors=np.array([False]),
        item_has_factors=has,
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


def test_user_without_factors_beyond_the_popular_window_gets_a_full_list():
    arrays = _wide_arrays()
    assert CFG.n_cf_seed + 64 < 70  # every item of the cold-seed window is seen
    out = recommend_batch(arrays, np.array([0]), np.ones(1, np.float32), CFG)
    # the most popular unseen items, with or without factors
    assert sorted(_items(out, 0)) == list(range(70, 70 + CFG.k_final))
    pool = generate_candidates(arrays, np.array([0]), CFG)
    assert pool.item_idx[0].tolist()[: CFG.n_cf_seed] == list(range(70, 70 + CFG.n_cf_seed))


def test_pools_of_users_with_enough_unseen_items_are_left_alone(monkeypatch):
    import tasks.candidates as candidates

    def fail(*args, **kwargs):
        raise AssertionError("a full pool was completed")

    before = generate_candidates(ARRAYS, ALL_USERS, CFG)
    monkeypatch.setattr(candidates, "_fill_short_pools", fail)
    after = generate_candidates(ARRAYS, ALL_USERS, CFG)  # no short pool in the fixture
    np.testing.assert_array_equal(before.item_idx, after.item_idx)


def test_user_with_only_low_ratings_gets_no_seed_items():
    seeds = best_recent_items(
        np.array([0, 0, 1, 1]),
        np.array([3, 4, 5, 6]),
        np.array([1.0, 2.0, 5.0, 1.0]),
        np.array([10, 20, 10, 20]),
        n_users=2,
        m=3,
        relevance_threshold=4.0,
    )
    assert seeds.tolist() == [[-1, -1, -1], [5, -1, -1]]


def test_from_parts_gives_a_user_with_only_low_ratings_no_taste():
    from types import SimpleNamespace

    content = SimpleNamespace(
        item_ids=ARRAYS.item_ids,
        embeddings=ARRAYS.embeddings,
        neighbor_idx=ARRAYS.neighbor_idx,
        numeric=pd.DataFrame({"quality": ARRAYS.quality, "recency": ARRAYS.recency}),
        genre_names=GENRES,
        genre_matrix=ARRAYS.genre_matrix,
        provider_names=PROVIDERS,
        provider_matrix=ARRAYS.provider_matrix,
    )
    collab = SimpleNamespace(
        user_ids=np.array([1, 2], np.int32),
        item_ids=ARRAYS.item_ids,
        user_factors=np.zeros((2, 3), np.float32),
        item_factors=ARRAYS.item_factors,
        user_has_factors=np.zeros(2, bool),
        item_has_factors=np.ones(N_ITEMS, bool),
    )
    train = pd.DataFrame(
        {
            Col.USER: [1, 1, 1, 2],
            Col.ITEM: [10, 20, 30, 50],
            Col.RATING: [0.5, 1.5, 2.0, 4.5],
            Col.TIMESTAMP: [1, 2, 3, 4],
        }
    )
    arrays = RecommenderArrays.from_parts(content, collab, train, m_seed_items=3)
    assert not arrays.profiles[0].any() and (arrays.seed_items[0] == -1).all()
    assert arrays.profiles[1].any() and arrays.seed_items[1].tolist() == [4, -1, -1]
    out = recommend_batch(arrays, np.array([0]), np.ones(1, np.float32), CFG)
    np.testing.assert_allclose(out["content"][0], 0.5)  # neutral: served by popularity + boosts
    assert len(_items(out, 0)) == CFG.k_final


def test_top_k_columns_matches_a_stable_sort_including_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 40, size=(6, 3000)).astype(np.float32)  # many ties
    scores[1, :2990] = -np.inf  # fewer finite entries than k
    scores[2] = 5.0  # all equal: ties everywhere
    idx, vals = top_k_columns(scores, 50)
    for row in range(6):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = finite[np.argsort(-scores[row, finite], kind="stable")][:50]
        got = idx[row][idx[row] >= 0]
        assert got.tolist() == expected.tolist()
        np.testing.assert_array_equal(vals[row][: len(got)], scores[row, got])


# --------------------------------------------------------------------------------------------
# boosts and MMR
# --------------------------------------------------------------------------------------------
def test_boosts_keep_scores_in_unit_interval():
    rng = np.random.default_rng(0)
    blend, q, r, p = (rng.random(1000).astype(np.float32) for _ in range(4))
    score, boosts = boost_scores(blend, q, r, (p > 0.5).astype(np.float32), 0.05, 0.03, 0.02)
    assert (score >= 0).all() and (score <= 1).all()
    np.testing.assert_allclose(score, 0.9 * blend + boosts, atol=1e-6)
    with pytest.raises(ValueError, match="within"):
        boost_scores(blend, q, r, p, 0.6, 0.3, 0.2)


def _intra_list_diversity(emb: np.ndarray, items: np.ndarray) -> float:
    g = emb[items]
    sims = g @ g.T
    k = len(items)
    return float(1.0 - (sims.sum() - k) / (k * (k - 1)))


def test_mmr_lambda_one_keeps_the_relevance_order():
    rng = np.random.default_rng(1)
    emb = _unit(rng.standard_normal((40, 8)))
    pool = np.array([rng.permutation(40)[:30]])
    rel = rng.random((1, 30)).astype(np.float32)
    picks = mmr_rerank(pool, rel, emb, 1.0, 10)
    assert picks[0].tolist() == np.argsort(-rel[0], kind="stable")[:10].tolist()


def test_smaller_lambda_raises_intra_list_diversity():
    # 30 items in 3 tight clusters; relevance favours cluster 0 strongly
    rng = np.random.default_rng(2)
    centres = np.eye(8)[:3]
    labels = np.repeat(np.arange(3), 10)
    emb = _unit(centres[labels] + 0.05 * rng.standard_normal((30, 8)))
    rel = np.where(labels == 0, 0.9, 0.5).astype(np.float32) + 0.01 * rng.random(30).astype(
        np.float32
    )
    pool = np.arange(30)[None, :]
    diversity = {}
    for lam in (1.0, 0.7, 0.25):
        picks = mmr_rerank(pool, rel[None, :], emb, lam, 6)[0]
        diversity[lam] = _intra_list_diversity(emb, pool[0, picks])
    assert diversity[1.0] < diversity[0.7]
    assert diversity[1.0] < diversity[0.25]
    assert diversity[0.25] > diversity[1.0] + 0.3


def test_mmr_ties_go_to_the_smaller_movie_id():
    emb = _unit(np.eye(4) + 0.01)
    pool = np.array([[3, 1, 2, 0]])
    rel = np.full((1, 4), 0.5, np.float32)
    assert pool[0, mmr_rerank(pool, rel, emb, 1.0, 4)[0]].tolist() == [0, 1, 2, 3]


def test_equal_scores_are_ordered_by_movie_id_end_to_end():
    # every item identical: same embedding, factors, quality, recency -> all scores tie
    arrays = make_arrays(
        embeddings=np.tile(_unit(np.ones((1, 4))), (N_ITEMS, 1)),
        item_factors=np.ones((N_ITEMS, 3), np.float32),
        quality=np.full(N_ITEMS, 0.5, np.float32),
        recency=np.full(N_ITEMS, 0.5, np.float32),
        provider_matrix=np.zeros((N_ITEMS, 3), bool),
    )
    out = recommend_batch(arrays, np.array([2]), np.array([0.5], np.float32), CFG, k=4, mmr=False)
    assert _items(out, 0) == [0, 1, 2, 3]  # item 9 is seen; the rest tie -> smallest ids first


def test_same_input_twice_gives_identical_lists():
    users = np.tile(ALL_USERS, 120)  # 600 users: three tasks, so two worker processes share them
    a = recommend_users(make_arrays(), users, ALPHAS[users], CFG, workers=1)
    b = recommend_users(make_arrays(), users, ALPHAS[users], CFG, workers=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


# --------------------------------------------------------------------------------------------
# table, explanations, CLI entry, validation
# --------------------------------------------------------------------------------------------
def test_candidates_frame_is_canonical():
    out = recommend_users(ARRAYS, ALL_USERS, ALPHAS, CFG, workers=1)
    df = candidates_frame(ARRAYS, ALL_USERS, out)
    assert list(df.columns) == [
        Col.USER,
        Col.ITEM,
        Col.RANK,
        Col.SCORE,
        Col.COLLAB,
        Col.CONTENT,
        Col.BOOSTS,
        Col.RELAXATION_STEP,
    ]
    assert df[Col.USER].dtype == np.int32 and df[Col.ITEM].dtype == np.int32
    assert set(df[Col.ITEM]) <= set(ARRAYS.item_ids.tolist())
    for _, part in df.groupby(Col.USER):
        assert part[Col.RANK].tolist() == list(range(1, len(part) + 1))
    check = candidates_check_frame(df)
    assert check["rank_contiguous"].all()
    broken = df.copy()
    broken.loc[broken.index[1], Col.RANK] = 9
    assert not candidates_check_frame(broken)["rank_contiguous"].all()


def test_candidate_table_and_manifests_pass_their_suites():
    from tasks.validation import validate_table

    out = recommend_users(ARRAYS, ALL_USERS, ALPHAS, CFG, workers=1)
    df = candidates_check_frame(candidates_frame(ARRAYS, ALL_USERS, out))
    assert validate_table(df, "candidates", source="test")["success"]
    dup = pd.concat([df, df.iloc[:1]], ignore_index=True)
    summary = validate_table(dup, "candidates", source="test")
    assert not summary["success"] and any(
        f["column"] == "duplicate_pair" for f in summary["failed"]
    )
    rerank = {
        "kind": "rerank",
        "config": {"lambda_div": 0.25, "k_final": 5, "c_max": 8},
        "counts": {
            "users_served": 5,
            "mean_pool": 7.5,
            "relaxations": {"none": 5},
            "seconds": 0.1,
            "users_per_second": 50.0,
        },
        "sample_users": [1],
    }
    assert validate_table(manifest_facts(rerank, "rerank_manifest"), "rerank_manifest", source="t")[
        "success"
    ]
    del rerank["counts"]["seconds"]
    assert not validate_table(
        manifest_facts(rerank, "rerank_manifest"), "rerank_manifest", source="t"
    )["success"]


def test_explain_names_the_most_similar_liked_item():
    # user 0 liked items 0 (Movie 10) and 1 (Movie 20), disliked item 8; item 3 is in cluster 0
    assert explain(ARRAYS, 0, 3) == "because you rated Movie 20 highly"
    assert explain(ARRAYS, 0, 9) in {
        "because you rated Movie 10 highly",
        "because you rated Movie 20 highly",
    }
    assert explain(ARRAYS, 4, 5, genres=["comedy"]) == "popular in Comedy (no history yet)"


def test_recommend_for_user_known_unknown_and_brand_new(tmp_path):
    policy = {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.8}
    df = recommend_for_user(tmp_path, 1, k=3, arrays=ARRAYS, policy=policy, cfg=CFG)
    assert len(df) == 3 and (df["mode"] == "personalised").all()
    assert df["reason"].str.startswith("because you rated").all()
    with pytest.raises(UsageError, match="unknown user id 999"):
        recommend_for_user(tmp_path, 999, k=3, arrays=ARRAYS, policy=policy, cfg=CFG)
    new = recommend_for_user(
        tmp_path, 999, k=3, genres=["Drama"], arrays=ARRAYS, policy=policy, cfg=CFG
    )
    assert len(new) == 3 and (new["mode"] == "cold-start").all()
    assert new[Col.GENRES].str.contains("Drama").all()
    assert (new["reason"] == "popular in Drama (no history yet)").all()
    with pytest.raises(UsageError, match="valid genres"):
        recommend_for_user(tmp_path, 1, k=3, genres=["Nope"], arrays=ARRAYS, policy=policy, cfg=CFG)


def test_candidates_core_serves_everyone_and_writes_valid_artifacts(tmp_path, monkeypatch):
    import json

    import tasks.candidates as candidates
    from tasks.profile import PolicySection

    monkeypatch.setattr(
        candidates.RecommenderArrays, "from_run", classmethod(lambda cls, *a, **kw: make_arrays())
    )
    cfg = CFG.model_copy(update={"sample_users": 3})
    out = candidates.candidates_core(
        str(tmp_path), None, PolicySection(), cfg, 4.0, seed=1, workers=1
    )
    facts = out["facts"]
    assert facts["users_served"] == N_USERS and facts["sample_users"] == 3
    assert set(facts["relaxations"]) == {"none", "providers_dropped", "genres_widened"}
    files = sorted(p.name for p in (tmp_path / "hybrid" / "candidates").iterdir())
    assert len(files) == 3 and all(
        f.startswith("user_") and f.endswith("_candidates.parquet") for f in files
    )
    frame = pd.read_parquet(tmp_path / "hybrid" / "candidates" / files[0])
    assert frame[Col.RANK].tolist() == list(range(1, len(frame) + 1))
    rerank = json.loads((tmp_path / "hybrid" / "rerank_manifest.json").read_text())
    assert (
        rerank["counts"]["users_served"] == N_USERS
        and rerank["config"]["lambda_div"] == CFG.lambda_div
    )
    assembly = json.loads((tmp_path / "hybrid" / "assembly_manifest.json").read_text())
    assert assembly["arrays"]["embeddings"]["shape"] == [N_ITEMS, 4]
    schema = (tmp_path / "hybrid" / "scoring_schema.md").read_text()
    assert f"c_max = {CFG.c_max}" in schema and "| cold | 0.15 |" in schema
