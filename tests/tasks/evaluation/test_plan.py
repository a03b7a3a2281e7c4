"""Who is evaluated (every user with a relevant test item, or a seeded sample) and the checkpoint
key (inputs and settings change it; nothing else does)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.columns import Col
from tasks.evaluation import evaluation_plan, part_key
from tasks.io import ArtifactRef


def test_evaluation_plan_counts_users_with_a_relevant_item():
    test = pd.DataFrame(
        {Col.USER: [7, 7, 14, 21], Col.ITEM: [3, 6, 3, 9], Col.RELEVANT: [True, False, False, True]}
    )
    cohorts = pd.DataFrame({Col.USER: [7, 14, 21], Col.COHORT: ["light", "heavy", "cold"]})
    plan = evaluation_plan(np.array([7, 14, 21]), np.array([3, 6, 9]), test, cohorts, 2)
    assert plan.users.tolist() == [0, 2]
    assert plan.eligible == {"all": 2, "cold": 1, "light": 1, "medium": 0, "heavy": 0}
    assert plan.n_batches == 1 and plan.batch(0).tolist() == [0, 2]
    with pytest.raises(ValueError, match="not in models/item_index.parquet"):
        evaluation_plan(np.array([7, 14, 21]), np.array([3, 6]), test, cohorts, 2)


def test_a_sample_is_seeded_and_only_when_asked():
    users = np.arange(1, 101)
    test = pd.DataFrame({Col.USER: users, Col.ITEM: np.ones(100, int), Col.RELEVANT: True})
    cohorts = pd.DataFrame({Col.USER: users, Col.COHORT: "light"})
    full = evaluation_plan(users, np.array([1]), test, cohorts, 10)
    a = evaluation_plan(users, np.array([1]), test, cohorts, 10, sample_users=20, seed=3)
    b = evaluation_plan(users, np.array([1]), test, cohorts, 10, sample_users=20, seed=3)
    assert len(full.users) == 100 and len(a.users) == 20 and a.users.tolist() == b.users.tolist()


def test_part_key_changes_with_inputs_and_settings(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    ref_a, ref_b = ArtifactRef.of(tmp_path, "a.txt"), ArtifactRef.of(tmp_path, "b.txt")
    base = part_key({"x": ref_a}, {"ks": [10]}, {})
    assert base == part_key({"x": ref_a}, {"ks": [10]}, {})
    assert base != part_key({"x": ref_b}, {"ks": [10]}, {})
    assert base != part_key({"x": ref_a}, {"ks": [5, 10]}, {})
