"""Tests for tasks/charts/_distribution.py."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.charts import recall_distribution_chart
from tests.tasks.charts.tables import assert_png


def test_recall_distribution_chart(tables, tmp_path):
    _, _, recall10 = tables
    assert_png(recall_distribution_chart(recall10, tmp_path / "d.png"), 12.0, 5.0)
    assert_png(recall_distribution_chart({}, tmp_path / "empty.png"), 8.0, 4.5)
    with pytest.raises(ValueError, match="outside"):
        recall_distribution_chart({"ease": np.array([0.1, np.nan])}, tmp_path / "bad.png")
