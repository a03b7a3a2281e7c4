"""Tests for tasks/ingest/_layouts.py: detecting a folder's layout, and what the message says
when there is none; the source fingerprint."""

from __future__ import annotations

import pytest

from tasks.errors import InputDataError
from tasks.ingest import detect_format, read_movielens, source_fingerprint
from tests.tasks.ingest.folders import RATINGS_CSV, TAGS_CSV, latest_dir, write_files


def test_source_fingerprint_covers_the_files_read(tmp_path):
    folder = latest_dir(tmp_path)
    first = source_fingerprint(folder)
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n")  # not read
    assert source_fingerprint(folder) == first
    (folder / "tags.csv").write_text(TAGS_CSV + "5,5,new,1445714999\n")
    assert source_fingerprint(folder) != first


def test_missing_folder(tmp_path):
    with pytest.raises(
        InputDataError, match=r"nowhere: data folder does not exist\. Fix: pass --data-dir"
    ):
        read_movielens(tmp_path / "nowhere")


def test_folder_in_no_known_format_lists_the_expected_files(tmp_path):
    folder = write_files(tmp_path / "stuff", {"ratings.txt": "1 2 3\n", "notes.md": "hi"})
    with pytest.raises(InputDataError) as err:
        detect_format(folder)
    message = str(err.value)
    assert "not a MovieLens folder" in message and "found: notes.md, ratings.txt" in message
    for expected in ("ratings.csv", "movies.csv", "u.data", "u.item", "ratings.dat", "movies.dat"):
        assert expected in message


def test_folder_with_the_data_one_level_down_says_where(tmp_path):
    latest_dir(tmp_path)
    with pytest.raises(InputDataError, match=r"point --data-dir at the subfolder .*ml"):
        detect_format(tmp_path)


def test_ratings_without_movies_file(tmp_path):
    folder = write_files(tmp_path / "half", {"ratings.csv": RATINGS_CSV})
    with pytest.raises(InputDataError, match="ml-latest needs movies.csv"):
        detect_format(folder)
