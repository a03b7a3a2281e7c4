"""Special users as one-user views of the arrays, and the z-scale bound of a served list."""

from __future__ import annotations

import numpy as np

from tasks.edge_cases._serving import list_summary, score_facts, serve_view, user_view
from tasks.edge_cases.cpu_time import heavy_catalogue


def test_scores_are_bounded_by_the_square_root_of_the_pool_size():
    """A z-score over n values is at most sqrt(n - 1): the score, a weighted mean of them, too."""
    z = np.array([3.0, -1.0, -1.0, -1.0])  # the largest z-score 4 values can hold: sqrt(3)
    z = (z - z.mean()) / z.std()
    assert abs(z).max() <= np.sqrt(len(z) - 1) + 1e-9
    assert score_facts(z, len(z))["scores_finite_z_bounded"]
    assert not score_facts(np.array([2.5]), 4)["scores_finite_z_bounded"]  # > sqrt(4)
    assert not score_facts(np.array([np.nan, 0.1]), 100)["scores_finite_z_bounded"]


def test_a_user_view_keeps_a_trained_cf_row_only_when_asked(make_context):
    ctx = make_context()
    arrays = heavy_catalogue(400, seed=1)
    items, ratings = np.array([3, 10, 50]), np.array([5.0, 4.0, 1.0])
    fresh, uid = user_view(ctx, items, ratings, arrays=arrays)
    kept, _ = user_view(ctx, items, ratings, arrays=arrays, factors_of=0)
    assert uid == 2 and fresh.seen.nnz == 3 and (fresh.exclude != fresh.seen).nnz == 0
    assert not fresh.user_has_factors[0] and kept.user_has_factors[0]
    out = np.empty((1, arrays.n_items), np.float32)
    assert np.allclose(kept.cf.score_into(np.array([0]), out), arrays.cf.scores(np.array([0])))
    assert np.abs(fresh.profiles[0]).sum() > 0  # two liked items: a taste profile
    assert fresh.seed_items[0, :2].tolist() == [3, 10]  # best rated first
    result = serve_view(ctx, kept, 10)
    facts = list_summary(arrays, kept, result, 0, 10)
    assert facts["list_length"] == 10 and facts["seen_in_list"] == 0
    assert facts["scores_finite_z_bounded"], facts
