"""Shared by the tasks.content tests: a tiny catalogue with known answers (sequels, a franchise,
a movie with no text at all), its training ratings, and ml-latest-small's files as canonical
tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.profile import ContentSection

EXPECTATIONS = Path(__file__).resolve().parents[3] / "expectations"


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
