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
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.budget import report_progress
from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.io import write_table
from tasks.profile import DataSection, IngestSection, RunProfile, RunSection, SyntheticSection
from tasks.stage import StageOutput, run_stage_core, stage_task

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


@dataclass(frozen=True)
class FormatSpec:
    """A MovieLens layout: the files that identify it and its rating scale (min, max, step)."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    rating_scale: tuple[float, float, float]
    description: str

    def rating_values(self) -> list[float]:
        lo, hi, step = self.rating_scale
        return [float(v) for v in np.round(np.arange(lo, hi + step / 2, step), 6)]


FORMATS: dict[str, FormatSpec] = {
    "ml-latest": FormatSpec(
        "ml-latest", ("ratings.csv", "movies.csv"), ("tags.csv", "providers.csv"), (0.5, 5.0, 0.5),
        "ml-latest-small / ml-latest / ml-25m / ml-32m: ratings.csv + movies.csv (+ tags.csv)",
    ),
    "ml-100k": FormatSpec(
        "ml-100k", ("u.data", "u.item"), ("u.genre", "providers.csv"), (1.0, 5.0, 1.0),
        "ml-100k: u.data + u.item (+ u.genre)",
    ),
    "ml-1m": FormatSpec(
        "ml-1m", ("ratings.dat", "movies.dat", "users.dat"), ("providers.csv",), (1.0, 5.0, 1.0),
        "ml-1m: ratings.dat + movies.dat + users.dat ('::'-separated)",
    ),
    "ml-10m": FormatSpec(
        "ml-10m", ("ratings.dat", "movies.dat"), ("tags.dat", "providers.csv"), (0.5, 5.0, 0.5),
        "ml-10m: ratings.dat + movies.dat (+ tags.dat) ('::'-separated)",
    ),
}  # fmt: skip
#: The scale of the synthetic generator (half stars, like ml-latest).
SYNTHETIC_SCALE = FORMATS["ml-latest"]

_READ_BLOCK = 1 << 24  # 16 MiB pyarrow blocks: fewer, larger chunks on big files
_MAX_BAD_ROWS = 5
_NO_GENRES = {"(no genres listed)", "unknown", ""}
_GENRE_RENAMES = {"Children's": "Children"}
_YEAR_IN_TITLE = r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$"
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip


@dataclass
class MovieLensData:
    """Canonical tables read from a MovieLens folder, with what messages need to point at files."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    fmt: str
    files: dict[str, Path]
    #: file line of the first data row, per table (2 below a header line, 1 without one)
    line_offset: dict[str, int] = field(default_factory=dict)
    #: canonical column -> the file's own column name, per table
    column_aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def spec(self) -> FormatSpec:
        return FORMATS[self.fmt]


# ---------------------------------------------------------------------------------------------
# detecting the layout


def _check_folder(data_dir: Path) -> None:
    if not data_dir.exists():
        raise InputDataError(
            f"{data_dir}: data folder does not exist. Fix: pass --data-dir with an extracted MovieLens "
            "folder (e.g. ml-latest-small/ containing ratings.csv and movies.csv), or use the synthetic "
            "source (--set data.source=synthetic)."
        )
    if not data_dir.is_dir():
        raise InputDataError(
            f"{data_dir}: is a file, not a folder. Fix: pass the folder that contains the MovieLens "
            "files (ratings.csv, movies.csv, ...), not a single file."
        )


def _expected_files_text() -> str:
    return "; ".join(spec.description for spec in FORMATS.values())


def detect_format(data_dir: Path) -> str:
    """The MovieLens layout of ``data_dir``: "ml-latest", "ml-100k", "ml-1m" or "ml-10m".

    Raises :class:`InputDataError` for a missing folder or one in no known layout (the message
    lists the files each layout needs and points at a MovieLens subfolder if there is one).
    """
    data_dir = Path(data_dir)
    _check_folder(data_dir)
    names = {p.name for p in data_dir.iterdir()}
    if {"ratings.csv", "movies.csv"} <= names:
        return "ml-latest"
    if {"u.data", "u.item"} <= names:
        return "ml-100k"
    if {"ratings.dat", "movies.dat"} <= names:
        return "ml-1m" if "users.dat" in names else "ml-10m"
    partial = []  # layouts with some of their files present: say which ones are missing
    for spec in FORMATS.values():
        missing = [f for f in spec.required if f not in names and f != "users.dat"]
        if missing and any(f in names for f in spec.required):
            partial.append(f"{spec.name} needs {', '.join(missing)}")
    found = (
        ", ".join(sorted(names)[:12]) + (" ..." if len(names) > 12 else "") if names else "nothing"
    )
    message = (
        f"{data_dir}: not a MovieLens folder in a known format (found: {found}). Expected one of: "
        f"{_expected_files_text()}."
    )
    if partial:
        message += f" Incomplete: {'; '.join(partial)}."
    nested = [
        p.name
        for p in sorted(data_dir.iterdir())
        if p.is_dir() and any((p / f).exists() for f in ("ratings.csv", "u.data", "ratings.dat"))
    ]
    if nested:
        message += f" Fix: point --data-dir at the subfolder {data_dir / nested[0]}."
    else:
        message += " Fix: extract a MovieLens zip (https://grouplens.org/datasets/movielens/) into the folder."
    raise InputDataError(message)


