"""Tests for tasks/ingest/_dat.py: ml-1m and ml-10m, and bad ``::`` files."""

from __future__ import annotations

import pytest

from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.ingest import detect_format, read_movielens
from tests.tasks.ingest.folders import run_ingest, write_files


def test_ml_1m(tmp_path):
    folder = write_files(
        tmp_path / "ml-1m",
        {
            "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
            "movies.dat": (
                "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                "2::Léon: The Professional (1994)::Crime|Drama\n"
            ).encode("latin-1"),
            "users.dat": "1::F::1::10::48067\n",
        },
    )
    assert detect_format(folder) == "ml-1m"
    ratings, movies = read_movielens(folder)
    assert ratings.values.tolist() == [
        [1, 1193, 5, 978300760],
        [1, 661, 3, 978302109],
        [2, 1193, 4, 978298413],
    ]
    assert movies[Col.ITEM].tolist() == [1193, 661, 2]
    assert movies[Col.TITLE].tolist()[2] == "Léon: The Professional (1994)"  # ':' inside a title
    assert movies[Col.YEAR].tolist() == [1975, 1996, 1994]
    assert movies[Col.GENRES].tolist()[1] == ["Animation", "Children", "Musical"]
    assert run_ingest(folder, tmp_path / "run")["facts"]["rating_scale"] == [1.0, 5.0]


def test_ml_10m_with_tags(tmp_path):
    folder = write_files(
        tmp_path / "ml-10M100K",
        {
            "ratings.dat": "1::122::5::838985046\n1::185::4.5::838983525\n2::122::0.5::838983421\n",
            "movies.dat": "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Crime|Thriller\n",
            "tags.dat": (
                "15::185::Sandra Bullock::1138537770\n20::185::sandra bullock::1138537771\n"
                "20::185::hacker::1138537772\n21::122::a::b::1138537773\n"
            ),
        },
    )
    assert detect_format(folder) == "ml-10m"
    ratings, movies = read_movielens(folder)
    assert ratings[Col.RATING].tolist() == [5.0, 4.5, 0.5]
    by_id = movies.set_index(Col.ITEM)
    assert by_id.loc[185, Col.TAGS] == "sandra bullock hacker"
    assert by_id.loc[122, Col.TAGS] == "a::b"
    facts = run_ingest(folder, tmp_path / "run")["facts"]
    assert facts["format"] == "ml-10m" and facts["rating_scale"] == [0.5, 5.0]


def test_dat_file_with_single_colons(tmp_path):
    folder = write_files(
        tmp_path / "ml-1m",
        {
            "ratings.dat": "1:1193:5:978300760\n",
            "movies.dat": "1193::A (1975)::Drama\n",
            "users.dat": "1::F\n",
        },
    )
    with pytest.raises(
        InputDataError, match=r"ratings.dat: line 1 .* column 'UserID' cannot be read"
    ):
        read_movielens(folder)


def test_truncated_dat_ratings(tmp_path):
    folder = write_files(
        tmp_path / "ml-1m",
        {
            "ratings.dat": "1::1193::5::978300760\n1::1193::",
            "movies.dat": "1193::A (1975)::Drama\n",
            "users.dat": "",
        },
    )
    with pytest.raises(InputDataError, match=r"ratings.dat: line 2 \(the last line\) .*truncated"):
        read_movielens(folder)
