"""Ingest: stage 1 of the pipeline - load a dataset into canonical tables, validate them, write parquet.

Sources: the built-in synthetic generator (:mod:`tasks.synthetic`, the default) or a MovieLens
folder in any public format, detected from its files (:func:`detect_format`):

- ``ml-latest`` (ml-latest-small, ml-latest, ml-25m, ml-32m): ``ratings.csv``, ``movies.csv``,
  optional ``tags.csv`` (``links.csv`` and ``genome-*`` are not read); UTF-8, comma-separated,
  one header line; half-star ratings 0.5..5.
- ``ml-100k``: ``u.data`` (tab-separated ``user item rating timestamp``), ``u.item`` (``|``-separated,
  latin-1: id, title, release date, video date, URL, 19 genre flags named in ``u.genre``); whole
  stars 1..5.
- ``ml-1m``: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``), ``movies.dat``
  (``MovieID::Title::Genres``, latin-1), ``users.dat`` (which tells it from ml-10m); whole stars.
- ``ml-10m``: the same ``::`` files without ``users.dat``, usually with ``tags.dat``; half stars.

Any format may add ``providers.csv`` (``movieId,provider``, one row per movie and provider).

Canonical tables (DESIGN.md "Contracts", :mod:`tasks.columns`), rows in file order:

- ratings: user_id int32, movie_id int32, rating float32, timestamp int64 (seconds);
- movies: movie_id int32, title str (as in the file, stripped), year Int32 (the title's trailing
  ``(YYYY)``; ml-100k falls back to the release date; NA when neither has one), genres list<str>
  (``|``-separated labels; ``(no genres listed)`` / ml-100k's ``unknown`` become an empty list,
  ``Children's`` becomes ``Children``), tags str (the movie's distinct tags, lower-cased and
  stripped, most frequent first then alphabetical, joined by single spaces - the same text
  :mod:`tasks.synthetic` builds; ``""`` when none), providers list<str> (in file order,
  deduplicated; empty when none).

Reading a 32M-row ``ratings.csv`` goes through pyarrow's multi-threaded CSV reader straight into
int32/float32/int64 columns (then zero-copy to pandas), so memory stays at a few copies of the
table. The ``::`` files are read by the same reader with ``:`` as the delimiter: the empty fields
between the two colons are simply not converted (``include_columns``). Bad input raises
:class:`tasks.errors.InputDataError` naming the file, the column, the problem and the fix; the
content checks (scale, duplicates, unknown movies, timestamps, row counts) are the GX suites
``expectations/ratings.json`` and ``expectations/movies.json`` (:mod:`tasks.validation`), blocking.

Modules: ``_layouts`` (the layouts and their detection), one reader per layout - ``_ml_latest``,
``_ml100k``, ``_dat`` (ml-1m and ml-10m) - on top of ``_readers`` (delimited text with readable
errors) and ``_tables`` (the canonical tables), ``_movielens`` (:func:`load_movielens`, any
layout), ``_checks`` (:func:`validate_canonical`, the blocking suites) and ``_stage`` (the
stage: :func:`ingest_core`, :func:`ingest_data`).
"""

from tasks.ingest._checks import validate_canonical
from tasks.ingest._layouts import (
    FORMATS,
    FormatSpec,
    MovieLensData,
    detect_format,
    source_fingerprint,
)
from tasks.ingest._movielens import load_movielens, read_movielens
from tasks.ingest._stage import ingest_core, ingest_data
from tasks.ingest._tables import (
    MOVIES_SCHEMA,
    RATINGS_SCHEMA,
    canonical_from_synthetic,
    canonical_movies,
    canonical_ratings,
)

__all__ = [
    "FORMATS",
    "MOVIES_SCHEMA",
    "RATINGS_SCHEMA",
    "FormatSpec",
    "MovieLensData",
    "canonical_from_synthetic",
    "canonical_movies",
    "canonical_ratings",
    "detect_format",
    "ingest_core",
    "ingest_data",
    "load_movielens",
    "read_movielens",
    "source_fingerprint",
    "validate_canonical",
]
