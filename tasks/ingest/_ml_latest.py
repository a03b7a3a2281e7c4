"""The ``ml-latest`` layout (ml-latest-small, ml-latest, ml-25m, ml-32m): ``ratings.csv``,
``movies.csv``, optional ``tags.csv`` (part of :mod:`tasks.ingest`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from tasks.budget import report_progress
from tasks.columns import Col
from tasks.ingest._layouts import MovieLensData
from tasks.ingest._readers import (
    _check_header,
    _decode_text,
    _read_delimited,
    _read_header,
    _read_providers,
    _require_nonempty,
    _to_pandas,
)
from tasks.ingest._tables import _aggregate_tags, _assemble_movies, _split_genres, canonical_ratings

_ML_LATEST_ALIASES = {
    Col.USER: "userId",
    Col.ITEM: "movieId",
    Col.RATING: "rating",
    Col.TIMESTAMP: "timestamp",
}


def _read_ml_latest(data_dir: Path, files: dict[str, Path]) -> MovieLensData:
    path = files["ratings"]
    _require_nonempty(
        path, "a header line 'userId,movieId,rating,timestamp' and one row per rating"
    )
    header = _check_header(path, tuple(_ML_LATEST_ALIASES.values()))
    table = _read_delimited(
        path,
        types={
            "userId": pa.int32(),
            "movieId": pa.int32(),
            "rating": pa.float32(),
            "timestamp": pa.int64(),
        },
        file_columns=header,
        names=header,
        header=True,
        delimiter=",",
        columns_text="userId,movieId,rating,timestamp",
    )
    report_progress(0.2, f"read {table.num_rows:,} ratings from {path.name}")
    ratings = canonical_ratings(_to_pandas(table, {v: k for k, v in _ML_LATEST_ALIASES.items()}))
    del table

    mpath = files["movies"]
    _require_nonempty(mpath, "a header line 'movieId,title,genres' and one row per movie")
    raw = mpath.read_bytes()
    _decode_text(
        mpath,
        raw,
        _read_header(mpath, ",", raw)[0] or ("movieId", "title", "genres"),
        ",",
        legacy=False,
    )
    mheader = _check_header(mpath, ("movieId", "title", "genres"), raw)
    mtable = _read_delimited(
        mpath,
        types={"movieId": pa.int32(), "title": pa.string(), "genres": pa.string()},
        file_columns=mheader,
        names=mheader,
        header=True,
        delimiter=",",
        columns_text="movieId,title,genres",
        source=raw,
    ).to_pandas()

    tags = None
    if "tags" in files:
        tpath = files["tags"]
        if tpath.stat().st_size:
            _require_nonempty(tpath, "a header line 'userId,movieId,tag,timestamp' and one row per tag")
            theader = _check_header(tpath, ("movieId", "tag"))
            ttable = _read_delimited(
                tpath,
                types={"movieId": pa.int32(), "tag": pa.string()},
                file_columns=theader,
                names=theader,
                header=True,
                delimiter=",",
                columns_text="userId,movieId,tag,timestamp",
            ).to_pandas()
            tags = _aggregate_tags(ttable["movieId"].to_numpy(), ttable["tag"])
    providers = _read_providers(files["providers"]) if "providers" in files else None
    movies = _assemble_movies(
        mtable["movieId"].to_numpy(),
        mtable["title"].tolist(),
        _split_genres(mtable["genres"].tolist()),
        tags,
        providers,
    )
    movie_aliases = {Col.ITEM: "movieId", Col.TITLE: "title", Col.GENRES: "genres"}
    return MovieLensData(
        ratings,
        movies,
        "ml-latest",
        files,
        {"ratings": 2, "movies": 2},
        {"ratings": _ML_LATEST_ALIASES, "movies": movie_aliases},
    )
