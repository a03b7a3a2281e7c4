"""Shared by the tasks.ingest tests: tiny MovieLens folders written by hand in the exact formats,
and helpers that ingest one and return the error message. Every bad input must raise
InputDataError whose message names the file and the column (the CLI prints it and exits 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import InputDataError
from tasks.ingest import ingest_core
from tasks.profile import DataSection, IngestSection, RunProfile

RATINGS_CSV = (
    "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,3.0,964982224\n"
)
MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '3,"American President, The (1995)",Comedy|Drama|Romance\n'
    "5,Untitled Project,(no genres listed)\n"
)
TAGS_CSV = (
    "userId,movieId,tag,timestamp\n"
    "2,1,Pixar,1445714994\n3,1,fun,1445714995\n4,1,pixar ,1445714996\n2,3,politics,1445714997\n"
)


def write_files(folder: Path, files: dict[str, str | bytes], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode(encoding)
        (folder / name).write_bytes(data)
    return folder


def latest_dir(tmp_path: Path, **overrides: str | bytes) -> Path:
    files: dict[str, str | bytes] = {
        "ratings.csv": RATINGS_CSV,
        "movies.csv": MOVIES_CSV,
        "tags.csv": TAGS_CSV,
    }
    files.update({name.replace("_", "."): content for name, content in overrides.items()})
    return write_files(tmp_path / "ml", files)


def run_ingest(data_dir: Path, run_dir: Path, **ingest: int) -> dict:
    """The ingest core on a folder of a few rows (the minimum number of users off)."""
    ingest = {"min_users": 0, **ingest}
    profile = RunProfile(data=DataSection(source="movielens"), ingest=IngestSection(**ingest))
    return ingest_core(profile, str(data_dir), str(run_dir))


def ingest_error(data_dir: Path, tmp_path: Path) -> str:
    with pytest.raises(InputDataError) as err:
        run_ingest(data_dir, tmp_path / "run")
    assert not (tmp_path / "run" / "data" / "ratings.parquet").exists()
    return str(err.value)


ML100K_GENRE = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\n"
    "Drama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\n"
    "Thriller|16\nWar|17\nWestern|18\n\n"
)


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))
