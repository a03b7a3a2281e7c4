"""Tests for tasks/ingest/_ml100k.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.ingest import detect_format, read_movielens
from tests.tasks.ingest.folders import ingest_error, run_ingest


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
