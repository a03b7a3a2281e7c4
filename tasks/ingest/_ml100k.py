"""The ``ml-100k`` layout: ``u.data`` (tab-separated), ``u.item`` (``|``-separated, latin-1, 19
genre flags named in ``u.genre``) (part of :mod:`tasks.ingest`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.budget import report_progress
from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.ingest._layouts import MovieLensData
from tasks.ingest._readers import (
    _decode_text,
    _int_field,
    _read_delimited,
    _read_header,
    _read_providers,
    _require_nonempty,
    _to_pandas,
)
from tasks.ingest._tables import RATING_COLUMNS, _assemble_movies, _split_genres, canonical_ratings

_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip


def _read_ml100k(data_dir: Path, files: dict[str, Path]) -> MovieLensData:
    path = files["ratings"]
    _require_nonempty(path, "tab-separated rows: user id, item id, rating, timestamp")
    first = _read_header(path, "\t")[1]
    if len(first.split("\t")) != 4:
        raise InputDataError(
            f"{path}: line 1 {first[:80]!r} is not 4 tab-separated fields (user id, item id, rating, "
            "timestamp), so column 'user id' cannot be read. Fix: use the original ml-100k u.data."
        )
    table = _read_delimited(
        path,
        types={"f0": pa.int32(), "f1": pa.int32(), "f2": pa.float32(), "f3": pa.int64()},
        file_columns=("user id", "item id", "rating", "timestamp"),
        names=["f0", "f1", "f2", "f3"],
        header=False,
        delimiter="\t",
        columns_text="user id, item id, rating, timestamp",
    )
    ratings = canonical_ratings(
        _to_pandas(table, dict(zip(("f0", "f1", "f2", "f3"), RATING_COLUMNS, strict=True)))
    )
    report_progress(0.2, f"read {len(ratings):,} ratings from {path.name}")

    genre_names = list(_ML100K_GENRES)
    if "genres" in files and files["genres"].stat().st_size:
        gtext = _decode_text(
            files["genres"], files["genres"].read_bytes(), ("genre", "index"), "|", legacy=True
        )
        pairs = [line.rsplit("|", 1) for line in gtext.splitlines() if line.strip()]
        genre_names = [
            name for name, _ in sorted(((n, int(i)) for n, i in pairs), key=lambda p: p[1])
        ]
    mpath = files["movies"]
    _require_nonempty(
        mpath,
        "'|'-separated rows: movie id | title | release date | video release date | URL | 19 genre flags",
    )
    columns = (
        "movie id",
        "movie title",
        "release date",
        "video release date",
        "IMDb URL",
        *genre_names,
    )
    text = _decode_text(mpath, mpath.read_bytes(), columns, "|", legacy=True)
    ids, titles, genres, dates = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(genre_names):
            raise InputDataError(
                f"{mpath}: line {number} has {len(parts)} '|'-separated fields, expected "
                f"{5 + len(genre_names)} (movie id | title | release date | video release date | URL | "
                f"{len(genre_names)} genre flags): {line[:80]!r}. Fix: re-extract the original u.item."
            )
        ids.append(_int_field(mpath, parts[0], "movie id", number))
        titles.append(parts[1])
        dates.append(parts[2])
        flags = parts[5:]
        genres.append(
            "|".join(g for g, f in zip(genre_names, flags, strict=True) if f.strip() == "1")
        )
    date_year = pd.to_numeric(
        pd.Series(dates, dtype="str").str.extract(r"(\d{4})\s*$", expand=False), errors="coerce"
    )
    providers = _read_providers(files["providers"]) if "providers" in files else None
    movies = _assemble_movies(
        np.array(ids, dtype=np.int32), titles, _split_genres(genres), None, providers, date_year
    )
    return MovieLensData(
        ratings, movies, "ml-100k", files, {"ratings": 1, "movies": 1},
        {"ratings": {Col.USER: "user id", Col.ITEM: "item id", Col.RATING: "rating", Col.TIMESTAMP: "timestamp"},
         "movies": {Col.ITEM: "movie id", Col.TITLE: "movie title"}},
    )  # fmt: skip
