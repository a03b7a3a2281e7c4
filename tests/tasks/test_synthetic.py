"""Tests for tasks/synthetic.py: schema, determinism, the structure a recommender should find,
and the ml-latest-small file format."""

from __future__ import annotations

import calendar
import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.errors import UsageError
from tasks.profile import SyntheticSection, load_profile
from tasks.synthetic import (
    PROVIDERS,
    SyntheticData,
    generate_synthetic,
    true_genre_preferences,
    write_movielens_format,
)

SMALL = SyntheticSection(n_users=500, n_movies=400, n_ratings=20_000)
SEED = 11


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return generate_synthetic(SMALL, SEED)


@pytest.fixture(scope="module")
def ci_cfg() -> SyntheticSection:
    return load_profile("ci", environ={}).synthetic  # 2,000 users, 1,500 movies, 120k ratings


@pytest.fixture(scope="module")
def ci_data(ci_cfg: SyntheticSection) -> SyntheticData:
    return generate_synthetic(ci_cfg, SEED)


def _with_genres(data: SyntheticData) -> pd.DataFrame:
    return data.ratings.merge(data.movies[[Col.ITEM, Col.GENRES]], on=Col.ITEM, how="left")


# ---------------------------------------------------------------- schema


def test_ratings_schema_counts_and_ranges(small: SyntheticData):
    r = small.ratings
    assert list(r.columns) == [Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    assert [str(t) for t in r.dtypes] == ["int32", "int32", "float32", "int64"]
    assert len(r) == SMALL.n_ratings
    assert not r.duplicated([Col.USER, Col.ITEM]).any()
    assert sorted(r[Col.USER].unique()) == list(range(1, SMALL.n_users + 1))
    assert r.groupby(Col.USER).size().min() >= 20  # MovieLens's floor, since 40 per user allows it
    assert set(r[Col.RATING].unique()) <= {x / 2 for x in range(1, 11)}
    assert r[Col.RATING].nunique() == 10  # every half star occurs
    assert set(r[Col.ITEM]) <= set(small.movies[Col.ITEM])
    lo = calendar.timegm((SMALL.start_year, 1, 1, 0, 0, 0))
    hi = calendar.timegm((SMALL.end_year + 1, 1, 1, 0, 0, 0))
    assert r[Col.TIMESTAMP].between(lo, hi - 1).all()
    keys = r[Col.USER].to_numpy(np.int64) * 10**7 + r[Col.ITEM].to_numpy()
    assert (np.diff(keys) > 0).all()  # sorted by user, then movie (like MovieLens)
    assert 3.2 < r[Col.RATING].mean() < 3.8


def test_movies_schema_titles_genres_providers_tags(small: SyntheticData):
    m = small.movies
    assert list(m.columns) == [Col.ITEM, Col.TITLE, Col.YEAR, Col.GENRES, Col.TAGS, Col.PROVIDERS]
    assert len(m) == SMALL.n_movies and m[Col.ITEM].is_unique
    assert str(m[Col.ITEM].dtype) == "int32" and str(m[Col.YEAR].dtype) == "Int32"
    dated = m[m[Col.YEAR].notna()]
    assert len(dated) >= 0.97 * len(m)
    assert all(
        t.endswith(f" ({y})") for t, y in zip(dated[Col.TITLE], dated[Col.YEAR], strict=True)
    )
    assert m[Col.YEAR].min() >= 1900 and m[Col.YEAR].max() <= SMALL.end_year
    genres = m[Col.GENRES].tolist()
    assert all(set(g) <= set(MOVIELENS_GENRES) and list(g) == sorted(g) for g in genres)
    assert np.mean([len(g) == 0 for g in genres]) < 0.05
    assert 1.6 < np.mean([len(g) for g in genres]) < 3.0
    with_providers = m[Col.PROVIDERS].map(len) > 0
    assert with_providers.sum() == round(SMALL.provider_share * SMALL.n_movies)
    assert set(small.providers["provider"]) <= set(PROVIDERS)
    pairs = m[[Col.ITEM, Col.PROVIDERS]].explode(Col.PROVIDERS).dropna()
    assert len(pairs) == len(small.providers)
    assert (m[Col.TAGS] != "").sum() == round(SMALL.tag_share * SMALL.n_movies)
    assert list(small.tags.columns) == [Col.USER, Col.ITEM, "tag", Col.TIMESTAMP]
    rated = set(zip(small.ratings[Col.USER], small.ratings[Col.ITEM], strict=True))
    assert all(
        pair in rated for pair in zip(small.tags[Col.USER], small.tags[Col.ITEM], strict=True)
    )


def test_impossible_configurations_are_refused():
    with pytest.raises(UsageError, match="n_ratings"):
        generate_synthetic(SyntheticSection(n_users=200, n_movies=50, n_ratings=150), 0)
    with pytest.raises(UsageError, match="at most once"):
        generate_synthetic(SyntheticSection(n_users=10, n_movies=20, n_ratings=201), 0)


def test_dense_tiny_catalog_is_filled_exactly():
    cfg = SyntheticSection(n_users=10, n_movies=20, n_ratings=190)  # 95% of all pairs
    r = generate_synthetic(cfg, 3).ratings
    assert len(r) == 190 and not r.duplicated([Col.USER, Col.ITEM]).any()
    assert r[Col.USER].nunique() == 10


# ---------------------------------------------------------------- determinism


def test_same_seed_same_frames_other_seed_other_data(small: SyntheticData):
    again = generate_synthetic(SMALL, SEED)
    for name in ("ratings", "movies", "tags", "providers"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    other = generate_synthetic(SMALL, SEED + 1)
    assert not other.ratings[[Col.ITEM, Col.RATING]].equals(small.ratings[[Col.ITEM, Col.RATING]])
    assert other.movies[Col.TITLE].tolist() != small.movies[Col.TITLE].tolist()


# ---------------------------------------------------------------- structure


def test_users_rate_their_true_preferred_genre_more_often_and_higher(ci_cfg, ci_data):
    top = true_genre_preferences(ci_cfg, SEED).idxmax(axis=1)
    r = _with_genres(ci_data)
    r["in_top"] = [g in gs for g, gs in zip(r[Col.USER].map(top), r[Col.GENRES], strict=True)]
    # more often: share of a user's ratings in their genre vs that genre's share of all ratings
    base = {g: np.mean([g in gs for gs in r[Col.GENRES]]) for g in MOVIELENS_GENRES}
    lift = r.groupby(Col.USER)["in_top"].mean() / top.map(base)
    assert lift.mean() > 1.5
    # higher: per user, mean rating inside minus outside the preferred genre
    per_user = r.groupby([Col.USER, "in_top"])[Col.RATING].mean().unstack().dropna()
    gap = per_user[True] - per_user[False]
    assert gap.mean() > 0.4 and (gap > 0).mean() > 0.8


def test_users_rate_their_most_overrepresented_genre_higher(ci_data):
    """Without the generator's truth: the genre a user rates most often relative to everyone
    (chosen from counts only) gets their higher ratings."""
    r = _with_genres(ci_data)
    exploded = r[[Col.USER, Col.GENRES]].explode(Col.GENRES).dropna()
    counts = exploded.groupby([Col.USER, Col.GENRES]).size().unstack(fill_value=0)
    share = counts.div(r.groupby(Col.USER).size(), axis=0)
    base = exploded[Col.GENRES].value_counts() / len(r)
    favourite = (share / base[share.columns]).where(counts >= 3).idxmax(axis=1)
    r["in_fav"] = [g in gs for g, gs in zip(r[Col.USER].map(favourite), r[Col.GENRES], strict=True)]
    per_user = r.groupby([Col.USER, "in_fav"])[Col.RATING].mean().unstack().dropna()
    gap = per_user[True] - per_user[False]
    assert gap.mean() > 0.12 and (gap > 0).mean() > 0.6


def test_activity_and_popularity_are_heavy_tailed(ci_data):
    per_movie = ci_data.ratings[Col.ITEM].value_counts()  # sorted, most rated first
    n_movies = len(ci_data.movies)
    assert per_movie.iloc[: n_movies // 10].sum() > 0.4 * len(ci_data.ratings)
    assert per_movie.iloc[0] > 20 * per_movie.median()
    per_user = ci_data.ratings[Col.USER].value_counts()
    assert per_user.max() > 8 * per_user.median()
    assert per_user.iloc[: len(per_user) // 10].sum() > 0.25 * len(ci_data.ratings)


def test_taste_drifts_and_ratings_come_in_sessions(ci_cfg, ci_data):
    top = true_genre_preferences(ci_cfg, SEED).idxmax(axis=1)
    r = _with_genres(ci_data).sort_values([Col.USER, Col.TIMESTAMP], kind="stable")
    r["in_top"] = [g in gs for g, gs in zip(r[Col.USER].map(top), r[Col.GENRES], strict=True)]
    position = r.groupby(Col.USER).cumcount() / r.groupby(Col.USER)[Col.ITEM].transform("size")
    early, late = r.loc[position < 0.5, "in_top"].mean(), r.loc[position >= 0.5, "in_top"].mean()
    assert early > late + 0.02  # later ratings drift toward the second taste
    gaps = r.groupby(Col.USER)[Col.TIMESTAMP].diff().dropna()
    assert (gaps < 600).mean() > 0.5  # most ratings follow the previous one within minutes
    assert (gaps > 86_400).mean() > 0.01  # and sessions are days to months apart
    span_days = r.groupby(Col.USER)[Col.TIMESTAMP].agg(lambda s: s.max() - s.min()) / 86_400
    assert span_days.median() > 7 and span_days.quantile(0.9) > 180


def test_ratings_before_half_stars_existed_are_whole(ci_data):
    r = ci_data.ratings
    early = r[r[Col.TIMESTAMP] < calendar.timegm((2003, 2, 18, 0, 0, 0))]
    assert len(early) > 1000 and (early[Col.RATING] % 1 == 0).all()
    assert (r[Col.RATING] % 1 != 0).mean() > 0.15


# ---------------------------------------------------------------- ml-latest-small files


def _header(path: Path) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.readline()


def test_written_files_parse_back_to_the_same_tables(small: SyntheticData, tmp_path: Path):
    paths = write_movielens_format(small, tmp_path / "ml")
    assert set(paths) == {"ratings", "movies", "tags", "links", "providers"}
    assert _header(paths["ratings"]) == "userId,movieId,rating,timestamp\n"
    assert _header(paths["movies"]) == "movieId,title,genres\n"
    assert _header(paths["tags"]) == "userId,movieId,tag,timestamp\n"
    assert _header(paths["links"]) == "movieId,imdbId,tmdbId\n"
    assert _header(paths["providers"]) == "movieId,provider\n"
    assert not list((tmp_path / "ml").glob(".*tmp*"))

    ratings = pd.read_csv(paths["ratings"])
    assert len(ratings) == len(small.ratings)
    np.testing.assert_array_equal(
        ratings["rating"].to_numpy(), small.ratings[Col.RATING].to_numpy()
    )
    np.testing.assert_array_equal(ratings["timestamp"].to_numpy(), small.ratings[Col.TIMESTAMP])
    lines = paths["ratings"].read_text().splitlines()[1:50]
    assert all(line.split(",")[2] in {f"{x / 2:.1f}" for x in range(1, 11)} for line in lines)

    movies = pd.read_csv(paths["movies"], dtype={"title": str})
    assert movies["title"].tolist() == small.movies[Col.TITLE].tolist()
    genres = movies["genres"].str.split("|").map(lambda g: [] if g == ["(no genres listed)"] else g)
    assert genres.tolist() == small.movies[Col.GENRES].map(list).tolist()
    tags = pd.read_csv(paths["tags"], dtype={"tag": str})
    assert tags["tag"].tolist() == small.tags["tag"].tolist()
    links = pd.read_csv(paths["links"], dtype={"imdbId": str})
    assert len(links) == len(movies) and links["imdbId"].str.fullmatch(r"\d{7}").all()
    assert links["tmdbId"].dropna().is_unique
    providers = pd.read_csv(paths["providers"])
    assert len(providers) == len(small.providers)


def test_writing_is_byte_identical_for_the_same_seed(small: SyntheticData, tmp_path: Path):
    first = write_movielens_format(small, tmp_path / "a")
    second = write_movielens_format(generate_synthetic(SMALL, SEED), tmp_path / "b")
    for name, path in first.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == hashlib.sha256(second[name].read_bytes()).hexdigest(), name


def test_quoting_follows_movielens(tmp_path: Path):
    """Known answer: the writer quotes exactly like ml-latest-small (see its movies.csv lines
    ``11,"American President, The (1995)",Comedy|Drama|Romance`` and ``567,4552,\"\"\"artsy\"\"\",...``)."""
    data = SyntheticData(
        ratings=pd.DataFrame(
            {
                Col.USER: np.array([1, 1], np.int32),
                Col.ITEM: np.array([5, 9], np.int32),
                Col.RATING: np.array([4.0, 0.5], np.float32),
                Col.TIMESTAMP: np.array([964982703, 964982704], np.int64),
            }
        ),
        movies=pd.DataFrame(
            {
                Col.ITEM: np.array([5, 9], np.int32),
                Col.TITLE: ["Harbor, The (1995)", 'Café "Noir" (2001)'],
                Col.YEAR: pd.array([1995, 2001], dtype="Int32"),
                Col.GENRES: [["Comedy", "Drama"], []],
                Col.TAGS: ["", ""],
                Col.PROVIDERS: [[], ["Disney+"]],
            }
        ),
        tags=pd.DataFrame(
            {Col.USER: [1], Col.ITEM: [5], "tag": ['"artsy", slow'], Col.TIMESTAMP: [964982705]}
        ),
        providers=pd.DataFrame({Col.ITEM: [9], "provider": ["Disney+"]}),
    )
    paths = write_movielens_format(data, tmp_path)
    assert paths["movies"].read_text(encoding="utf-8").splitlines() == [
        "movieId,title,genres",
        '5,"Harbor, The (1995)",Comedy|Drama',
        '9,"Café ""Noir"" (2001)",(no genres listed)',
    ]
    assert paths["ratings"].read_text().splitlines()[1:] == [
        "1,5,4.0,964982703",
        "1,9,0.5,964982704",
    ]
    assert paths["tags"].read_text().splitlines()[1] == '1,5,"""artsy"", slow",964982705'
    assert paths["providers"].read_text().splitlines() == ["movieId,provider", "9,Disney+"]


def test_headers_and_dialect_match_real_ml_latest_small(ml_small_dir: Path, small, tmp_path):
    paths = write_movielens_format(small, tmp_path)
    for name in ("ratings", "movies", "tags", "links"):
        real = ml_small_dir / f"{name}.csv"
        assert _header(paths[name]) == _header(real), name
        with open(real, encoding="utf-8", newline="") as fh:
            real_row = next(
                r for r in csv.reader(fh) if r and r[0] != "movieId" and r[0] != "userId"
            )
        with open(paths[name], encoding="utf-8", newline="") as fh:
            rows = csv.reader(fh)
            next(rows)
            ours = next(rows)
        assert len(ours) == len(real_row), name
    real_rating = (ml_small_dir / "ratings.csv").read_text().splitlines()[1].split(",")[2]
    ours_rating = paths["ratings"].read_text().splitlines()[1].split(",")[2]
    assert len(real_rating) == len(ours_rating) == 3 and "." in ours_rating  # "4.0", "3.5"
    assert b"\r\n" not in paths["movies"].read_bytes()
