"""Tests for tasks/metrics.py: hand-computed cases, an independent per-user reference
implementation on random data, hypothesis properties, bootstrap and paired tests, tables."""

from __future__ import annotations

import math
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.metrics as metrics_module
from tasks.metrics import (
    METRICS_TABLE_COLUMNS,
    PAIRED_TESTS_COLUMNS,
    RANKING_METRICS,
    average_precision_at_k,
    beyond_accuracy_metrics,
    bootstrap_ci,
    bootstrap_many,
    catalog_coverage,
    hit_at_k,
    hit_matrix,
    intra_list_diversity,
    item_user_share,
    metrics_long_table,
    n_relevant_per_user,
    ndcg_at_k,
    novelty,
    paired_test,
    paired_tests_table,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    relevance_matrix,
    user_coverage,
)

LOG3 = math.log2(3)


# ----------------------------------------------------------------- independent reference
# Deliberately the straightforward way: Python sets and loops, one user at a time.


def reference_ranking(recs: np.ndarray, rel_sets: list[set[int]], k: int) -> dict[str, list]:
    out: dict[str, list] = {name: [] for name in RANKING_METRICS}
    for row, relevant in zip(recs, rel_sets, strict=True):
        top = [int(i) for i in row[:k] if i >= 0]
        hits = [item in relevant for item in top]
        n_hits = sum(hits)
        out["recall"].append(n_hits / len(relevant) if relevant else 0.0)
        out["precision"].append(n_hits / k)
        ap = 0.0
        for r, hit in enumerate(hits, start=1):
            if hit:
                ap += sum(hits[:r]) / r
        out["map"].append(ap / min(len(relevant), k) if relevant else 0.0)
        dcg = sum(1 / math.log2(r + 1) for r, hit in enumerate(hits, start=1) if hit)
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(relevant), k) + 1))
        out["ndcg"].append(dcg / idcg if idcg else 0.0)
        out["mrr"].append(next((1 / r for r, hit in enumerate(hits, start=1) if hit), 0.0))
        out["hit_rate"].append(1.0 if n_hits else 0.0)
    return out


def reference_novelty(recs, k, share, n_train_users):
    out = []
    for row in recs:
        top = [int(i) for i in row[:k] if i >= 0]
        values = [-math.log2(share[i] if share[i] > 0 else 1 / n_train_users) for i in top]
        out.append(sum(values) / len(values) if values else 0.0)
    return out


def reference_diversity(recs, k, emb):
    out = []
    for row in recs:
        top = [int(i) for i in row[:k] if i >= 0]
        if len(top) < 2:
            out.append(0.0)
            continue
        cosines = []
        for a in range(len(top)):
            for b in range(a + 1, len(top)):
                x, y = emb[top[a]].astype(float), emb[top[b]].astype(float)
                nx, ny = np.linalg.norm(x), np.linalg.norm(y)
                cosines.append(float(x @ y / (nx * ny)) if nx > 0 and ny > 0 else 0.0)
        out.append(1.0 - sum(cosines) / len(cosines))
    return out


def random_instance(seed: int, n_users: int = 300, n_items: int = 60, width: int = 20):
    """Random lists (distinct items, random lengths incl. empty) and relevant sets that share
    some items with the lists, some larger than the list, some empty."""
    rng = np.random.default_rng(seed)
    recs = np.full((n_users, width), -1, dtype=np.int64)
    rel_sets: list[set[int]] = []
    for u in range(n_users):
        length = int(rng.choice([0, width, rng.integers(1, width + 1)], p=[0.1, 0.5, 0.4]))
        recs[u, :length] = rng.permutation(n_items)[:length]
        n_rel = int(rng.integers(0, 2 * width))
        relevant = set(rng.choice(n_items, size=min(n_rel, n_items), replace=False).tolist())
        if length and rng.random() < 0.7:
            relevant |= set(rng.choice(recs[u, :length], size=min(3, length)).tolist())
        rel_sets.append(relevant)
    users = [u for u, s in enumerate(rel_sets) for _ in s]
    items = [i for s in rel_sets for i in s]
    return recs, rel_sets, relevance_matrix(users, items, n_users, n_items)


# ----------------------------------------------------------------- hand-computed cases

