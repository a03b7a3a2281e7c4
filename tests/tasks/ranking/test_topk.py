"""Tests for tasks/ranking/_topk.py: the exact per-row top-k with the tie rule (value desc, then
column asc) equals a full sort, on both of its paths (small rows: exact keys; wide rows: the
sampled threshold) and with ties, -inf, NaN, +inf, -0.0 and rows shorter than k."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.ranking import top_k_columns
from tasks.ranking._topk import order_keys, select_top, top_by_key


def full_sort_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: a full stable sort of each row by (value desc, column asc); NaN and -inf
    are never selected; -1 / -inf pad."""
    b = len(scores)
    idx = np.full((b, k), -1, np.int64)
    val = np.full((b, k), -np.inf, np.float32)
    for r in range(b):  # the reference is a plain per-row loop on purpose
        row = scores[r]
        cols = np.flatnonzero(~np.isnan(row) & (row > -np.inf))
        order = cols[np.lexsort((cols, -row[cols].astype(np.float64)))][:k]
        idx[r, : len(order)] = order
        val[r, : len(order)] = row[order]
    return idx, val


def tie_heavy_scores(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    s = np.round(rng.standard_normal((b, n)), 1).astype(np.float32)  # heavy ties
    s[0, :] = -np.inf  # nothing selectable
    s[1, n - 10 :] = 9.0  # ties at the top
    s[2, : n - 5] = -np.inf  # fewer finite entries than k
    s[3] = 5.0  # all equal: ties everywhere
    s[4, rng.choice(n, n // 3, replace=False)] = np.nan
    s[5, rng.choice(n, 3, replace=False)] = np.inf  # +inf is the best value
    s[6, ::2] = -0.0  # -0.0 ties with 0.0
    s[6, 1::2] = 0.0
    s[7, : n // 2] = np.nan  # NaN and -inf mixed
    s[7, n // 2 :: 3] = -np.inf
    return s


@pytest.mark.parametrize("n", [30, 97, 5000])  # exact path (n <= 8k), sampled path (n > 8k)
@pytest.mark.parametrize("k", [1, 7, 20])
def test_top_k_columns_equals_a_full_sort_with_the_tie_rule(n, k):
    rng = np.random.default_rng(n * 100 + k)
    s = tie_heavy_scores(rng, 40, n)
    idx, val = top_k_columns(s, k)
    want_idx, want_val = full_sort_top_k(s, k)
    assert idx.dtype == np.int32 and val.dtype == np.float32
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(val, want_val)


@pytest.mark.parametrize("stride", [2, 8, 64])
def test_sample_stride_and_the_mask_buffer_do_not_change_the_answer(stride):
    rng = np.random.default_rng(stride)
    s = tie_heavy_scores(rng, 12, 3000)
    buffer = np.empty((16, 3000), bool)
    idx, _ = top_k_columns(s, 25, stride=stride, mask_buffer=buffer)
    np.testing.assert_array_equal(idx, full_sort_top_k(s, 25)[0])


def test_unordered_top_k_is_the_same_set():
    rng = np.random.default_rng(4)
    s = tie_heavy_scores(rng, 20, 4000)
    idx, val = top_k_columns(s, 30, ordered=False)
    want, _ = full_sort_top_k(s, 30)
    for r in range(len(s)):
        assert sorted(idx[r].tolist()) == sorted(want[r].tolist())
        ok = idx[r] >= 0
        np.testing.assert_array_equal(val[r][ok], s[r, idx[r][ok]])


def test_empty_inputs_and_k_wider_than_the_row():
    idx, val = top_k_columns(np.zeros((0, 10), np.float32), 3)
    assert idx.shape == (0, 3) and val.shape == (0, 3)
    idx, _ = top_k_columns(np.ones((2, 10), np.float32), 0)
    assert idx.shape == (2, 0)
    s = np.array([[0.5, np.nan, 0.5, 1.0]], np.float32)
    assert top_k_columns(s, 6)[0].tolist() == [[3, 0, 2, -1, -1, -1]]


def test_order_keys_rank_by_value_then_smaller_index():
    v = np.array([0.5, 0.5, 1.0, -np.inf, np.nan, -0.0, 0.0], np.float32)
    idx = np.arange(len(v))
    keys = order_keys(v, idx)
    order = np.argsort(~keys, kind="stable")  # ~key: larger key first, the pad key last
    assert order[:5].tolist() == [2, 0, 1, 5, 6]  # -0.0 and 0.0 tie: smaller index first
    assert keys[3] == keys[4] == np.iinfo(np.int64).min  # -inf and NaN: the pad key
    assert order_keys(np.array([1.0], np.float32), np.array([-1]))[0] == np.iinfo(np.int64).min


def test_top_by_key_and_select_top_pick_the_best_with_ties_to_the_smaller_index():
    rng = np.random.default_rng(9)
    v = rng.integers(0, 5, size=(30, 40)).astype(np.float32)
    idx = np.broadcast_to(np.arange(40), v.shape)
    want, _ = full_sort_top_k(v, 6)
    got = top_by_key(order_keys(v, idx), 6)
    np.testing.assert_array_equal(got, want)
    chosen = select_top(v, idx, 6)  # in no particular order
    np.testing.assert_array_equal(np.sort(chosen, axis=1), np.sort(want, axis=1))


@pytest.mark.parametrize("k", [1, 10, 50])
def test_rows_of_mostly_zeros_take_the_positives_then_the_first_zero_columns(k):
    """An item kNN row: a few positive scores, thousands of zeros (mass ties at the threshold)."""
    rng = np.random.default_rng(k)
    s = np.zeros((70, 20000), np.float32)
    for r in range(70):
        n_pos = r % 15  # 0..14 positives: fewer and more than k
        s[r, rng.choice(20000, n_pos, replace=False)] = rng.random(n_pos).astype(np.float32)
    s[::5, :300] = -np.inf  # excluded (seen) items before the first zeros
    s[3, 17] = np.nan
    idx, val = top_k_columns(s, k)
    want_idx, want_val = full_sort_top_k(s, k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(val, want_val)
