"""Tests for tasks/metrics/_beyond.py: coverage, novelty and diversity on hand-computed
cases, against the per-user reference, and within their ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.metrics import (
    beyond_accuracy_metrics,
    catalog_coverage,
    intra_list_diversity,
    item_user_share,
    novelty,
    user_coverage,
)
from tests.tasks.metrics.reference import (
    RECS,
    instances,
    random_instance,
    reference_diversity,
    reference_novelty,
)


def test_beyond_accuracy_on_the_three_user_example():
    assert user_coverage(RECS, 3).tolist() == [1.0, 0.0, 0.0]
    assert user_coverage(RECS, 2).tolist() == [1.0, 1.0, 0.0]
    assert catalog_coverage(RECS, 3, 6) == pytest.approx(5 / 6)
    assert catalog_coverage(RECS, 1, 10) == pytest.approx(2 / 10)
    share = np.array([0.5, 0.25, 0.25, 0.0, 1.0, 0.5])
    # item 3 was never rated: share 1/4 stands in, -log2(1/4) = 2
    assert novelty(RECS, 2, share, n_train_users=4).tolist() == [1.5, 1.0, 0.0]
    assert novelty(RECS, 3, share, n_train_users=4).tolist() == pytest.approx([5 / 3, 1.0, 0.0])
    emb = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [2, 0], [0, 1]], dtype=np.float32)
    ild = intra_list_diversity(RECS, 3, emb)
    np.testing.assert_allclose(ild, [1 - (0 + 2 * 2**-0.5) / 3, 0.0, 0.0], atol=1e-6)


def test_diversity_edge_cases_single_item_zero_vectors_and_integer_embeddings():
    recs = np.array([[0, -1, -1], [0, 1, 2], [1, 2, -1]])
    emb = np.array([[3, 4], [0, 0], [6, 8]])  # integer input; item 1 has no embedding
    ild = intra_list_diversity(recs, 3, emb)
    # one item: no pair -> 0; zero vector has cosine 0 with everything: pairs (0,1)=0,
    # (0,2)=1, (1,2)=0 -> mean 1/3; pair (1,2) -> cosine 0 -> diversity 1
    np.testing.assert_allclose(ild, [0.0, 2 / 3, 1.0], atol=1e-6)


def test_item_user_share_counts_distinct_users_and_honours_n_users():
    share = item_user_share([0, 0, 1, 1, 1], [2, 2, 2, 0, 0], n_items=4)
    assert share.tolist() == [0.5, 0.0, 1.0, 0.0]
    assert item_user_share([0, 1], [1, 1], n_items=2, n_users=8).tolist() == [0.0, 0.25]
    with pytest.raises(ValueError, match="n_users=1"):
        item_user_share([0, 1], [1, 1], n_items=2, n_users=1)


def test_beyond_accuracy_equal_the_per_user_reference_on_random_data():
    recs, _, _ = random_instance(3, n_users=200, n_items=60, width=12)
    rng = np.random.default_rng(3)
    share = np.where(rng.random(60) < 0.2, 0.0, rng.random(60))
    emb = rng.standard_normal((60, 7))
    emb[5] = 0.0
    ks = (2, 5, 12)
    out = beyond_accuracy_metrics(recs, ks, item_user_share=share, n_train_users=50, embeddings=emb)
    for k in ks:
        np.testing.assert_allclose(out["novelty", k], reference_novelty(recs, k, share, 50))
        np.testing.assert_allclose(
            out["intra_list_diversity", k], reference_diversity(recs, k, emb), atol=1e-9
        )
        expected_cov = [float(all(i >= 0 for i in row[:k])) for row in recs]
        assert out["user_coverage", k].tolist() == expected_cov
        distinct = {int(i) for row in recs for i in row[:k] if i >= 0}
        assert catalog_coverage(recs, k, 60) == len(distinct) / 60


@settings(max_examples=40, deadline=None)
@given(instances(), st.integers(0, 2**32 - 1))
def test_diversity_and_novelty_stay_in_their_ranges(instance, seed):
    recs, _, _, n_items = instance
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_items, 4))  # signed: cosines may be negative
    share = rng.integers(0, 21, n_items) / 20  # as item_user_share makes it for 20 users
    k = recs.shape[1]
    ild = intra_list_diversity(recs, k, emb)
    assert np.all((ild >= 0) & (ild <= 2))
    np.testing.assert_allclose(ild, reference_diversity(recs, k, emb), atol=1e-9)
    nov = novelty(recs, k, share, n_train_users=20)
    assert np.all((nov >= 0) & (nov <= math.log2(20) + 1e-12))