# The module's three-user example: user 0 |R| = 3 > K = 2 (hits at ranks 1 and 3), user 1
# hits at rank 2 with a 2-item list, user 2 has no list (and no hit).
RECS = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
REL = relevance_matrix([0, 0, 0, 1, 2], [0, 2, 5, 4, 1], n_users=3, n_items=6)


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


# ----------------------------------------------------------------- reference comparison


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


def test_chunked_paths_equal_unchunked(monkeypatch):
    recs, _, rel = random_instance(4, n_users=120, width=10)
    emb = np.random.default_rng(4).standard_normal((60, 5)).astype(np.float32)
    x = np.random.default_rng(5).random(120)
    whole = (
        hit_matrix(recs, rel),
        intra_list_diversity(recs, 10, emb),
        bootstrap_ci(x, n_boot=50, seed=1),
    )
    monkeypatch.setattr(metrics_module, "_CELLS_PER_CHUNK", 37)  # many small chunks
    chunked = (
        hit_matrix(recs, rel),
        intra_list_diversity(recs, 10, emb),
        bootstrap_ci(x, n_boot=50, seed=1),
    )
    assert np.array_equal(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1], chunked[1], atol=1e-6)
    # other chunking -> other random stream, same method: intervals close, mean identical
    assert whole[2][0] == chunked[2][0]
    assert abs(whole[2][1] - chunked[2][1]) < 0.1 and abs(whole[2][2] - chunked[2][2]) < 0.1


# ----------------------------------------------------------------- hypothesis properties


@st.composite
def instances(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    width = draw(st.integers(1, 6))
    recs = np.full((n_users, width), -1, dtype=np.int64)
    rel_sets = []
    for u in range(n_users):
        order = draw(st.permutations(range(n_items)))
        length = draw(st.integers(0, min(width, n_items)))
        recs[u, :length] = order[:length]
        rel_sets.append(draw(st.sets(st.integers(0, n_items - 1), max_size=n_items)))
    users = [u for u, s in enumerate(rel_sets) for _ in s]
    items = [i for s in rel_sets for i in s]
    return recs, rel_sets, relevance_matrix(users, items, n_users, n_items), n_items


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


# ----------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("recs", "match"),
    [
        (np.array([[0, 0, 1]]), "same item twice"),
        (np.array([[0, -1, 1]]), "padding must be trailing"),
        (np.array([[0, 6, 1]]), "n_items=6"),
        (np.array([[0, -2, 1]]), "negative item index"),
        (np.array([[0.0, 1.0, 2.0]]), "integer array"),
        (np.array([0, 1, 2]), "2-D"),
    ],
)
def test_bad_recs_are_rejected_with_a_message(recs, match):
    rel = relevance_matrix([0], [0], 1, 6)
    with pytest.raises(ValueError, match=match):
        hit_matrix(recs, rel)


def test_other_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="k=5 but recs has only 3 columns"):
        ranking_metrics(RECS, REL, ks=(5,))
    with pytest.raises(ValueError, match="only 3 columns"):
        user_coverage(RECS, 4)
    with pytest.raises(ValueError, match="positive integer"):
        precision_at_k(hit_matrix(RECS, REL), 0)
    with pytest.raises(ValueError, match="2 user rows"):
        hit_matrix(RECS[:2], REL)
    with pytest.raises(TypeError, match="scipy.sparse"):
        hit_matrix(RECS, REL.toarray())
    with pytest.raises(ValueError, match=r"item_idx must hold indices in \[0, n_items=6\)"):
        relevance_matrix([0], [6], 1, 6)
    with pytest.raises(ValueError, match="NaN or Inf"):
        intra_list_diversity(RECS, 2, np.full((6, 2), np.nan))
    with pytest.raises(ValueError, match="both item_user_share and n_train_users"):
        beyond_accuracy_metrics(RECS, (2,), item_user_share=np.zeros(6))


def test_relevance_input_in_other_sparse_forms_gives_the_same_hits():
    dense = REL.toarray()
    expected = hit_matrix(RECS, REL)
    as_coo = sp.coo_array(dense)
    assert np.array_equal(hit_matrix(RECS, as_coo), expected)
    # unsorted indices, a duplicate and an explicit stored False
    messy = sp.csr_matrix(
        (
            np.array([True, True, True, False, True, True]),
            np.array([5, 0, 2, 1, 4, 1]),
            np.array([0, 4, 5, 6]),
        ),
        shape=(3, 6),
    )
    messy.has_canonical_format = False
    assert np.array_equal(hit_matrix(RECS, messy), expected)
    assert n_relevant_per_user(messy).tolist() == [3, 1, 1]
    assert relevance_matrix([0, 0], [1, 1], 1, 2).nnz == 1


