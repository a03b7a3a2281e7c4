"""Tests for tasks/validation.py: suites load from expectations/, failures are readable and blocking."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.columns import COHORTS, Col
from tasks.errors import InputDataError
from tasks.validation import (
    EXPECTATIONS_DIR,
    _duplicate_flags,
    format_failures,
    load_suite,
    require_valid,
    suite_names,
    suite_parameters,
    validate_table,
)

WHOLE_STARS = {"rating_min": 1.0, "rating_max": 5.0, "rating_values": [1.0, 2.0, 3.0, 4.0, 5.0]}


def ratings_frame(users, items, ratings, stamps=None) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame(
        {
            Col.USER: np.asarray(users, dtype=np.int32),
            Col.ITEM: np.asarray(items, dtype=np.int32),
            Col.RATING: np.asarray(ratings, dtype=np.float32),
            Col.TIMESTAMP: np.asarray(
                stamps if stamps is not None else [964_982_703] * n, dtype=np.int64
            ),
        }
    )


def movies_frame(ids) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            Col.ITEM: np.asarray(ids, dtype=np.int32),
            Col.TITLE: pd.Series([f"Movie {i} (1999)" for i in ids], dtype="str"),
            Col.YEAR: pd.array([1999] * n, dtype="Int32"),
            Col.GENRES: [["Drama"] for _ in ids],
            Col.TAGS: pd.Series([""] * n, dtype="str"),
            Col.PROVIDERS: [[] for _ in ids],
        }
    )


MOVIES = movies_frame([1, 2, 3])


def failed_types(summary) -> list[tuple[str, str]]:
    return [(f["expectation"], f["column"]) for f in summary["failed"]]


def test_every_suite_loads_with_all_its_expectations():
    names = suite_names()
    assert {"ratings", "movies", "train", "test", "cohorts"} <= set(names)
    for name in names:
        raw = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
        suite = load_suite(name)
        assert suite.name == name
        assert len(suite.expectations) == len(raw["expectations"]) > 0
        # the JSON round-trips through GX (suites live as files)
        assert len(suite.to_json_dict()["expectations"]) == len(raw["expectations"])


def test_parameters_defaults_and_overrides():
    params = suite_parameters("ratings", {"rating_min": 1.0, "not_a_parameter": 3})
    assert params["rating_min"] == 1.0 and params["rating_max"] == 5.0
    assert "not_a_parameter" not in params
    assert suite_parameters("cohorts")["cohorts"] == list(COHORTS)
    with pytest.raises(ValueError, match="no expectation suite 'nope'"):
        suite_parameters("nope")


def test_valid_ratings_pass_with_a_json_able_summary():
    df = ratings_frame([1, 1, 2], [1, 2, 1], [4.0, 3.5, 5.0])
    summary = validate_table(df, "ratings", source="ratings.csv", references={"movies": MOVIES})
    assert summary["success"], format_failures(summary)
    assert summary["evaluated"] == len(load_suite("ratings").expectations)
    assert summary["skipped"] == [] and summary["failed"] == []
    json.dumps(summary)  # goes into the stage's facts


def test_rating_out_of_range_names_the_column_the_lines_and_the_fix():
    df = ratings_frame([1, 1, 2, 3], [1, 2, 1, 3], [4.0, 7.0, 3.0, 0.0])
    summary = validate_table(
        df, "ratings", source="data/ratings.csv", references={"movies": MOVIES}, line_offset=2
    )
    assert not summary["success"]
    between = [
        f for f in summary["failed"] if f["expectation"] == "expect_column_values_to_be_between"
    ]
    assert len(between) == 1 and between[0]["column"] == Col.RATING
    assert between[0]["unexpected_count"] == 2
    message = between[0]["message"]
    assert "column 'rating'" in message and "2 of 4 rows outside [0.5, 5.0]" in message
    assert "line 3: user_id=1, movie_id=2, rating=7.0" in message and "line 5:" in message
    assert "Fix:" in message


def test_examples_point_at_the_right_rows_when_the_index_is_not_0_to_n():
    df = ratings_frame([1, 1, 2, 3], [1, 2, 1, 3], [4.0, 3.0, 3.0, 9.0])
    df.index = [40, 10, 30, 20]  # e.g. a filtered or shuffled table
    summary = validate_table(
        df, "ratings", source="x", references={"movies": MOVIES}, line_offset=2
    )
    between = next(
        f for f in summary["failed"] if f["expectation"] == "expect_column_values_to_be_between"
    )
    assert between["examples"] == ["line 5: user_id=3, movie_id=3, rating=9.0, timestamp=964982703"]


def test_scale_is_a_parameter_whole_stars_reject_half_stars():
    df = ratings_frame([1, 2], [1, 1], [3.5, 4.0])
    assert validate_table(df, "ratings", source="x", references={"movies": MOVIES})["success"]
    summary = validate_table(
        df, "ratings", source="x", parameters=WHOLE_STARS, references={"movies": MOVIES}
    )
    assert failed_types(summary) == [("expect_column_values_to_be_in_set", Col.RATING)]
    assert "not a step of the scale [1.0, 2.0, 3.0, 4.0, 5.0]" in summary["failed"][0]["message"]


def test_duplicate_pairs_and_unknown_movies_are_gx_checks_on_derived_columns():
    df = ratings_frame(
        [1, 2, 1, 2], [1, 9, 1, 2], [4.0, 3.0, 2.0, 5.0]
    )  # (1, 1) twice, movie 9 unknown
    summary = validate_table(
        df, "ratings", source="r.csv", references={"movies": MOVIES}, line_offset=2
    )
    by_column = {f["column"]: f for f in summary["failed"]}
    assert set(by_column) == {"user_id, movie_id", Col.ITEM}
    dup = by_column["user_id, movie_id"]
    assert (
        dup["unexpected_count"] == 2 and "line 2" in dup["message"] and "line 4" in dup["message"]
    )
    unknown = by_column[Col.ITEM]
    assert "1 of 4 ratings refer to movies missing from the movies table" in unknown["message"]
    assert "movie_id=9" in unknown["message"]


def test_duplicate_flags_sorted_fast_path_and_unsorted():
    assert not _duplicate_flags(np.array([1, 2, 5, 9], dtype=np.int64)).any()
    flags = _duplicate_flags(np.array([5, 1, 5, 3, 1, 7], dtype=np.int64))
    assert flags.tolist() == [True, True, True, False, True, False]
    assert _duplicate_flags(np.array([], dtype=np.int64)).size == 0


def test_a_missing_reference_is_reported_as_skipped_not_silently_passed():
    summary = validate_table(ratings_frame([1], [1], [4.0]), "ratings", source="x")
    assert summary["success"]
    assert {"column": "movie_known", "reason": "no reference table 'movies' given"} in summary[
        "skipped"
    ]


def test_missing_column_and_wrong_dtype_are_schema_failures():
    df = ratings_frame([1, 2], [1, 2], [4.0, 3.0]).drop(columns=[Col.RATING])
    df[Col.USER] = df[Col.USER].astype("int64")
    summary = validate_table(df, "ratings", source="ratings.csv", references={"movies": MOVIES})
    messages = "\n".join(f["message"] for f in summary["failed"])
    assert "missing column(s) 'rating'" in messages
    assert "column 'user_id': has dtype int64, expected int32" in messages
    # row checks on the missing column are skipped, not crashed
    assert any(s["column"] == Col.RATING for s in summary["skipped"])


def test_millisecond_timestamps_get_a_hint():
    df = ratings_frame([1, 2], [1, 2], [4.0, 3.0], stamps=[964_982_703_000, 964_982_800_000])
    with pytest.raises(InputDataError) as err:
        require_valid(df, "ratings", source="ratings.csv", references={"movies": MOVIES})
    text = str(err.value)
    assert text.startswith("ratings.csv: 1 of 16 expectations of suite 'ratings' failed")
    assert "column 'timestamp'" in text and "looks like milliseconds, divide by 1000" in text


def test_distribution_checks_run_on_a_seeded_sample_of_big_tables(tmp_path, monkeypatch):
    suite = {
        "name": "mean_check",
        "expectations": [
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "rating", "min_value": {"$PARAMETER": "lo"}, "max_value": 5.0},
                "meta": {"scope": "sample"},
            }
        ],
        "meta": {"parameters": {"lo": {"default": 4.5}}},
    }
    (tmp_path / "mean_check.json").write_text(json.dumps(suite))
    monkeypatch.setattr("tasks.validation.EXPECTATIONS_DIR", tmp_path)
    assert suite_names() == ["mean_check"]
    n = 3000
    df = ratings_frame(np.arange(n), np.ones(n), np.full(n, 4.0))
    summary = validate_table(df, "mean_check", source="x", sample_rows=1000)
    (failure,) = summary["failed"]
    assert failure["scope"] == "sample" and failure["column"] == Col.RATING
    assert "mean 4 is outside [4.5, 5.0] (on a seeded sample of 1,000 rows)" in failure["message"]
    assert validate_table(df, "mean_check", source="x", parameters={"lo": 3.0})["success"]


def test_empty_table_fails_the_row_count():
    summary = validate_table(
        ratings_frame([], [], []), "ratings", source="ratings.csv", references={"movies": MOVIES}
    )
    assert ("expect_table_row_count_to_be_between", None) in failed_types(summary)
    assert "the table has 0 rows" in format_failures(summary)


def test_movies_suite_checks_ids_years_and_list_columns():
    movies = movies_frame([1, 2, 2])
    movies[Col.YEAR] = pd.array([1999, 3020, None], dtype="Int32")
    movies[Col.GENRES] = [["Drama"], "Drama|Comedy", []]
    summary = validate_table(movies, "movies", source="movies.csv", line_offset=2)
    assert set(failed_types(summary)) == {
        ("expect_column_values_to_be_unique", Col.ITEM),
        ("expect_column_values_to_be_between", Col.YEAR),
        ("expect_column_values_to_be_in_set", Col.GENRES),
    }
    assert validate_table(movies_frame([1, 2]), "movies", source="m")["success"]


def test_test_suite_flags_pairs_leaking_from_train():
    train = ratings_frame([1, 1], [1, 2], [4.0, 3.0])
    test = ratings_frame([1, 2], [2, 1], [5.0, 4.0])
    test[Col.RELEVANT] = test[Col.RATING] >= 4.0
    summary = validate_table(
        test, "test", source="test.parquet", references={"movies": MOVIES, "train": train}
    )
    assert [f["column"] for f in summary["failed"]] == ["user_id, movie_id"]
    assert (
        "1 of 2 held-out (user_id, movie_id) pairs also occur in train"
        in summary["failed"][0]["message"]
    )
    train_summary = validate_table(
        train, "train", source="train.parquet", references={"movies": MOVIES}
    )
    assert train_summary["success"]


def test_validation_suite_flags_pairs_leaking_from_train_fit():
    train_fit = ratings_frame([1, 1], [1, 2], [4.0, 3.0])
    validation = ratings_frame([1, 2], [2, 1], [5.0, 4.0])
    validation[Col.RELEVANT] = validation[Col.RATING] >= 4.0
    summary = validate_table(
        validation, "validation", source="v", references={"movies": MOVIES, "train_fit": train_fit}
    )
    assert [f["column"] for f in summary["failed"]] == ["user_id, movie_id"]
    message = summary["failed"][0]["message"]
    assert "1 of 2 validation (user_id, movie_id) pairs also occur in train_fit" in message
    validation = validation.iloc[[1]]
    assert validate_table(
        validation, "validation", source="v", references={"movies": MOVIES, "train_fit": train_fit}
    )["success"]


def test_cohorts_suite():
    cohorts = pd.DataFrame(
        {
            Col.USER: np.array([1, 2, 3], dtype=np.int32),
            Col.N_TRAIN: np.array([0, 12, 300], dtype=np.int32),
            Col.COHORT: pd.Series(["cold", "light", "heavy"], dtype="str"),
            Col.SIMULATED_COLD: np.array([False, True, False]),
            Col.N_TRAIN_FIT: np.array([0, 9, 240], dtype=np.int32),
            Col.COHORT_FIT: pd.Series(["cold", "light", "heavy"], dtype="str"),
        }
    )
    assert validate_table(cohorts, "cohorts", source="c")["success"]
    cohorts.loc[1, Col.COHORT] = "warm"
    summary = validate_table(cohorts, "cohorts", source="c")
    assert failed_types(summary) == [("expect_column_values_to_be_in_set", Col.COHORT)]
    assert "warm" in summary["failed"][0]["message"]
    cohorts.loc[1, Col.COHORT] = "light"
    cohorts.loc[2, Col.N_TRAIN_FIT] = 301  # more in train_fit than in train
    summary = validate_table(cohorts, "cohorts", source="c")
    assert failed_types(summary) == [
        ("expect_column_pair_values_a_to_be_greater_than_b", Col.N_TRAIN_FIT)
    ]
    assert "n_train_fit > n_train" in summary["failed"][0]["message"]


def test_an_unknown_expectation_type_is_an_error_not_silently_dropped(tmp_path, monkeypatch):
    suite = {
        "name": "typo",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_valuez_to_be_unique", "kwargs": {"column": "a"}},
        ],
    }
    (tmp_path / "typo.json").write_text(json.dumps(suite))
    monkeypatch.setattr("tasks.validation.EXPECTATIONS_DIR", tmp_path)
    with pytest.raises((RuntimeError, ValueError), match="typo"):
        validate_table(pd.DataFrame({"a": [1]}), "typo", source="x")
