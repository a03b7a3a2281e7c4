"""Tests for tasks/ingest.py: every MovieLens layout, the real ml-latest-small, and bad inputs.

Every bad input must raise InputDataError whose message names the file and the column (the CLI
prints it and exits 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.errors import InputDataError
from tasks.ingest import (
    MOVIES_SCHEMA,
    RATINGS_SCHEMA,
    canonical_from_synthetic,
    detect_format,
    ingest_core,
    ingest_data,
    read_movielens,
    source_fingerprint,
)
from tasks.profile import DataSection, IngestSection, RunProfile, SyntheticSection

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
    profile = RunProfile(data=DataSection(source="movielens"), ingest=IngestSection(**ingest))
    return ingest_core(profile, str(data_dir), str(run_dir))


def ingest_error(data_dir: Path, tmp_path: Path) -> str:
    with pytest.raises(InputDataError) as err:
        run_ingest(data_dir, tmp_path / "run")
    assert not (tmp_path / "run" / "data" / "ratings.parquet").exists()
    return str(err.value)


# ---------------------------------------------------------------------------------------------
# the real ml-latest-small


def test_real_ml_latest_small(ml_small_dir):
    assert detect_format(ml_small_dir) == "ml-latest"
    ratings, movies = read_movielens(ml_small_dir)
    assert len(ratings) == 100_836
    assert ratings[Col.USER].nunique() == 610
    assert len(movies) == 9_742
    assert list(ratings.columns) == [Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    assert [str(t) for t in ratings.dtypes] == ["int32", "int32", "float32", "int64"]
    assert list(movies.columns) == [
        Col.ITEM,
        Col.TITLE,
        Col.YEAR,
        Col.GENRES,
        Col.TAGS,
        Col.PROVIDERS,
    ]
    assert str(movies[Col.YEAR].dtype) == "Int32"

    raw = pd.read_csv(ml_small_dir / "movies.csv")
    raw_labels = {g for text in raw["genres"] for g in text.split("|")}
    assert len(raw_labels) == 20 and "(no genres listed)" in raw_labels
    canonical = {g for genres in movies[Col.GENRES] for g in genres}
    assert canonical == set(MOVIELENS_GENRES)  # the 19 genres; "(no genres listed)" -> []
    n_empty = sum(len(g) == 0 for g in movies[Col.GENRES])
    assert n_empty == (raw["genres"] == "(no genres listed)").sum() > 0

    assert movies[Col.YEAR].notna().mean() > 0.995
    toy = movies.set_index(Col.ITEM).loc[1]
    assert toy[Col.TITLE] == "Toy Story (1995)" and toy[Col.YEAR] == 1995
    assert toy[Col.TAGS] == "pixar fun"  # tags.csv: pixar, pixar, fun -> most frequent first
    assert (movies[Col.TAGS] != "").sum() == pd.read_csv(ml_small_dir / "tags.csv")[
        "movieId"
    ].nunique()
    assert all(len(p) == 0 for p in movies[Col.PROVIDERS])


def test_real_data_ingest_core_writes_validated_parquet(ml_small_dir, tmp_path):
    result = run_ingest(ml_small_dir, tmp_path)
    facts = result["facts"]
    assert facts["format"] == "ml-latest"
    assert (facts["n_ratings"], facts["n_users"], facts["n_movies"]) == (100_836, 610, 9_742)
    assert facts["rating_scale"] == [0.5, 5.0]
    assert facts["validation"]["ratings"]["success"] and facts["validation"]["movies"]["success"]
    assert facts["validation"]["ratings"]["skipped"] == []
    ratings_ref, movies_ref = result["artifacts"]["ratings"], result["artifacts"]["movies"]
    assert ratings_ref.path == tmp_path / "data" / "ratings.parquet"
    assert pq.read_schema(ratings_ref.path).remove_metadata() == RATINGS_SCHEMA
    assert pq.read_schema(movies_ref.path).remove_metadata() == MOVIES_SCHEMA
    assert pq.read_metadata(movies_ref.path).num_rows == 9_742


# ---------------------------------------------------------------------------------------------
# the other layouts, from tiny hand-written files in their exact formats


ML100K_GENRE = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\n"
    "Drama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\n"
    "Thriller|16\nWar|17\nWestern|18\n\n"
)


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


@pytest.fixture
def ml100k_dir(tmp_path) -> Path:
    u_item = (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{flags(3, 4, 5)}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?GoldenEye%20(1995)|{flags(1, 2, 16)}\n"
        f"3|Amélie|01-Jan-2001||http://us.imdb.com/M/title-exact?Amelie|{flags(5, 14)}\n"
        f"267|unknown||||{flags(0)}\n"
    )
    return write_files(
        tmp_path / "ml-100k",
        {
            "u.data": "196\t1\t3\t881250949\n186\t2\t3\t891717742\n22\t3\t1\t878887116\n196\t3\t5\t881250950\n",
            "u.item": u_item.encode("latin-1"),
            "u.genre": ML100K_GENRE,
            "u.user": "1|24|M|technician|85711\n",
        },
    )


def test_ml_100k(ml100k_dir, tmp_path):
    assert detect_format(ml100k_dir) == "ml-100k"
    ratings, movies = read_movielens(ml100k_dir)
    assert ratings[Col.USER].tolist() == [196, 186, 22, 196]
    assert ratings[Col.RATING].tolist() == [3.0, 3.0, 1.0, 5.0]
    assert ratings[Col.TIMESTAMP].dtype == np.int64
    by_id = movies.set_index(Col.ITEM)
    assert by_id.loc[1, Col.GENRES] == ["Animation", "Children", "Comedy"]  # Children's -> Children
    assert by_id.loc[2, Col.GENRES] == ["Action", "Adventure", "Thriller"]
    assert by_id.loc[3, Col.TITLE] == "Amélie"  # latin-1 decoded
    assert by_id.loc[3, Col.YEAR] == 2001  # no year in the title: from the release date
    assert by_id.loc[267, Col.GENRES] == [] and pd.isna(by_id.loc[267, Col.YEAR])
    facts = run_ingest(ml100k_dir, tmp_path / "run")["facts"]
    assert facts["format"] == "ml-100k" and facts["rating_scale"] == [1.0, 5.0]


def test_ml_100k_whole_star_scale_rejects_half_stars(ml100k_dir, tmp_path):
    (ml100k_dir / "u.data").write_text("196\t1\t3.5\t881250949\n")
    message = ingest_error(ml100k_dir, tmp_path)
    assert "u.data" in message and "column 'rating'" in message
    assert "not a step of the scale [1.0, 2.0, 3.0, 4.0, 5.0]" in message and "line 1:" in message


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


def test_providers_and_tags_enrich_movies(tmp_path):
    folder = latest_dir(
        tmp_path, providers_csv="movieId,provider\n3,Netflix\n1,Max\n3,Hulu\n3,Netflix\n99,Max\n"
    )
    _, movies = read_movielens(folder)
    by_id = movies.set_index(Col.ITEM)
    assert by_id.loc[3, Col.PROVIDERS] == ["Netflix", "Hulu"]
    assert by_id.loc[1, Col.PROVIDERS] == ["Max"] and by_id.loc[5, Col.PROVIDERS] == []
    assert by_id.loc[1, Col.TAGS] == "pixar fun" and by_id.loc[5, Col.TAGS] == ""
    assert (
        by_id.loc[3, Col.TITLE] == "American President, The (1995)"
        and by_id.loc[5, Col.GENRES] == []
    )


def test_source_fingerprint_covers_the_files_read(tmp_path):
    folder = latest_dir(tmp_path)
    first = source_fingerprint(folder)
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n")  # not read
    assert source_fingerprint(folder) == first
    (folder / "tags.csv").write_text(TAGS_CSV + "5,5,new,1445714999\n")
    assert source_fingerprint(folder) != first


def test_synthetic_round_trip_through_the_movielens_reader(tmp_path):
    from tasks.synthetic import generate_synthetic, write_movielens_format

    data = generate_synthetic(SyntheticSection(n_users=40, n_movies=60, n_ratings=900), seed=3)
    ratings, movies = canonical_from_synthetic(data)
    write_movielens_format(data, tmp_path / "synth")
    read_ratings, read_movies = read_movielens(tmp_path / "synth")
    pd.testing.assert_frame_equal(read_ratings, ratings)
    # the reader lower-cases tags (the canonical contract); the generator keeps their case
    movies[Col.TAGS] = movies[Col.TAGS].str.lower()
    pd.testing.assert_frame_equal(read_movies, movies)

    profile = RunProfile(synthetic=SyntheticSection(n_users=40, n_movies=60, n_ratings=900))
    facts = ingest_core(profile, None, str(tmp_path / "run"))["facts"]
    assert facts["format"] == "synthetic" and facts["n_ratings"] == 900 and facts["n_users"] == 40


def test_stage_task_shell_runs_the_core_under_its_budget(tmp_path):
    folder = latest_dir(tmp_path)
    output = ingest_data.fn(
        DataSection(source="movielens"), None, IngestSection(), 0, source_fingerprint(folder),
        str(folder), str(tmp_path / "run"), 60.0,
    )  # fmt: skip
    assert output.stage == "ingest" and output.facts["n_ratings"] == 3
    assert output.ref("movies").path.exists() and output.peak_rss_bytes > 0


# ---------------------------------------------------------------------------------------------
# bad inputs: each names the file, the column, the problem and the fix


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


def test_empty_ratings_file(tmp_path):
    folder = latest_dir(tmp_path, ratings_csv="")
    message = ingest_error(folder, tmp_path)
    assert (
        "ratings.csv: the file is empty (0 bytes)" in message
        and "userId,movieId,rating,timestamp" in message
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
