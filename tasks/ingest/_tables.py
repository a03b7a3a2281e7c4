"""The canonical ratings and movies tables (part of :mod:`tasks.ingest`): their arrow schemas,
column order and dtypes, and how the readers assemble a movies table (years from titles, genre
lists, aggregated tags, providers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.columns import Col

__all__ = [
    "MOVIES_SCHEMA",
    "MOVIE_COLUMNS",
    "RATINGS_SCHEMA",
    "RATING_COLUMNS",
    "canonical_from_synthetic",
    "canonical_movies",
    "canonical_ratings",
]


RATINGS_SCHEMA = pa.schema(
    [
        (Col.USER, pa.int32()),
        (Col.ITEM, pa.int32()),
        (Col.RATING, pa.float32()),
        (Col.TIMESTAMP, pa.int64()),
    ]
)
MOVIES_SCHEMA = pa.schema(
    [
        (Col.ITEM, pa.int32()),
        (Col.TITLE, pa.string()),
        (Col.YEAR, pa.int32()),
        (Col.GENRES, pa.list_(pa.string())),
        (Col.TAGS, pa.string()),
        (Col.PROVIDERS, pa.list_(pa.string())),
    ]
)
RATING_COLUMNS = (Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP)
MOVIE_COLUMNS = (Col.ITEM, Col.TITLE, Col.YEAR, Col.GENRES, Col.TAGS, Col.PROVIDERS)


_NO_GENRES = {"(no genres listed)", "unknown", ""}
_GENRE_RENAMES = {"Children's": "Children"}
_YEAR_IN_TITLE = r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$"


def canonical_ratings(df: pd.DataFrame) -> pd.DataFrame:
    """The ratings columns in canonical order and dtypes (nullable dtypes kept when integer values are
    missing, so validation reports them; a missing rating becomes NaN in float32, so only the
    not-null expectation reports it, not a second, unactionable dtype failure)."""
    out = {}
    for col, dtype in (
        (Col.USER, "int32"),
        (Col.ITEM, "int32"),
        (Col.RATING, "float32"),
        (Col.TIMESTAMP, "int64"),
    ):
        series = df[col]
        if col == Col.RATING and series.dtype != dtype and series.hasnans:
            values = series.to_numpy(np.float32, na_value=np.nan)
            series = pd.Series(values, index=series.index, name=col, copy=False)
        elif series.dtype != dtype and not series.hasnans:
            series = series.astype(dtype)
        out[col] = series
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)), copy=False)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [str(value)]


def canonical_movies(df: pd.DataFrame) -> pd.DataFrame:
    """The movies columns in canonical order and dtypes; missing tags -> "", providers -> []."""
    n = len(df)
    year = df[Col.YEAR] if Col.YEAR in df.columns else pd.Series([pd.NA] * n)
    tags = df[Col.TAGS] if Col.TAGS in df.columns else pd.Series([""] * n)
    providers = df[Col.PROVIDERS] if Col.PROVIDERS in df.columns else pd.Series([[]] * n)
    return pd.DataFrame(
        {
            Col.ITEM: df[Col.ITEM].to_numpy(dtype=np.int32),
            Col.TITLE: pd.Series(df[Col.TITLE].to_numpy(), dtype="str"),
            Col.YEAR: pd.array(pd.to_numeric(year.to_numpy(), errors="coerce"), dtype="Int32"),
            Col.GENRES: [_as_list(v) for v in df[Col.GENRES]],
            Col.TAGS: pd.Series(tags.fillna("").to_numpy(), dtype="str"),
            Col.PROVIDERS: [_as_list(v) for v in providers],
        }
    )


def _years_from_titles(titles: pd.Series) -> pd.Series:
    """The trailing "(YYYY)" of each title (also "(2007-2013)" -> 2007) as Int32, else NA."""
    return pd.to_numeric(titles.str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce").astype(
        "Int32"
    )


def _split_genres(texts: Sequence[str]) -> list[list[str]]:
    out = []
    for text in texts:
        labels = [_GENRE_RENAMES.get(g.strip(), g.strip()) for g in str(text).split("|")]
        out.append([g for g in labels if g not in _NO_GENRES])
    return out


def _aggregate_tags(movie_ids: np.ndarray, tags: pd.Series) -> pd.Series:
    """movie_id -> "tag tag ...": distinct lower-cased tags, most frequent first, then alphabetical."""
    frame = pd.DataFrame({"m": movie_ids, "tag": tags.astype("str").str.strip().str.lower()})
    frame = frame[frame["tag"].notna() & (frame["tag"] != "")]
    if frame.empty:
        return pd.Series(dtype="str")
    counted = frame.groupby(["m", "tag"], sort=True).size().reset_index(name="n")
    counted = counted.sort_values(["m", "n", "tag"], ascending=[True, False, True], kind="stable")
    return counted.groupby("m", sort=True)["tag"].agg(" ".join)


def _assemble_movies(
    movie_ids: np.ndarray,
    titles: Sequence[str],
    genres: list[list[str]],
    tags: pd.Series | None,
    providers: Mapping[int, list[str]] | None,
    year_fallback: pd.Series | None = None,
) -> pd.DataFrame:
    title = pd.Series([str(t).strip() for t in titles], dtype="str")
    year = _years_from_titles(title)
    if year_fallback is not None:
        year = year.fillna(year_fallback.astype("Int32"))
    ids = np.asarray(movie_ids)
    tag_text = (
        pd.Series(ids).map(tags).fillna("")
        if tags is not None and len(tags)
        else pd.Series([""] * len(ids))
    )
    provider_lists = (
        [list(providers.get(int(m), [])) for m in ids] if providers else [[] for _ in ids]
    )
    return pd.DataFrame(
        {
            Col.ITEM: ids,
            Col.TITLE: title,
            Col.YEAR: year,
            Col.GENRES: genres,
            Col.TAGS: pd.Series(tag_text.to_numpy(), dtype="str"),
            Col.PROVIDERS: provider_lists,
        }
    )


def canonical_from_synthetic(data: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical (ratings, movies) from a :class:`tasks.synthetic.SyntheticData` (dtypes, column order)."""
    return canonical_ratings(data.ratings), canonical_movies(data.movies)
