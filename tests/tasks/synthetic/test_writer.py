"""Tests for tasks/synthetic/_writer.py: the ml-latest-small file format."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.synthetic import SyntheticData, generate_synthetic, write_movielens_format
from tests.tasks.synthetic.datasets import SEED, SMALL


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
