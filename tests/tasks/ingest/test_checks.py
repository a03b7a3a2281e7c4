"""Tests for tasks/ingest/_checks.py: bad content stops the ingest with a message that names
the file, the column, the lines and the fix."""

from __future__ import annotations

import pytest

from tasks.errors import InputDataError
from tests.tasks.ingest.folders import RATINGS_CSV, ingest_error, latest_dir, run_ingest


def test_rating_out_of_range(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "3,1,7.0,964982703\n")
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: column 'rating'" in message
    assert (
        "1 of 4 rows outside [0.5, 5.0]" in message
        and "line 5: user_id=3, movie_id=1, rating=7.0" in message
    )
    assert "Fix:" in message


def test_duplicate_user_movie_rows(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "1,1,2.0,964982999\n")
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: column 'user_id, movie_id'" in message
    assert (
        "2 rows share their (user_id, movie_id) pair" in message
        and "line 2" in message
        and "line 5" in message
    )


def test_ratings_for_movies_missing_from_movies_csv(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "3,42,4.0,964982703\n")
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: column 'movie_id' (file column 'movieId')" in message
    assert (
        "refer to movies missing from the movies table, e.g. line 5" in message
        and "movies.csv" in message
    )


def test_header_only_ratings_file(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv="userId,movieId,rating,timestamp\n")
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: 1 of 15 expectations of suite 'ratings' failed" in message
    assert "ratings.csv: table: the table has 0 rows (expected at least 1)" in message
    assert (
        "Fix: The ratings table is empty: give a file with data rows (user_id, movie_id, rating, timestamp) below the header"
        in message
    )


def test_millisecond_timestamps(tmp_path):
    folder = latest_dir(
        tmp_path,
        ratings_csv="userId,movieId,rating,timestamp\n1,1,4.0,964982703000\n2,3,3.5,964982703001\n",
    )
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: column 'timestamp'" in message
    assert "looks like milliseconds, divide by 1000" in message


def test_timestamp_window_comes_from_the_profile(tmp_path):
    folder = latest_dir(tmp_path)
    with pytest.raises(InputDataError, match="timestamp outside the plausible window"):
        run_ingest(folder, tmp_path / "run", min_timestamp=964_982_000)


def test_empty_rating_cell_is_reported_as_null(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "3,1,,964982703\n")
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: column 'rating'" in message and "1 of 4 rows are empty (null)" in message
    assert "line 5: user_id=3, movie_id=1, rating=" in message


def test_empty_and_nan_ratings_give_only_the_null_failure(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "3,1,,964982703\n3,3,NaN,964982704\n")
    message = ingest_error(folder, tmp_path)
    assert "1 of " in message and "expectations of suite 'ratings' failed" in message
    assert "2 of 5 rows are empty (null)" in message and "line 5" in message and "line 6" in message
    assert "dtype" not in message
