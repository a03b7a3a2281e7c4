"""Sorting and ties: the tie-break on a hand-built catalogue (score order and MMR), and the
category's scenarios on the shared real run."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.edge_cases import run_scenarios
from tasks.edge_cases.sorting_ties import scenarios, tied_arrays
from tasks.profile import CandidatesSection, PolicySection
from tasks.ranking import RankingPolicy, rank_batch


@pytest.mark.parametrize("lambda_div", [0.0, 0.25])
def test_tied_items_come_in_ascending_movie_id_order(lambda_div):
    policy = RankingPolicy.from_profile(CandidatesSection(lambda_div=lambda_div), PolicySection())
    arrays = tied_arrays()
    result = rank_batch(arrays, np.array([0]), policy, k=10)
    scores = result["score"][0]
    assert np.unique(scores).size == 1  # every item ties
    unseen = [i for i in range(arrays.n_items) if i not in (0, 5, 7)]
    assert result["item_idx"][0].tolist() == unseen[:10]


def test_sorting_scenarios_pass_on_the_real_run(real_context):
    results = run_scenarios(scenarios(), real_context, time_limit=120)
    assert {r.id: r.unmet for r in results if not r.passed} == {}
    k_large = next(r for r in results if r.id == "k_larger_than_candidates").observed
    assert k_large["list_length"] == min(k_large["pool_size"], k_large["mmr_pool"]) < k_large["k"]
