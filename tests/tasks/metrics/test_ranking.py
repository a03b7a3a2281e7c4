"""Tests for tasks/metrics/_ranking.py: hand-computed cases, the per-user reference on random
data and hypothesis properties of the ranking metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.metrics import (
    RANKING_METRICS,
    average_precision_at_k,
    beyond_accuracy_metrics,
    catalog_coverage,
    hit_at_k,
    hit_matrix,
    n_relevant_per_user,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    relevance_matrix,
)
from tests.tasks.metrics.reference import (
    LOG3,
    RECS,
    REL,
    instances,
    random_instance,
    reference_ranking,
)


def test_hit_matrix_and_counts_on_the_three_user_example():
    assert hit_matrix(RECS, REL).tolist() == [
        [True, False, True],
        [False, True, False],
        [False, False, False],
    ]
    assert n_relevant_per_user(REL).tolist() == [3, 1, 1]


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (
            1,
            {
                "recall": [1 / 3, 0, 0],
                "precision": [1, 0, 0],
                "map": [1, 0, 0],  # |R| = 3 > K = 1: divided by min(3, 1) = 1
                "ndcg": [1, 0, 0],
                "mrr": [1, 0, 0],
                "hit_rate": [1, 0, 0],
            },
        ),
        (
            2,
            {
                "recall": [1 / 3, 1, 0],
                "precision": [1 / 2, 1 / 2, 0],
                "map": [1 / 2, 1 / 2, 0],
                "ndcg": [1 / (1 + 1 / LOG3), 1 / LOG3, 0],
                "mrr": [1, 1 / 2, 0],
                "hit_rate": [1, 1, 0],
            },
        ),
        (
            3,
            {
                "recall": [2 / 3, 1, 0],
                "precision": [2 / 3, 1 / 3, 0],  # user 1's list is short: still divided by 3
                "map": [(1 + 2 / 3) / 3, 1 / 2, 0],
                "ndcg": [(1 + 1 / 2) / (1 + 1 / LOG3 + 1 / 2), 1 / LOG3, 0],
                "mrr": [1, 1 / 2, 0],
                "hit_rate": [1, 1, 0],
            },
        ),
    ],
)
def test_ranking_metrics_match_hand_computed_values(k, expected):
    out = ranking_metrics(RECS, REL, ks=(k,))
    for name, values in expected.items():
        np.testing.assert_allclose(out[name, k], values, rtol=0, atol=1e-12, err_msg=name)


def test_single_metric_functions_match_hand_computed_values():
    hits = hit_matrix(RECS, REL)
    n_rel = n_relevant_per_user(REL)
    np.testing.assert_allclose(recall_at_k(hits, n_rel, 3), [2 / 3, 1, 0])
    np.testing.assert_allclose(precision_at_k(hits, 3), [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(average_precision_at_k(hits, n_rel, 3), [5 / 9, 1 / 2, 0])
    np.testing.assert_allclose(ndcg_at_k(hits, n_rel, 2), [1 / (1 + 1 / LOG3), 1 / LOG3, 0])
    np.testing.assert_allclose(reciprocal_rank_at_k(hits, 2), [1, 1 / 2, 0])
    np.testing.assert_allclose(hit_at_k(hits, 1), [1, 0, 0])


def test_a_perfect_list_longer_relevant_set_scores_one_on_map_and_ndcg():
    # |R| = 5 > K = 3 and the three items shown are all relevant: AP and NDCG use min(|R|, K).
    recs = np.array([[4, 2, 0]])
    rel = relevance_matrix([0] * 5, [0, 1, 2, 3, 4], 1, 5)
    out = ranking_metrics(recs, rel, ks=(3,))
    assert out["map", 3].tolist() == [1.0]
    assert out["ndcg", 3].tolist() == [1.0]
    assert out["precision", 3].tolist() == [1.0]
    assert out["recall", 3].tolist() == [0.6]


def test_users_without_relevant_items_or_lists_score_zero_without_warnings():
    recs = np.array([[0, 1], [-1, -1], [2, -1]])
    rel = relevance_matrix([2], [0], 3, 3)  # users 0 and 1 have |R| = 0, user 2 no hit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ranking_metrics(recs, rel, ks=(1, 2))
        assert all(values.tolist() == [0.0, 0.0, 0.0] for values in out.values())
        hits = hit_matrix(recs, rel)
        n_rel = n_relevant_per_user(rel)
        assert recall_at_k(hits, n_rel, 2).tolist() == [0.0, 0.0, 0.0]
        assert average_precision_at_k(hits, n_rel, 2).tolist() == [0.0, 0.0, 0.0]
        assert ndcg_at_k(hits, n_rel, 2).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_equal_the_per_user_reference_on_random_data(seed):
    recs, rel_sets, rel = random_instance(seed)
    ks = (1, 3, 5, 10, 20)
    out = ranking_metrics(recs, rel, ks=ks)
    hits = hit_matrix(recs, rel)
    n_rel = n_relevant_per_user(rel)
    assert n_rel.tolist() == [len(s) for s in rel_sets]
    singles = {
        "recall": lambda k: recall_at_k(hits, n_rel, k),
        "precision": lambda k: precision_at_k(hits, k),
        "map": lambda k: average_precision_at_k(hits, n_rel, k),
        "ndcg": lambda k: ndcg_at_k(hits, n_rel, k),
        "mrr": lambda k: reciprocal_rank_at_k(hits, k),
        "hit_rate": lambda k: hit_at_k(hits, k),
    }
    for k in ks:
        expected = reference_ranking(recs, rel_sets, k)
        for name in RANKING_METRICS:
            np.testing.assert_allclose(out[name, k], expected[name], atol=1e-12, err_msg=name)
            np.testing.assert_allclose(singles[name](k), expected[name], atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(instances())
def test_every_metric_is_in_unit_interval_and_matches_reference(instance):
    recs, rel_sets, rel, n_items = instance
    ks = tuple(range(1, recs.shape[1] + 1))
    out = ranking_metrics(recs, rel, ks=ks)
    for (name, k), values in out.items():
        assert values.shape == (recs.shape[0],)
        assert np.all((values >= 0) & (values <= 1)), (name, k, values)
        np.testing.assert_allclose(values, reference_ranking(recs, rel_sets, k)[name], atol=1e-12)
    emb = np.abs(np.random.default_rng(0).standard_normal((n_items, 3)))
    beyond = beyond_accuracy_metrics(recs, ks, embeddings=emb)
    for (name, k), values in beyond.items():
        assert np.all((values >= 0) & (values <= 1)), (name, k, values)
    for k in ks:
        assert 0 <= catalog_coverage(recs, k, n_items) <= 1


@settings(max_examples=80, deadline=None)
@given(instances())
def test_recall_hit_rate_and_hit_count_never_decrease_with_k(instance):
    recs, _, rel, _ = instance
    ks = tuple(range(1, recs.shape[1] + 1))
    out = ranking_metrics(recs, rel, ks=ks)
    for name in ("recall", "hit_rate"):
        stacked = np.column_stack([out[name, k] for k in ks])
        assert np.all(np.diff(stacked, axis=1) >= 0), name
    n_hits = np.column_stack([out["precision", k] * k for k in ks])
    assert np.all(np.diff(n_hits, axis=1) >= -1e-12)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_a_list_holding_exactly_the_relevant_items_scores_one(data):
    n_users = data.draw(st.integers(1, 5))
    n_items = data.draw(st.integers(1, 15))
    width = data.draw(st.integers(1, min(8, n_items)))
    recs = np.full((n_users, width), -1, dtype=np.int64)
    users, items, sizes = [], [], []
    for u in range(n_users):
        size = data.draw(st.integers(1, width))
        chosen = data.draw(st.permutations(range(n_items)))[:size]
        recs[u, :size] = chosen  # the list IS R_u, in any order
        users += [u] * size
        items += list(chosen)
        sizes.append(size)
    out = ranking_metrics(recs, relevance_matrix(users, items, n_users, n_items), ks=(width,))
    for name in ("recall", "map", "ndcg", "mrr", "hit_rate"):
        assert out[name, width].tolist() == [1.0] * n_users, name
    np.testing.assert_allclose(out["precision", width], np.array(sizes) / width)