# ----------------------------------------------------------------- bootstrap


def test_bootstrap_equals_naive_index_resampling_with_the_same_draws():
    x = np.random.default_rng(7).random(50)
    mean, low, high = bootstrap_ci(x, n_boot=300, confidence=0.9, seed=11)
    rng = np.random.default_rng(11)
    draws = rng.integers(0, 50, size=(300, 50), dtype=np.int32)
    naive = x[draws].mean(axis=1)
    assert mean == pytest.approx(x.mean(), abs=1e-15)
    assert low == pytest.approx(np.quantile(naive, 0.05), abs=1e-12)
    assert high == pytest.approx(np.quantile(naive, 0.95), abs=1e-12)


def test_bootstrap_is_seeded_shared_across_metrics_and_sensible():
    rng = np.random.default_rng(0)
    hit = (rng.random(2000) < 0.3).astype(float)
    other = rng.random(2000)
    a = bootstrap_ci(hit, n_boot=500, seed=3)
    assert a == bootstrap_ci(hit, n_boot=500, seed=3)
    assert a != bootstrap_ci(hit, n_boot=500, seed=4)
    many = bootstrap_many({"other": other, ("hit_rate", 10): hit}, n_boot=500, seed=3)
    assert many["hit_rate", 10] == a
    mean, low, high = a
    assert low < mean < high
    half_width = 1.96 * math.sqrt(mean * (1 - mean) / hit.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    assert bootstrap_ci(np.full(10, 0.25), n_boot=50) == (0.25, 0.25, 0.25)


def test_bootstrap_memory_stays_bounded_for_many_users():
    x = np.random.default_rng(0).random(200_000)
    tracemalloc.start()
    try:
        bootstrap_ci(x, n_boot=40, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200e6


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        bootstrap_ci(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.array([0.1, 0.2]), confidence=95)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.array([0.1, 0.2]), n_boot=0)
    with pytest.raises(ValueError, match="different lengths"):
        bootstrap_many({"a": np.zeros(3), "b": np.zeros(4)})


# ----------------------------------------------------------------- paired tests


def test_paired_test_of_identical_policies_finds_nothing():
    x = np.random.default_rng(1).random(300)
    out = paired_test(x, x.copy(), n_boot=200, seed=0)
    assert out["mean_diff"] == 0 and out["ci_low"] == 0 and out["ci_high"] == 0
    assert out["p_value"] == 1.0 and out["wilcoxon_p"] == 1.0
    assert out["n_users"] == 300 and out["method"] == "paired bootstrap"


def test_paired_test_detects_a_clear_improvement_and_is_signed():
    rng = np.random.default_rng(2)
    base = rng.random(500)
    better = np.clip(base + 0.05 + 0.02 * rng.standard_normal(500), 0, 1)
    up = paired_test(better, base, n_boot=400, seed=0)
    assert up["mean_diff"] > 0 and up["ci_low"] > 0
    assert up["p_value"] == pytest.approx(1 / 401)
    assert up["wilcoxon_p"] < 1e-10
    down = paired_test(base, better, n_boot=400, seed=0)
    assert down["mean_diff"] == pytest.approx(-up["mean_diff"])
    assert down["ci_high"] < 0
    assert math.isnan(paired_test(base, better, n_boot=10, wilcoxon=False)["wilcoxon_p"])
    with pytest.raises(ValueError, match="same users"):
        paired_test(base, better[:-1])


def test_paired_test_p_value_is_large_when_the_means_are_equal():
    # Two policies that differ per user but not on average: nothing to detect.
    rng = np.random.default_rng(3)
    a, b = rng.random(400), rng.random(400)
    b = b - b.mean() + a.mean()  # equal means exactly
    assert paired_test(a, b, n_boot=400, seed=0)["p_value"] > 0.9


def test_paired_tests_table_rows_equal_paired_test_per_cohort():
    rng = np.random.default_rng(4)
    n = 240
    labels = np.array(["heavy", "cold", "light"])[rng.integers(0, 3, n)]
    model = {("recall", 10): rng.random(n), ("ndcg", 10): rng.random(n)}
    base = {("ndcg", 10): rng.random(n), ("recall", 10): rng.random(n)}
    table = paired_tests_table("tuned", "cf_only", labels, model, base, n_boot=100, seed=9)
    assert list(table.columns) == list(PAIRED_TESTS_COLUMNS)
    assert table["cohort"].drop_duplicates().tolist() == ["all", "cold", "light", "heavy"]
    for row in table.itertuples():
        members = np.arange(n) if row.cohort == "all" else np.flatnonzero(labels == row.cohort)
        key = (row.metric, row.k)
        single = paired_test(model[key][members], base[key][members], n_boot=100, seed=9)
        for field in ("mean_diff", "ci_low", "ci_high", "p_value", "wilcoxon_p", "n_users"):
            assert getattr(row, field) == pytest.approx(single[field], abs=1e-12), field
        assert row.model_value == pytest.approx(model[key][members].mean())
    with pytest.raises(ValueError, match="different metrics"):
        paired_tests_table("tuned", "cf_only", labels, model, {("recall", 10): base["recall", 10]})


# ----------------------------------------------------------------- long table


def test_metrics_long_table_layout_values_and_intervals():
    recs, _, rel = random_instance(6, n_users=200, width=10)
    per_user = ranking_metrics(recs, rel, ks=(5, 10))
    per_user.update(beyond_accuracy_metrics(recs, (5, 10)))
    labels = np.array(["medium", "cold", "heavy", "light", "simulated"])[np.arange(200) % 5]
    table = metrics_long_table(
        "hybrid", labels, per_user, n_boot=200, seed=5, recs=recs, n_items=60
    )
    assert list(table.columns) == list(METRICS_TABLE_COLUMNS)
    assert table["cohort"].drop_duplicates().tolist() == [
        "all",
        "cold",
        "light",
        "medium",
        "heavy",
        "simulated",
    ]
    assert len(table) == 6 * (len(per_user) + 2)
    assert table["k"].dtype == np.int64 and table["n_users"].dtype == np.int64
    assert set(table["model"]) == {"hybrid"}
    cold = np.flatnonzero(labels == "cold")
    row = table[(table.cohort == "cold") & (table.metric == "recall") & (table.k == 10)].iloc[0]
    assert row.value == pytest.approx(per_user["recall", 10][cold].mean())
    assert row.n_users == cold.size
    ci = bootstrap_many({"r": per_user["recall", 10][cold]}, n_boot=200, seed=5)["r"]
    assert (row.ci_low, row.ci_high) == pytest.approx(ci[1:])
    assert (table.ci_low <= table.value + 1e-12).all() and (
        table.value <= table.ci_high + 1e-12
    ).all()
    cat = table[(table.metric == "catalog_coverage") & (table.cohort == "all")]
    assert cat["k"].tolist() == [5, 10]
    assert cat["value"].tolist() == [catalog_coverage(recs, 5, 60), catalog_coverage(recs, 10, 60)]
    assert (cat.ci_low == cat.value).all() and (cat.ci_high == cat.value).all()


def test_metrics_long_table_rejects_bad_labels():
    per_user = {("recall", 5): np.zeros(3)}
    with pytest.raises(ValueError, match="reserved"):
        metrics_long_table("m", ["all", "cold", "cold"], per_user, n_boot=10)
    with pytest.raises(ValueError, match="2 cohort labels"):
        metrics_long_table("m", ["cold", "cold"], per_user, n_boot=10)
    with pytest.raises(ValueError, match="strings"):
        metrics_long_table("m", ["cold", None, "cold"], per_user, n_boot=10)
    with pytest.raises(ValueError, match="both recs and n_items"):
        metrics_long_table("m", ["cold"] * 3, per_user, n_boot=10, recs=RECS)


def test_metrics_table_of_a_model_is_a_dataframe_that_concatenates():
    per_user = {("hit_rate", 2): np.array([1.0, 1.0, 0.0])}
    tables = [
        metrics_long_table(name, ["cold", "cold", "heavy"], per_user, n_boot=20)
        for name in ("a", "b")
    ]
    both = pd.concat(tables, ignore_index=True)
    assert both.groupby("model").size().tolist() == [3, 3]
