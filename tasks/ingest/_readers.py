"""Low-level readers of the delimited text files, with readable errors (part of
:mod:`tasks.ingest`).

pyarrow's multi-threaded CSV reader reads straight into typed columns; every failure becomes an
:class:`tasks.errors.InputDataError` naming the file, the line, the column, the problem and the
fix: empty, compressed or binary files, missing header columns, a wrong delimiter, rows with the
wrong number of fields (a truncated last line included), values that are not numbers, and text
that is not UTF-8 (GroupLens' legacy latin-1 files are read as such). ``providers.csv`` (any
layout) is read here too.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.errors import InputDataError

_READ_BLOCK = 1 << 24  # 16 MiB pyarrow blocks: fewer, larger chunks on big files
_MAX_BAD_ROWS = 5


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
    too_big = kind == "an integer" and re.fullmatch(r"\s*[+-]?\d+\s*", value) is not None
    if too_big:  # a whole number the column's integer type cannot hold (e.g. 2**32 + 1 in int32)
        bounds = np.iinfo(np.dtype(target))
        kind = f"an integer from {bounds.min:,} to {bounds.max:,}"
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
        if too_big:
            number = pd.to_numeric(raw.str.strip(), errors="coerce")
            bad = (number < bounds.min) | (number > bounds.max)
        elif kind == "an integer":
            bad = ~raw.str.fullmatch(r"\s*[+-]?\d+\s*").fillna(False).astype(bool)
        else:
            bad = pd.to_numeric(raw, errors="coerce").isna() & (raw.str.strip() != "")
        positions = np.flatnonzero(bad.to_numpy(dtype=bool))
        shown = ", ".join(f"line {p + line_offset}: {raw.iloc[p]!r}" for p in positions[:3])
        examples = f" {len(positions):,} row(s) like that, e.g. {shown}."
    except (pa.ArrowInvalid, KeyError, IndexError):
        pass
    if too_big:
        return InputDataError(
            f"{path}: column '{column}': value {value!r} is out of range: ids must be {kind}."
            f"{examples} Fix: renumber the ids into that range, or correct or drop those rows."
        )
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


def _int_field(path: Path, value: str, column: str, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputDataError(
            f"{path}: line {line}, column '{column}': {value!r} is not an integer id. Fix: correct that line."
        ) from None
