"""The ``ml-1m`` and ``ml-10m`` layouts: ``::``-separated ``ratings.dat`` and ``movies.dat``
(``users.dat`` tells ml-1m apart; ml-10m usually adds ``tags.dat``) (part of :mod:`tasks.ingest`).
"""

from __future__ import annotations

from collections.abc import Sequence
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
from tasks.ingest._tables import (
    RATING_COLUMNS,
    _aggregate_tags,
    _assemble_movies,
    _split_genres,
    canonical_ratings,
)

_DAT_ALIASES = {
    Col.USER: "UserID",
    Col.ITEM: "MovieID",
    Col.RATING: "Rating",
    Col.TIMESTAMP: "Timestamp",
}


def _read_dat_ratings(path: Path) -> pd.DataFrame:
    """``UserID::MovieID::Rating::Timestamp`` read as ':'-delimited (7 fields, 3 of them empty)."""
    _require_nonempty(path, "rows UserID::MovieID::Rating::Timestamp")
    first = _read_header(path, "\t")[1]
    if first.count("::") != 3:
        raise InputDataError(
            f"{path}: line 1 {first[:80]!r} is not UserID::MovieID::Rating::Timestamp (4 fields separated "
            "by '::'), so column 'UserID' cannot be read. Fix: use the original GroupLens file, or convert it "
            "to ratings.csv (ml-latest format)."
        )
    table = _read_delimited(
        path,
        types={"f0": pa.int32(), "f2": pa.int32(), "f4": pa.float32(), "f6": pa.int64()},
        file_columns=("UserID", "", "MovieID", "", "Rating", "", "Timestamp"),
        names=[f"f{i}" for i in range(7)],
        header=False,
        delimiter=":",
        columns_text="UserID::MovieID::Rating::Timestamp",
    )
    return canonical_ratings(
        _to_pandas(table, dict(zip(("f0", "f2", "f4", "f6"), RATING_COLUMNS, strict=True)))
    )


def _dat_lines(path: Path, raw: bytes, columns: Sequence[str], min_fields: int) -> list[list[str]]:
    """Split a small ``::`` file into fields (titles and tags may contain ':' themselves)."""
    text = _decode_text(path, raw, columns, "::", legacy=True)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) < min_fields:
            truncated = number == len(text.splitlines()) and not text.endswith("\n")
            raise InputDataError(
                f"{path}: line {number} has {len(parts)} '::'-separated fields, expected {min_fields} "
                f"({'::'.join(columns)}): {line[:80]!r}."
                + (" The file looks truncated (cut mid-row)." if truncated else "")
                + " Fix: re-extract the original file or correct that line."
            )
        rows.append(parts)
    return rows


def _read_dat(data_dir: Path, files: dict[str, Path], fmt: str) -> MovieLensData:
    ratings = _read_dat_ratings(files["ratings"])
    report_progress(0.2, f"read {len(ratings):,} ratings from {files['ratings'].name}")
    mpath = files["movies"]
    _require_nonempty(mpath, "rows MovieID::Title::Genres")
    rows = _dat_lines(mpath, mpath.read_bytes(), ("MovieID", "Title", "Genres"), 3)
    ids = np.array(
        [_int_field(mpath, r[0], "MovieID", i) for i, r in enumerate(rows, 1)], dtype=np.int32
    )
    titles = ["::".join(r[1:-1]) for r in rows]
    genres = _split_genres([r[-1] for r in rows])
    tags = None
    if "tags" in files and files["tags"].stat().st_size:
        tpath = files["tags"]
        trows = _dat_lines(tpath, tpath.read_bytes(), ("UserID", "MovieID", "Tag", "Timestamp"), 4)
        tag_movies = np.array(
            [_int_field(tpath, r[1], "MovieID", i) for i, r in enumerate(trows, 1)], dtype=np.int32
        )
        tags = _aggregate_tags(
            tag_movies, pd.Series(["::".join(r[2:-1]) for r in trows], dtype="str")
        )
    providers = _read_providers(files["providers"]) if "providers" in files else None
    movies = _assemble_movies(ids, titles, genres, tags, providers)
    return MovieLensData(
        ratings, movies, fmt, files, {"ratings": 1, "movies": 1},
        {"ratings": _DAT_ALIASES, "movies": {Col.ITEM: "MovieID", Col.TITLE: "Title", Col.GENRES: "Genres"}},
    )  # fmt: skip