def _resolve_format(data_dir: Path, fmt: str) -> str:
    if fmt == "auto":
        return detect_format(data_dir)
    if fmt not in FORMATS:
        raise InputDataError(
            f"unknown data.format {fmt!r}: use auto or one of {', '.join(FORMATS)}."
        )
    _check_folder(data_dir)
    missing = [f for f in FORMATS[fmt].required if not (data_dir / f).exists() and f != "users.dat"]
    if missing:
        raise InputDataError(
            f"{data_dir}: data.format is {fmt} but {', '.join(missing)} is missing "
            f"({FORMATS[fmt].description}). Fix: set data.format=auto or point --data-dir at a {fmt} folder."
        )
    return fmt


def _input_files(data_dir: Path, fmt: str) -> dict[str, Path]:
    """role -> path of the files a format's reader reads (optional ones only when present)."""
    roles = {
        "ml-latest": {"ratings": "ratings.csv", "movies": "movies.csv", "tags": "tags.csv"},
        "ml-100k": {"ratings": "u.data", "movies": "u.item", "genres": "u.genre"},
        "ml-1m": {"ratings": "ratings.dat", "movies": "movies.dat"},
        "ml-10m": {"ratings": "ratings.dat", "movies": "movies.dat", "tags": "tags.dat"},
    }[fmt]
    roles["providers"] = "providers.csv"
    files = {role: data_dir / name for role, name in roles.items() if (data_dir / name).exists()}
    for path in files.values():
        if not path.is_file():
            raise InputDataError(
                f"{path}: is a folder, not a file. Fix: put the {path.name} file itself there "
                "(was an archive extracted one level too deep?)."
            )
    return files


