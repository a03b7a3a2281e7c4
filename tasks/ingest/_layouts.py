"""The four MovieLens layouts and how a folder's layout is detected (part of :mod:`tasks.ingest`).

:data:`FORMATS` names each layout's files and rating scale; :func:`detect_format` recognises a
folder from its file names (and says what is missing or where the data really is);
:func:`source_fingerprint` hashes the files a reader would read (a cache-key input).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.errors import InputDataError

__all__ = [
    "FORMATS",
    "SYNTHETIC_SCALE",
    "FormatSpec",
    "MovieLensData",
    "detect_format",
    "source_fingerprint",
]


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
    for name in roles.values():
        link = data_dir / name
        if link.is_symlink() and not link.exists():
            raise InputDataError(
                f"{link}: a symbolic link to {os.readlink(link)}, which does not exist. Fix: point "
                f"the link at the real {name}, or put the file itself there."
            )
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
