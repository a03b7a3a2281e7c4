"""Tests for tasks/ingest/_stage.py: the core writes validated parquet, the synthetic source
round-trips through the MovieLens reader, the task shell runs the core under its budget."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.ingest import (
    MOVIES_SCHEMA,
    RATINGS_SCHEMA,
    canonical_from_synthetic,
    ingest_core,
    ingest_data,
    read_movielens,
    source_fingerprint,
)
from tasks.profile import DataSection, IngestSection, RunProfile, SyntheticSection
from tests.tasks.ingest.folders import latest_dir, run_ingest


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
        DataSection(source="movielens"), None, IngestSection(min_users=0), 0,
        source_fingerprint(folder),
        str(folder), str(tmp_path / "run"), 60.0,
    )  # fmt: skip
    assert output.stage == "ingest" and output.facts["n_ratings"] == 3
    assert output.ref("movies").path.exists() and output.peak_rss_bytes > 0


def test_too_few_users_to_train_and_test_is_refused_before_anything_is_written(tmp_path):
    folder = latest_dir(tmp_path)  # 3 ratings: at most one user has two of them
    with pytest.raises(InputDataError, match=r"ingest\.min_users") as err:
        run_ingest(folder, tmp_path / "run", min_users=2)
    assert "ratings.csv" in str(err.value) and "--set ingest.min_users=N" in str(err.value)
    assert not (tmp_path / "run" / "data").exists()