def source_fingerprint(data_dir: Path) -> str:
    """sha256 over the names and bytes of the files the reader would read (a cache-key input)."""
    data_dir = Path(data_dir)
    fmt = detect_format(data_dir)
    digest = hashlib.sha256(fmt.encode())
    for _role, path in sorted(_input_files(data_dir, fmt).items()):
        digest.update(f"\0{path.name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# low-level readers with readable errors


#: Leading bytes of files that are not text (a compressed or binary file under a .csv/.dat name).
_BINARY_MAGIC = {
    b"\x1f\x8b": ("gzip-compressed", "decompress it (gunzip)"),
    b"PK\x03\x04": ("a zip archive", "extract it (unzip)"),
    b"BZh": ("bzip2-compressed", "decompress it (bunzip2)"),
    b"\xfd7zXZ\x00": ("xz-compressed", "decompress it (unxz)"),
    b"\x28\xb5\x2f\xfd": ("zstd-compressed", "decompress it (unzstd)"),
    b"PAR1": ("a parquet file", "export it as CSV text"),
}


def _require_nonempty(path: Path, expected: str) -> None:
    """The file has bytes and is text (not a compressed or binary file under a text name)."""
    if path.stat().st_size == 0:
        raise InputDataError(
            f"{path}: the file is empty (0 bytes); expected {expected}. Fix: re-download or re-extract "
            "the dataset (the file was probably cut off while copying)."
        )
    with open(path, "rb") as fh:
        head = fh.read(4096)
    for magic, (what, fix) in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise InputDataError(
                f"{path}: the file is {what}, not text; expected {expected}. Fix: {fix} and give the "
                f"plain-text file the name {path.name}."
            )
    if b"\x00" in head:
        raise InputDataError(
            f"{path}: the file is binary (it contains NUL bytes), not text; expected {expected}. "
            "Fix: re-download or re-extract the dataset, or export the file as plain text."
        )


def _line_count_before_end(path: Path) -> int:
    """Number of line breaks in the file (chunked, for the line number of a truncated last row)."""
    count = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            count += block.count(b"\n")
    return count


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(max(path.stat().st_size - 1, 0))
        return fh.read(1) in (b"\n", b"\r", b"")


def _find_lines(path: Path, texts: Sequence[str], limit: int = 3) -> dict[str, int]:
    """Line numbers of the first occurrences of some exact lines (error path only)."""
    wanted = {t.encode("utf-8", "surrogateescape") for t in texts[:limit]}
    found: dict[str, int] = {}
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if line in wanted:
                found.setdefault(line.decode("utf-8", "replace"), number)
                if len(found) == len(wanted):
                    break
    return found


def _bad_rows_error(
    path: Path, bad: list[Any], columns_text: str, delimiter_name: str
) -> InputDataError:
    row = bad[0]
    text = row.text if len(row.text) <= 120 else row.text[:117] + "..."
    last_line = not _ends_with_newline(path) and _last_line(path) == row.text
    if last_line:
        line = _line_count_before_end(path) + 1
        return InputDataError(
            f"{path}: line {line} (the last line) has {row.actual_columns} {delimiter_name} fields, expected "
            f"{row.expected_columns} ({columns_text}): {text!r}. The file looks truncated (cut mid-row). "
            "Fix: re-download or re-extract the file, or delete the incomplete last line."
        )
    lines = _find_lines(path, [r.text for r in bad])
    where = ", ".join(
        f"line {lines[r.text]}" if r.text in lines else repr(r.text[:60]) for r in bad[:3]
    )
    return InputDataError(
        f"{path}: {len(bad)}{'+' if len(bad) >= _MAX_BAD_ROWS else ''} row(s) do not have "
        f"{row.expected_columns} {delimiter_name} fields ({columns_text}), e.g. {where}: {text!r} has "
        f"{row.actual_columns}. Fix: correct those rows (a field with the delimiter in it must be quoted)."
    )


def _last_line(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(size - 65536, 0))
        tail = fh.read()
    return tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].rstrip(b"\r").decode("utf-8", "replace")


_CONVERSION = re.compile(
    r"CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", re.S
)


def _conversion_error(
    path: Path,
    exc: pa.ArrowInvalid,
    file_columns: Sequence[str],
    read_kwargs: dict[str, Any],
    line_offset: int,
) -> InputDataError:
    """Turn pyarrow's "conversion error" into: file, column, lines with the bad values, fix."""
    text = str(exc)
    match = _CONVERSION.search(text)
    if "invalid UTF8" in text:
        return _utf8_error(
            path, path.read_bytes(), file_columns, read_kwargs["parse_options"].delimiter
        )
    if not match:
        hint = (
            ""
            if _ends_with_newline(path)
            else " The file does not end with a line break: it may be truncated."
        )
        return InputDataError(
            f"{path}: could not be read as {'/'.join(file_columns)} data ({text}).{hint} Fix: check the "
            "delimiter, quoting and encoding of the file."
        )
    index, target, value = int(match.group(1)), match.group(2), match.group(3)
    column = file_columns[index] if index < len(file_columns) else f"#{index}"
    kind = "an integer" if target.startswith(("int", "uint")) else "a number"
    examples = ""
    try:  # error path: re-read just that column as text to point at the offending lines
        table = pacsv.read_csv(
            path,
            read_options=read_kwargs["read_options"],
            parse_options=read_kwargs["parse_options"],
            convert_options=pacsv.ConvertOptions(
                include_columns=[read_kwargs["names"][index]],
                column_types={read_kwargs["names"][index]: pa.string()},
            ),
        )
        raw = table.column(0).to_pandas()
        if kind == "an integer":
            bad = ~raw.str.fullmatch(r"\s*[+-]?\d+\s*").fillna(False).astype(bool)
        else:
            bad = pd.to_numeric(raw, errors="coerce").isna() & (raw.str.strip() != "")
        positions = np.flatnonzero(bad.to_numpy(dtype=bool))
        shown = ", ".join(f"line {p + line_offset}: {raw.iloc[p]!r}" for p in positions[:3])
        examples = f" {len(positions):,} row(s) like that, e.g. {shown}."
    except (pa.ArrowInvalid, KeyError, IndexError):
        pass
    return InputDataError(
        f"{path}: column '{column}': value {value!r} is not {kind}.{examples} Fix: column '{column}' "
        f"must hold {kind.split(' ', 1)[1]}s only; correct or drop those rows (is it the right column?)."
    )


