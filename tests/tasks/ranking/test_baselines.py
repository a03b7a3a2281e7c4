"""Tests for tasks/ranking/_baselines.py: each single-signal list equals a full sort of its signal
over the catalogue, with excluded pairs, items without metadata (and for CF, without CF
evidence) removed; ties to the smaller item; users without the signal get popularity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tasks.ranking import cf_lists, content_lists, popularity_lists, popularity_order

K = 15


def full_sort(scores: np.ndarray, usable: np.ndarray, k: int) -> np.ndarray:
    """Reference: per row, the usable columns by (score desc, column asc), -1 padded."""
    out = np.full((len(scores), k), -1, np.int64)
    for r in range(len(scores)):  # the reference loops over rows on purpose
        cols = np.flatnonzero(usable[r])
        order = cols[np.lexsort((cols, -scores[r, cols].astype(np.float64)))][:k]
        out[r, : len(order)] = order
    return out


def with_missing_metadata(rand):
    """The random arrays with three items without metadata (NaN quality) and CF ties."""
    from tasks.ranking import RecommenderArrays

    quality = rand.quality.copy()
    quality[[4, 50, 77]] = np.nan
    fields = {
        f: getattr(rand, f)
        for f in (
            "item_ids", "user_ids", "embeddings", "neighbor_idx", "cf", "profiles", "recency",
            "genre_names", "genre_matrix", "provider_names", "provider_matrix", "seen",
            "seed_items", "exclude", "cohorts", "popularity",
        )
    }  # fmt: skip
    return RecommenderArrays(**fields, quality=quality, content_rank=8, mmr_rank=12)


def test_cf_lists_are_the_full_sort_of_the_cf_scores(rand):
    arrays = with_missing_metadata(rand)
    assert (~arrays.has_metadata).sum() == 3
    users = np.arange(arrays.n_users)
    got = cf_lists(arrays, users, K)
    scores = arrays.cf.scores(users)
    usable = (
        (arrays.exclude.toarray() == 0)
        & arrays.item_has_factors[None, :]
        & arrays.has_metadata[None, :]
    )
    want = full_sort(scores, usable, K)
    known = arrays.user_has_factors
    np.testing.assert_array_equal(got[known], want[known])
    # users without CF evidence get the popularity list
    np.testing.assert_array_equal(got[~known], popularity_lists(arrays, users[~known], K))


def test_cf_lists_of_another_model_and_with_ties(rand, make_cf):
    n_u, n_i = rand.n_users, rand.n_items
    rng = np.random.default_rng(1)
    uf = rng.integers(0, 2, (n_u, 2)).astype(np.float32)
    itf = rng.integers(0, 3, (n_i, 2)).astype(np.float32)  # integer scores: many ties
    cf = make_cf(rand.user_ids, rand.item_ids, uf, itf)
    users = np.arange(n_u)
    got = cf_lists(rand, users, K, cf=cf)
    usable = (rand.exclude.toarray() == 0) & rand.has_metadata[None, :]
    np.testing.assert_array_equal(got, full_sort(cf.scores(users), usable, K))


def test_popularity_order_counts_training_ratings(make_tiny):
    titles = np.array([f"Movie {10 * (j + 1)}" for j in range(12)], dtype=object)
    titles[4] = None  # no metadata: never listed
    arrays = make_tiny(titles=titles)
    # rating counts: item 0, 1, 2, 4, 5, 8, 9, 10 once each; the rest zero
    assert popularity_order(arrays).tolist() == [0, 1, 2, 5, 8, 9, 10, 3, 6, 7, 11]


def test_popularity_lists_skip_excluded_items_and_serve_heavy_users(make_tiny):
    seen = np.zeros((5, 12), np.float32)
    seen[0, [0, 1, 2]] = 4.0
    seen[2, :5] = 3.0  # user 2 saw every item of the order
    dropped = np.zeros((5, 12), np.float32)
    dropped[0, 3] = dropped[1, [0, 1]] = 1.0  # dropped history: excluded, not seen
    arrays = make_tiny(seen=sp.csr_matrix(seen), exclude=sp.csr_matrix(np.maximum(seen, dropped)))
    order = np.array([0, 1, 2, 3, 4])
    got = popularity_lists(arrays, np.array([0, 1, 2]), 3, order=order)
    assert got.tolist() == [[4, -1, -1], [2, 3, 4], [-1, -1, -1]]


def test_popularity_lists_are_the_full_sort_of_the_rating_counts(rand):
    users = np.arange(rand.n_users)
    got = popularity_lists(rand, users, K)
    counts = np.bincount(rand.seen.indices, minlength=rand.n_items).astype(np.float64)
    usable = (rand.exclude.toarray() == 0) & rand.has_metadata[None, :]
    want = full_sort(np.tile(counts, (len(users), 1)), usable, K)
    np.testing.assert_array_equal(got, want)


def test_content_lists_are_the_full_sort_of_the_cosines(rand):
    arrays = with_missing_metadata(rand)
    users = np.arange(arrays.n_users)
    got = content_lists(arrays, users, K)
    cos = arrays.profiles.astype(np.float64) @ arrays.embeddings.T.astype(np.float64)
    usable = (arrays.exclude.toarray() == 0) & arrays.has_metadata[None, :]
    want = full_sort(cos, usable, K)
    has_profile = np.abs(arrays.profiles).sum(axis=1) > 0
    np.testing.assert_array_equal(got[has_profile], want[has_profile])
    assert (~has_profile).any()  # users without a profile get the popularity list
    np.testing.assert_array_equal(
        got[~has_profile], popularity_lists(arrays, users[~has_profile], K)
    )
