"""Tests for tasks/ranking/_arrays.py: what a ranking reads - shape checks, the safety rules
(metadata, out-of-range ids), CF evidence from the model, ``exclude`` = training ratings +
dropped history, swapping the CF model, a brand-new user, the principal basis, seed items, and
building from parts / from a real run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.columns import Col
from tasks.errors import UsageError
from tasks.ranking import (
    RecommenderArrays,
    best_recent_items,
    cf_folder,
    principal_basis,
    rank_batch,
)

FIELDS = (
    "item_ids", "user_ids", "embeddings", "neighbor_idx", "cf", "profiles", "quality", "recency",
    "genre_names", "genre_matrix", "provider_names", "provider_matrix", "seen", "seed_items",
    "cohorts", "titles", "popularity",
)  # fmt: skip


def fields_of(arrays: RecommenderArrays, **changes) -> dict:
    return {**{f: getattr(arrays, f) for f in FIELDS}, **changes}


def test_shapes_that_disagree_with_the_index_are_named(tiny):
    with pytest.raises(ValueError, match="quality"):
        RecommenderArrays(**fields_of(tiny, quality=np.zeros(11, np.float32)))
    with pytest.raises(ValueError, match="seen columns"):
        RecommenderArrays(**fields_of(tiny, seen=sp.csr_matrix((5, 13), dtype=np.float32)))
    with pytest.raises(ValueError, match="same dimension"):
        RecommenderArrays(**fields_of(tiny, profiles=np.zeros((5, 3), np.float32)))
    with pytest.raises(ValueError, match="exclude has shape"):
        RecommenderArrays(**fields_of(tiny), exclude=sp.csr_matrix((4, 12), dtype=np.float32))


def test_a_cf_model_over_another_index_is_refused(tiny, make_cf):
    other = make_cf(tiny.user_ids, tiny.item_ids + 1, np.ones((5, 2)), np.ones((12, 2)))
    with pytest.raises(ValueError, match="different user/item indexes"):
        RecommenderArrays(**fields_of(tiny, cf=other))
    with pytest.raises(ValueError, match="different user/item indexes"):
        tiny.with_cf(other)


def test_out_of_range_neighbours_and_seed_items_become_minus_one(tiny):
    nb = tiny.neighbor_idx.copy()
    nb[0, 0], nb[1, 1] = 12, -7
    seeds = tiny.seed_items.copy()
    seeds[0, 0] = 99
    arrays = RecommenderArrays(**fields_of(tiny, neighbor_idx=nb, seed_items=seeds))
    assert arrays.neighbor_idx[0, 0] == -1 and arrays.neighbor_idx[1, 1] == -1
    assert arrays.seed_items[0, 0] == -1
    np.testing.assert_array_equal(arrays.neighbor_idx[2:], tiny.neighbor_idx[2:])


def test_items_without_metadata_are_derived_and_never_widened(tiny, make_policy):
    emb = tiny.embeddings.copy()
    emb[0] = np.nan
    emb[1] = 0.0
    quality, recency = tiny.quality.copy(), tiny.recency.copy()
    quality[2], recency[3] = np.nan, np.inf
    titles = tiny.titles.copy()
    titles[4], titles[5] = "", np.nan
    given = np.ones(12, bool)
    given[6] = False
    arrays = RecommenderArrays(
        **fields_of(tiny, embeddings=emb, quality=quality, recency=recency, titles=titles),
        has_metadata=given,
    )
    assert np.flatnonzero(~arrays.has_metadata).tolist() == [0, 1, 2, 3, 4, 5, 6]
    served = rank_batch(arrays, np.arange(5), make_policy(), k=5)["item_idx"]
    assert not np.isin(served, np.arange(7)).any()


def test_cf_evidence_comes_from_the_model_and_exclude_defaults_to_seen(tiny):
    np.testing.assert_array_equal(tiny.user_has_factors, [True, True, True, True, False])
    assert tiny.item_has_factors.all()
    assert tiny.exclude is tiny.seen
    bare = RecommenderArrays(**fields_of(tiny, cf=None))
    assert not bare.user_has_factors.any() and not bare.item_has_factors.any()


def test_with_cf_swaps_the_model_and_copies_nothing(tiny, make_cf):
    other = make_cf(tiny.user_ids, tiny.item_ids, np.ones((5, 2)), np.ones((12, 2)),
                    [False, True, True, True, True])  # fmt: skip
    swapped = tiny.with_cf(other)
    assert swapped.cf is other and tiny.cf is not other
    assert swapped.embeddings is tiny.embeddings and swapped.seen is tiny.seen
    np.testing.assert_array_equal(swapped.user_has_factors, [False, True, True, True, True])


def test_a_brand_new_user_has_no_history_no_evidence_and_gets_popular_items(tiny, make_policy):
    new = tiny.with_new_user(999)
    assert new.n_users == 1 and new.user_ids.tolist() == [999]
    assert not new.user_has_factors.any() and not new.profiles.any() and new.seen.nnz == 0
    assert new.cohorts.tolist() == ["cold"] and (new.seed_items == -1).all()
    assert new.embeddings is tiny.embeddings
    by_popularity = make_policy(lambda_div=0.0, w_q=0.0, w_r=0.0, w_p=0.0)
    out = rank_batch(new, np.array([0]), by_popularity, alphas=np.zeros(1, np.float32))
    assert out["item_idx"][0].tolist() == [0, 1, 2, 3, 4]  # popularity falls with the index
    assert np.isnan(out["collab"][0]).all() and not out["content"][0].any()


def test_user_index_names_an_unknown_id(tiny):
    assert tiny.user_index([5, 1]).tolist() == [4, 0]
    with pytest.raises(UsageError, match=r"unknown user id \[6\]"):
        tiny.user_index([1, 6])


def test_principal_basis_is_the_best_rank_r_subspace():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((200, 10)).astype(np.float32) * np.linspace(3, 0.1, 10)
    np.testing.assert_array_equal(principal_basis(e, 10), np.eye(10, dtype=np.float32))
    w = principal_basis(e, 4)
    assert w.shape == (10, 4)
    np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)  # orthonormal
    # the projection error equals the truncated SVD's: the best rank-4 approximation
    err = np.linalg.norm(e - e @ w @ w.T)
    s = np.linalg.svd(e.astype(np.float64), compute_uv=False)
    assert err == pytest.approx(np.sqrt((s[4:] ** 2).sum()), rel=1e-4)
    # deterministic signs: each column's largest entry is positive
    assert (w[np.abs(w).argmax(axis=0), np.arange(4)] > 0).all()
    np.testing.assert_array_equal(principal_basis(e, 4), w)


def test_reduced_content_is_exact_when_the_rank_covers_the_dimension(tiny, rand):
    assert tiny.content_rank == 4 and tiny.mmr_rank == 4  # capped at d = 4
    np.testing.assert_allclose(
        tiny.profiles_reduced @ tiny.emb_reduced.T, tiny.profiles @ tiny.embeddings.T, atol=1e-6
    )
    assert rand.emb_reduced.shape == (300, 8) and rand.emb_mmr.shape == (300, 12)


def test_best_recent_items_rating_then_newest_then_item():
    seeds = best_recent_items(
        np.array([0, 0, 0, 0, 1, 1, 2]),
        np.array([3, 4, 5, 6, 5, 6, 1]),
        np.array([4.0, 5.0, 4.0, 4.0, 5.0, 1.0, 3.5]),
        np.array([10, 5, 30, 30, 10, 20, 9]),
        n_users=3,
        m=3,
        relevance_threshold=4.0,
    )
    # user 0: item 4 (5 stars), then items 5 and 6 (4 stars, newest, tie -> smaller item);
    # user 1 liked only item 5; user 2 liked nothing: no seed item
    assert seeds.tolist() == [[4, 5, 6], [5, -1, -1], [-1, -1, -1]]


def content_of(arrays: RecommenderArrays):
    return SimpleNamespace(
        item_ids=arrays.item_ids,
        embeddings=arrays.embeddings,
        neighbor_idx=arrays.neighbor_idx,
        numeric=pd.DataFrame({"quality": arrays.quality, "recency": arrays.recency}),
        genre_names=list(arrays.genre_names),
        genre_matrix=arrays.genre_matrix,
        provider_names=list(arrays.provider_names),
        provider_matrix=arrays.provider_matrix,
    )


def test_from_parts_builds_profiles_seeds_cohorts_and_the_exclusions(tiny, make_cf, make_policy):
    cf = make_cf(np.array([1, 2], np.int32), tiny.item_ids, np.ones((2, 3)), np.ones((12, 3)))
    train = pd.DataFrame(
        {
            Col.USER: [1, 1, 1, 2, 2],
            Col.ITEM: [10, 20, 30, 50, 60],
            Col.RATING: [0.5, 1.5, 2.0, 4.5, 4.0],
            Col.TIMESTAMP: [1, 2, 3, 4, 5],
        }
    )
    cohorts = pd.DataFrame(
        {Col.USER: [1, 2], Col.COHORT: ["light", "heavy"], Col.COHORT_FIT: ["cold", "medium"]}
    )
    dropped = pd.DataFrame({Col.USER: [2, 2], Col.ITEM: [70, 80]})
    movies = pd.DataFrame(
        {
            Col.ITEM: tiny.item_ids,
            Col.TITLE: [f"T{i}" for i in range(12)],
            Col.YEAR: pd.array([1990 + i for i in range(12)], dtype="Int32"),
        }
    )
    arrays = RecommenderArrays.from_parts(
        content_of(tiny), cf, train, cohorts=cohorts, cohort_column=Col.COHORT_FIT,
        movies=movies, dropped_history=dropped, m_seed_items=3,
    )  # fmt: skip
    assert arrays.user_ids.tolist() == [1, 2]  # from the CF model
    # user 1 rated only low: no taste, no seed item; user 2's seeds: 5 stars first
    assert not arrays.profiles[0].any() and (arrays.seed_items[0] == -1).all()
    assert arrays.profiles[1].any() and arrays.seed_items[1].tolist() == [4, 5, -1]
    assert arrays.cohorts.tolist() == ["cold", "medium"]
    assert arrays.seen.nnz == 5 and arrays.seen[1, 4] == 4.5
    excluded = {tuple(p) for p in np.argwhere(arrays.exclude.toarray() > 0).tolist()}
    assert excluded == {(0, 0), (0, 1), (0, 2), (1, 4), (1, 5), (1, 6), (1, 7)}
    assert arrays.popularity.max() == pytest.approx(1.0)
    assert arrays.titles[3] == "T3" and arrays.years[3] == 1993
    out = rank_batch(arrays, np.array([0, 1]), make_policy())
    assert not {(u, int(i)) for u in (0, 1) for i in out["item_idx"][u]} & excluded
    assert not out["content"][0][out["item_idx"][0] >= 0].any()  # no taste: z(content) = 0


def test_from_parts_refuses_an_id_outside_the_index(tiny, make_cf):
    train = pd.DataFrame({Col.USER: [1], Col.ITEM: [15], Col.RATING: [4.0], Col.TIMESTAMP: [1]})
    with pytest.raises(ValueError, match="train movie_id"):
        RecommenderArrays.from_parts(content_of(tiny), tiny.cf, train)


def test_from_run_loads_the_policy_model_and_the_validation_view(ml_ranking_run):
    run = ml_ranking_run["run_dir"]
    assert cf_folder("policy") == "models/cf/policy"
    test_view = RecommenderArrays.from_run(run)
    cohorts = pd.read_parquet(run / "data" / "cohorts.parquet").sort_values(Col.USER)
    train = pd.read_parquet(run / "data" / "train.parquet")
    assert test_view.user_ids.tolist() == cohorts[Col.USER].tolist()
    assert test_view.seen.nnz == len(train)
    assert test_view.cohorts.tolist() == cohorts[Col.COHORT].tolist()
    dropped = pd.read_parquet(run / "data" / "dropped_history.parquet")
    assert test_view.exclude.nnz == test_view.seen.nnz + len(dropped)
    val_view = RecommenderArrays.from_run(run, split="validation")
    assert val_view.seen.nnz == len(pd.read_parquet(run / "data" / "train_fit.parquet"))
    assert val_view.cohorts.tolist() == cohorts[Col.COHORT_FIT].tolist()
    with pytest.raises(UsageError, match="no collaborative model for 'nope'"):
        RecommenderArrays.from_run(run, role="nope")
