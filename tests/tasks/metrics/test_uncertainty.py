"""Tests for tasks/metrics/_uncertainty.py: the bootstrap equals naive resampling, is seeded
and shared across metrics, stays small in memory; paired tests find what is there and only that."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from tasks.metrics import bootstrap_ci, bootstrap_many, paired_test


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
