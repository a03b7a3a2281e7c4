"""The synthetic data written as an ml-latest-small folder (part of :mod:`tasks.synthetic`), so
the same MovieLens reader ingests real and synthetic data.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.columns import Col
from tasks.io import atomic_path
from tasks.synthetic._generate import SyntheticData
from tasks.synthetic._sampling import _rng

__all__ = ["write_movielens_format"]


_RATING_TEXT = pa.array([f"{x / 2:.1f}" for x in range(11)], type=pa.string())
_CSV_CHUNK = 4_000_000


def _write_ratings_csv(ratings: pd.DataFrame, path: Path) -> None:
    """ratings.csv: ``userId,movieId,rating,timestamp`` with ratings as "4.0", "3.5" (no quotes).

    Written with pyarrow in chunks; the rating column goes through an 11-entry text table.
    """
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    users = ratings[Col.USER].to_numpy()
    items = ratings[Col.ITEM].to_numpy()
    halves = np.rint(ratings[Col.RATING].to_numpy() * 2).astype(np.int8)
    stamps = ratings[Col.TIMESTAMP].to_numpy()
    with open(path, "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        for lo in range(0, len(ratings), _CSV_CHUNK):
            hi = min(lo + _CSV_CHUNK, len(ratings))
            table = pa.table(
                {
                    "userId": pa.array(users[lo:hi]),
                    "movieId": pa.array(items[lo:hi]),
                    "rating": _RATING_TEXT.take(pa.array(halves[lo:hi])),
                    "timestamp": pa.array(stamps[lo:hi]),
                }
            )
            pacsv.write_csv(table, fh, options)


def _write_frame_csv(frame: pd.DataFrame, path: Path) -> None:
    """A small table the MovieLens way: header unquoted, fields quoted only when needed."""
    frame.to_csv(
        path, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n", encoding="utf-8"
    )


def _links(movie_ids: np.ndarray) -> pd.DataFrame:
    """links.csv with fake but well-formed ids: imdbId 7 digits, tmdbId an int (a few missing)."""
    rng = _rng(int(movie_ids.size), 5)  # derived from the catalog, so the same data -> same links
    imdb = rng.choice(9_999_999, size=movie_ids.size, replace=False) + 1
    tmdb = pd.array(rng.choice(1_500_000, size=movie_ids.size, replace=False) + 1, dtype="Int64")
    tmdb[rng.random(movie_ids.size) < 0.001] = pd.NA
    return pd.DataFrame(
        {"movieId": movie_ids, "imdbId": [f"{i:07d}" for i in imdb], "tmdbId": tmdb}
    )


def write_movielens_format(data: SyntheticData, out_dir: Path) -> dict[str, Path]:
    """Write ``data`` as an ml-latest-small folder (+ ``providers.csv``); each file atomically.

    Returns ``{"ratings": path, "movies": ..., "tags": ..., "links": ..., "providers": ...}``.
    Formats follow MovieLens: UTF-8, a single header row, ``|``-joined genres (``(no genres
    listed)`` when none), fields with commas or quotes double-quoted, ratings like ``3.5``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out_dir / f"{name}.csv"
        for name in ("ratings", "movies", "tags", "links", "providers")
    }

    with atomic_path(paths["ratings"]) as tmp:
        _write_ratings_csv(data.ratings, tmp)

    movies = data.movies
    genres = ["|".join(g) if len(g) else "(no genres listed)" for g in movies[Col.GENRES]]
    with atomic_path(paths["movies"]) as tmp:
        _write_frame_csv(
            pd.DataFrame(
                {"movieId": movies[Col.ITEM], "title": movies[Col.TITLE], "genres": genres}
            ),
            tmp,
        )
    with atomic_path(paths["tags"]) as tmp:
        _write_frame_csv(
            pd.DataFrame(
                {
                    "userId": data.tags[Col.USER],
                    "movieId": data.tags[Col.ITEM],
                    "tag": data.tags["tag"],
                    "timestamp": data.tags[Col.TIMESTAMP],
                }
            ),
            tmp,
        )
    with atomic_path(paths["links"]) as tmp:
        _write_frame_csv(_links(movies[Col.ITEM].to_numpy()), tmp)
    with atomic_path(paths["providers"]) as tmp:
        _write_frame_csv(
            pd.DataFrame(
                {"movieId": data.providers[Col.ITEM], "provider": data.providers["provider"]}
            ),
            tmp,
        )
    return paths
