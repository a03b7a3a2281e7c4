"""Tests for tasks/ingest/_readers.py: bad files - each message names the file, the column, the
problem and the fix."""

from __future__ import annotations

from tests.tasks.ingest.folders import MOVIES_CSV, RATINGS_CSV, ingest_error, latest_dir


def test_missing_column(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv="userId,movieId,timestamp\n1,1,964982703\n")
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: missing column 'rating'" in message
    assert "header line has: userId, movieId, timestamp" in message and "Fix:" in message


def test_non_numeric_rating(tmp_path):
    folder = latest_dir(
        tmp_path, ratings_csv=RATINGS_CSV + "3,1,four,964982703\n3,5,4.0,964982703\n"
    )
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: column 'rating': value 'four' is not a number" in message
    assert "line 5: 'four'" in message and "Fix:" in message


def test_non_integer_user_id(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "u7,1,4.0,964982703\n")
    message = ingest_error(folder, tmp_path)
    assert (
        "ratings.csv: column 'userId': value 'u7' is not an integer" in message
        and "line 5" in message
    )


def test_empty_ratings_file(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv="")
    message = ingest_error(folder, tmp_path)
    assert (
        "ratings.csv: the file is empty (0 bytes)" in message
        and "userId,movieId,rating,timestamp" in message
    )


def test_invalid_utf8_in_movies_csv(tmp_path):
    movies = MOVIES_CSV.encode() + "7,Amélie (2001),Comedy|Romance\n".encode("latin-1")
    folder = latest_dir(tmp_path, movies_csv=movies)
    message = ingest_error(folder, tmp_path)
    assert "movies.csv: line 5, column 'title': invalid UTF-8 byte 0xe9" in message
    assert "latin-1" in message and "Fix: convert it to UTF-8, e.g. iconv" in message


def test_mixed_encodings_in_movies_csv(tmp_path):
    movies = (
        MOVIES_CSV.encode()
        + "8,Léon (1994),Crime\n".encode()
        + "7,Amélie (2001),Comedy|Romance\n".encode("latin-1")
    )
    folder = latest_dir(tmp_path, movies_csv=movies)
    message = ingest_error(folder, tmp_path)
    assert "movies.csv: line 6, column 'title'" in message and "mixed encodings" in message


def test_zero_byte_movies_file(tmp_path):
    folder = latest_dir(tmp_path, movies_csv="")
    message = ingest_error(folder, tmp_path)
    assert (
        "movies.csv: the file is empty (0 bytes)" in message and "movieId,title,genres" in message
    )


def test_truncated_csv(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "3,5,4")  # cut mid-row, no newline
    message = ingest_error(folder, tmp_path)
    assert "ratings.csv: line 5 (the last line) has 3 comma-separated fields, expected 4" in message
    assert "userId,movieId,rating,timestamp" in message and "truncated" in message


def test_malformed_row_in_the_middle(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV + "3,5\n4,5,4.0,964982703\n")
    message = ingest_error(folder, tmp_path)
    assert (
        "ratings.csv: 1 row(s) do not have 4 comma-separated fields" in message
        and "line 5" in message
    )


def test_wrong_delimiter(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv=RATINGS_CSV.replace(",", ";"))
    message = ingest_error(folder, tmp_path)
    assert (
        "ratings.csv: the header line 'userId;movieId;rating;timestamp' is ';'-separated" in message
    )
    assert "column 'userId' was not found" in message and "Fix: save the file with ','" in message
