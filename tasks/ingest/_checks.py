"""The content checks of the canonical tables (part of :mod:`tasks.ingest`): the Great
Expectations suites ``expectations/ratings.json`` and ``expectations/movies.json``
(:mod:`tasks.validation`), blocking - scale, duplicates, unknown movies, timestamps, row counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tasks.errors import InputDataError
from tasks.ingest._layouts import FormatSpec
from tasks.profile import IngestSection

__all__ = ["validate_canonical"]


def validate_canonical(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    *,
    scale: FormatSpec,
    ingest: IngestSection,
    sources: Mapping[str, str],
    line_offset: Mapping[str, int] | None = None,
    column_aliases: Mapping[str, Mapping[str, str]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the ``movies`` and ``ratings`` suites (blocking): raise one :class:`InputDataError` listing
    every failed expectation of both tables; return both summaries otherwise."""
    from tasks.validation import format_failures, validate_table

    line_offset = line_offset or {}
    column_aliases = column_aliases or {}
    lo, hi, _ = scale.rating_scale
    summaries = {
        "movies": validate_table(
            movies,
            "movies",
            source=sources["movies"],
            line_offset=line_offset.get("movies"),
            column_aliases=column_aliases.get("movies"),
            seed=seed,
        ),
        "ratings": validate_table(
            ratings,
            "ratings",
            source=sources["ratings"],
            parameters={
                "rating_min": lo,
                "rating_max": hi,
                "rating_values": scale.rating_values(),
                "min_timestamp": ingest.min_timestamp,
                "max_timestamp": ingest.max_timestamp,
            },
            references={"movies": movies},
            sample_rows=ingest.validation_sample_rows,
            line_offset=line_offset.get("ratings"),
            column_aliases=column_aliases.get("ratings"),
            seed=seed,
        ),
    }
    failed = [format_failures(s) for s in summaries.values() if not s["success"]]
    if failed:
        raise InputDataError("\n".join(failed))
    return summaries