def _read_delimited(
    path: Path,
    *,
    types: Mapping[str, pa.DataType],
    file_columns: Sequence[str],
    names: Sequence[str],
    header: bool,
    delimiter: str,
    columns_text: str,
    source: bytes | None = None,
) -> pa.Table:
    """Read the columns ``types`` (keyed by ``names``) with pyarrow; bad rows -> InputDataError.

    ``names`` are the names pyarrow sees (the header's, or f0, f1, ... without a header);
    ``file_columns`` the human names of those same positions for messages.
    """
    bad: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        if len(bad) < _MAX_BAD_ROWS:
            bad.append(row)
        return "skip"

    read_kwargs = {
        "read_options": pacsv.ReadOptions(
            block_size=_READ_BLOCK, autogenerate_column_names=not header
        ),
        "parse_options": pacsv.ParseOptions(
            delimiter=delimiter,
            invalid_row_handler=on_invalid_row,
            quote_char='"' if delimiter == "," else False,
        ),
        "names": list(names),
    }
    try:
        table = pacsv.read_csv(
            pa.BufferReader(source) if source is not None else path,
            read_options=read_kwargs["read_options"],
            parse_options=read_kwargs["parse_options"],
            convert_options=pacsv.ConvertOptions(
                include_columns=list(types), column_types=dict(types)
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _conversion_error(path, exc, file_columns, read_kwargs, 2 if header else 1) from None
    if bad:
        delimiter_name = {
            ",": "comma-separated",
            "\t": "tab-separated",
            ":": "'::'-separated",
            "|": "'|'-separated",
        }
        raise _bad_rows_error(
            path, bad, columns_text, delimiter_name.get(delimiter, repr(delimiter))
        )
    return table


def _read_header(path: Path, delimiter: str, source: bytes | None = None) -> tuple[list[str], str]:
    if source is not None:
        first = source[:65536]
    else:
        with open(path, "rb") as fh:
            first = fh.read(65536)
    line = first.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", "replace")
    try:
        fields = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error as exc:
        raise InputDataError(
            f"{path}: the first line {line[:80]!r} is not a readable header ({exc}). Fix: the file must "
            "be plain text with one header line; re-download or re-extract it."
        ) from None
    return [f.strip() for f in fields], line


def _check_header(path: Path, required: Sequence[str], source: bytes | None = None) -> list[str]:
    """The CSV header's column names; raises when a required column is missing."""
    fields, line = _read_header(path, ",", source)
    missing = [c for c in required if c not in fields]
    if not missing:
        return fields
    expected = ",".join(required)
    if len(fields) <= 1:
        for sep, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if sep in line:
                raise InputDataError(
                    f"{path}: the header line {line[:80]!r} is {name}-separated, not comma-separated, so "
                    f"column '{missing[0]}' was not found. Fix: save the file with ',' as the delimiter "
                    f"(MovieLens CSV header: {expected})."
                )
    listed = ", ".join(repr(c) for c in missing)
    raise InputDataError(
        f"{path}: missing column {listed} (the header line has: {', '.join(fields) or '(nothing)'}). "
        f"Fix: the first line must name the columns {expected} (MovieLens {path.name} format)."
    )


def _utf8_error(path: Path, raw: bytes, columns: Sequence[str], delimiter: str) -> InputDataError:
    """Where a file stops being UTF-8: line, column, the bytes, and whether encodings are mixed."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        pos = exc.start
    else:  # pragma: no cover - only called for invalid data
        return InputDataError(f"{path}: not valid UTF-8. Fix: save it as UTF-8.")
    line_no = raw.count(b"\n", 0, pos) + 1
    start = raw.rfind(b"\n", 0, pos) + 1
    end = raw.find(b"\n", pos)
    line = raw[start : end if end >= 0 else len(raw)].rstrip(b"\r")
    column = _field_at(line, pos - start, delimiter, columns)
    bad_lines = 0
    for chunk in raw.split(b"\n"):
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines += 1
    has_utf8 = re.search(rb"[\xc2-\xf4][\x80-\xbf]+", raw) is not None and _has_valid_multibyte(raw)
    kind = (
        "mixed encodings: the file has UTF-8 text and also bytes in another encoding (latin-1 / cp1252?)"
        if has_utf8
        else "the file looks latin-1 / cp1252 encoded, not UTF-8"
    )
    fix = (
        "re-save the listed lines as UTF-8 (the rest of the file already is)"
        if has_utf8
        else f"convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}"
    )
    snippet = line.decode("latin-1")[:80]
    return InputDataError(
        f"{path}: line {line_no}, column '{column}': invalid UTF-8 byte 0x{raw[pos]:02x} in {snippet!r} "
        f"({bad_lines} line(s) are not UTF-8; {kind}). Fix: {fix}."
    )


def _has_valid_multibyte(raw: bytes) -> bool:
    for match in re.finditer(rb"[\xc2-\xf4][\x80-\xbf]{1,3}", raw):
        try:
            match.group(0).decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _field_at(line: bytes, offset: int, delimiter: str, columns: Sequence[str]) -> str:
    """Name of the delimited field that contains byte ``offset`` of ``line`` (quotes respected)."""
    text = line.decode("latin-1")  # one char per byte, so offsets match
    index, quoted, i = 0, False, 0
    step = len(delimiter)
    while i < min(offset, len(text)):
        char = text[i]
        if char == '"' and delimiter == ",":
            quoted = not quoted
        elif not quoted and text.startswith(delimiter, i):
            index += 1
            i += step
            continue
        i += 1
    return columns[index] if index < len(columns) else f"field {index + 1}"


def _decode_text(
    path: Path, raw: bytes, columns: Sequence[str], delimiter: str, legacy: bool
) -> str:
    """UTF-8 text; ``legacy`` files (GroupLens .dat / u.item) that are not UTF-8 are read as latin-1.

    A legacy file that mixes valid UTF-8 with other bytes is an error (it cannot be decoded right).
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        if legacy and not _has_valid_multibyte(raw):
            return raw.decode("latin-1")
        raise _utf8_error(path, raw, columns, delimiter) from None


def _to_pandas(table: pa.Table, renames: Mapping[str, str]) -> pd.DataFrame:
    """Arrow -> pandas without a second full copy; columns with nulls become nullable dtypes."""
    nullable = {
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.float32(): pd.Float32Dtype(),
    }
    has_nulls = any(col.null_count for col in table.columns)
    df = table.to_pandas(
        self_destruct=True, split_blocks=True, types_mapper=nullable.get if has_nulls else None
    )
    return df.rename(columns=dict(renames))


# ---------------------------------------------------------------------------------------------
# canonical tables


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


def _read_providers(path: Path) -> dict[int, list[str]]:
    """providers.csv -> {movie_id: [provider, ...]} in file order, deduplicated, blanks dropped."""
    _require_nonempty(path, "a header line 'movieId,provider' and one row per movie and provider")
    raw = path.read_bytes()
    _decode_text(path, raw, ("movieId", "provider"), ",", legacy=False)
    names = _check_header(path, ("movieId", "provider"), raw)
    table = _read_delimited(
        path,
        types={"movieId": pa.int32(), "provider": pa.string()},
        file_columns=names,
        names=names,
        header=True,
        delimiter=",",
        columns_text="movieId,provider",
        source=raw,
    )
    frame = table.to_pandas()
    frame["provider"] = frame["provider"].astype("str").str.strip()
    frame = frame[frame["provider"] != ""].drop_duplicates()
    result: dict[int, list[str]] = {}
    for movie, provider in zip(frame["movieId"].tolist(), frame["provider"].tolist(), strict=True):
        result.setdefault(int(movie), []).append(provider)
    return result


# ---------------------------------------------------------------------------------------------
# the four layouts


_ML_LATEST_ALIASES = {
    Col.USER: "userId",
    Col.ITEM: "movieId",
    Col.RATING: "rating",
    Col.TIMESTAMP: "timestamp",
}
_DAT_ALIASES = {
    Col.USER: "UserID",
    Col.ITEM: "MovieID",
    Col.RATING: "Rating",
    Col.TIMESTAMP: "Timestamp",
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


def _int_field(path: Path, value: str, column: str, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputDataError(
            f"{path}: line {line}, column '{column}': {value!r} is not an integer id. Fix: correct that line."
        ) from None


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


def canonical_from_synthetic(data: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical (ratings, movies) from a :class:`tasks.synthetic.SyntheticData` (dtypes, column order)."""
    return canonical_ratings(data.ratings), canonical_movies(data.movies)


# ---------------------------------------------------------------------------------------------
# validation and the stage


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


def ingest_core(profile: RunProfile, data_dir: str | None, run_dir: str) -> dict[str, Any]:
    """Load (synthetic or MovieLens), validate both tables (blocking), write ``data/*.parquet``.

    Returns ``{"artifacts": {"ratings": ref, "movies": ref}, "facts": {...}}`` with n_ratings,
    n_users, n_movies, format, rating_scale [min, max], source files and the validation summaries.
    """
    seed = profile.run.seed
    if profile.data.source == "synthetic":
        from tasks.synthetic import generate_synthetic

        report_progress(0.0, "generating synthetic data")
        data = generate_synthetic(
            profile.synthetic,
            seed,
            progress=lambda f, m: report_progress(0.4 * f, f"synthetic: {m}"),
        )
        ratings, movies = canonical_from_synthetic(data)
        del data
        fmt, scale, files = "synthetic", SYNTHETIC_SCALE, {}
        sources = {
            "ratings": "synthetic ratings (tasks.synthetic)",
            "movies": "synthetic movies (tasks.synthetic)",
        }
        line_offset: dict[str, int] = {}
        aliases: dict[str, dict[str, str]] = {}
    else:
        folder = data_dir or profile.data.data_dir
        if not folder:
            raise InputDataError(
                "data.source is 'movielens' but no folder was given. Fix: pass --data-dir DIR or set "
                "data.data_dir in the profile."
            )
        report_progress(0.0, f"reading {folder}")
        loaded = load_movielens(Path(folder), profile.data.format)
        ratings, movies, fmt, scale, files = (
            loaded.ratings,
            loaded.movies,
            loaded.fmt,
            loaded.spec,
            loaded.files,
        )
        sources = {"ratings": str(files["ratings"]), "movies": str(files["movies"])}
        line_offset, aliases = loaded.line_offset, loaded.column_aliases
        del loaded

    report_progress(0.45, f"validating {len(ratings):,} ratings and {len(movies):,} movies")
    summaries = validate_canonical(
        ratings,
        movies,
        scale=scale,
        ingest=profile.ingest,
        sources=sources,
        line_offset=line_offset,
        column_aliases=aliases,
        seed=seed,
    )
    report_progress(0.75, "writing data/ratings.parquet and data/movies.parquet")
    artifacts = {
        "ratings": write_table(
            pa.Table.from_pandas(ratings, schema=RATINGS_SCHEMA, preserve_index=False),
            run_dir,
            "data/ratings.parquet",
        ),
        "movies": write_table(
            pa.Table.from_pandas(movies, schema=MOVIES_SCHEMA, preserve_index=False),
            run_dir,
            "data/movies.parquet",
        ),
    }
    facts = {
        "format": fmt,
        "source_files": {role: str(path) for role, path in files.items()},
        "n_ratings": len(ratings),
        "n_users": int(ratings[Col.USER].nunique()),
        "n_movies": len(movies),
        "n_rated_movies": int(ratings[Col.ITEM].nunique()),
        "n_movies_with_tags": int((movies[Col.TAGS] != "").sum()),
        "n_movies_with_providers": int(sum(1 for p in movies[Col.PROVIDERS] if len(p))),
        "rating_scale": [scale.rating_scale[0], scale.rating_scale[1]],
        "validation": summaries,
    }
    report_progress(1.0, f"ingested {len(ratings):,} ratings ({fmt})")
    return {"artifacts": artifacts, "facts": facts}


@stage_task("ingest")
def ingest_data(
    profile_data: DataSection,
    synthetic: SyntheticSection | None,
    ingest: IngestSection,
    seed: int,
    source_fingerprint: str,
    data_dir: str | None,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Prefect task: the ingest stage under its time budget (no retries: bad input stays bad).

    Cache key = data / synthetic / ingest sections + seed + ``source_fingerprint`` + ``data_dir``.
    For a MovieLens source pass ``synthetic=None`` and ``seed=0`` (they do not change what is read)
    and ``source_fingerprint=source_fingerprint(folder)``; for the synthetic source pass
    ``data_dir=None`` and ``source_fingerprint="synthetic"``.
    """
    profile = RunProfile(
        data=profile_data,
        synthetic=synthetic if synthetic is not None else SyntheticSection(),
        ingest=ingest,
        run=RunSection(seed=seed),
    )
    result = run_stage_core("ingest", budget_seconds, ingest_core, profile, data_dir, run_dir)
    return StageOutput.from_result("ingest", result)
