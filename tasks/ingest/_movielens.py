"""A MovieLens folder in any layout, read into canonical tables (part of :mod:`tasks.ingest`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.ingest._dat import _read_dat
from tasks.ingest._layouts import MovieLensData, _input_files, _resolve_format
from tasks.ingest._ml100k import _read_ml100k
from tasks.ingest._ml_latest import _read_ml_latest

__all__ = ["load_movielens", "read_movielens"]


def load_movielens(data_dir: Path | str, fmt: str = "auto") -> MovieLensData:
    """Read a MovieLens folder into canonical tables plus file details (not yet validated)."""
    data_dir = Path(data_dir)
    fmt = _resolve_format(data_dir, fmt)
    files = _input_files(data_dir, fmt)
    if fmt == "ml-latest":
        return _read_ml_latest(data_dir, files)
    if fmt == "ml-100k":
        return _read_ml100k(data_dir, files)
    return _read_dat(data_dir, files, fmt)


def read_movielens(data_dir: Path | str, fmt: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical (ratings, movies) from a MovieLens folder (``fmt="auto"`` detects the layout).

    Parsing problems raise :class:`InputDataError`; content checks are :func:`validate_canonical`.
    """
    data = load_movielens(data_dir, fmt)
    return data.ratings, data.movies
