"""Tests for tasks/content/_neighbors.py: neighbours against brute force."""

from __future__ import annotations

import numpy as np

from tasks.content import exact_neighbors, item_neighbors, neighbor_recall
from tasks.content._neighbors import _top_columns


def _unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    z *= (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)  # decaying spectrum, like an SVD
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_neighbors_exact_equal_brute_force():
    e = _unit_rows(700, 24, seed=1)
    idx, sim, info = item_neighbors(e, 10, block_size=64)
    truth, truth_sim = exact_neighbors(e, np.arange(700), 10)
    assert info["neighbor_method"] == "exact"
    assert (idx != np.arange(700)[:, None]).all()  # never itself
    assert np.array_equal(idx, truth)
    assert np.allclose(sim, truth_sim, atol=1e-5)
    assert (np.diff(sim, axis=1) <= 1e-7).all()  # best first


def test_neighbors_two_step_recall_and_threads():
    e = _unit_rows(3000, 48, seed=2)[:, np.random.default_rng(9).permutation(48)]  # unordered dims
    idx, sim, info = item_neighbors(e, 20, block_size=512, exact=False, search_dims=16)
    assert info["neighbor_method"] == "two-step"
    assert (idx != np.arange(3000)[:, None]).all()
    # re-scored exactly: each reported similarity is the true cosine
    assert np.allclose(sim, np.einsum("nd,nkd->nk", e, e[idx]), atol=1e-5)
    rows = np.arange(0, 3000, 10)
    assert neighbor_recall(e, idx, rows) >= 0.9
    one_thread, _, _ = item_neighbors(
        e, 20, block_size=512, exact=False, search_dims=16, n_threads=1
    )
    assert np.array_equal(one_thread, idx)  # the same on any number of threads


def test_neighbors_tiny_catalogue_and_ties():
    e = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)  # three identical items
    idx, sim, _ = item_neighbors(e, 10, block_size=16)
    assert idx.shape == (4, 3)  # k capped at n - 1
    assert idx[0].tolist() == [1, 2, 3] and idx[2].tolist() == [0, 1, 3]  # ties: smaller idx first


def test_top_columns_keeps_every_top_entry_with_ties():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 50, size=(40, 5000)).astype(np.float32)  # heavy ties
    cand = _top_columns(scores, 30)
    for row in range(40):
        kth = np.sort(scores[row])[-30]
        need = set(np.flatnonzero(scores[row] > kth))
        assert need <= set(cand[row].tolist())
        assert len(set(cand[row].tolist()) & set(np.flatnonzero(scores[row] >= kth))) >= 30
