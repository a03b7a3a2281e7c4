"""Tests for tasks/cf/_als.py: the confidence matrix of every scheme, and a reproducible fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf import fit_cf
from tasks.cf._als import BM25_B, BM25_K1, confidence_matrix
from tasks.profile import CollabSection

#: 3 users x 4 items; user 2 rated every item.
R = np.array(
    [
        [4.0, 0.0, 1.0, 0.0],
        [0.0, 5.0, 2.0, 0.0],
        [3.0, 0.5, 4.0, 2.0],
    ],
    np.float32,
)
ALPHA = 2.0


def expected_weights(scheme: str) -> np.ndarray:
    """w_ui from the formulas of the tasks/cf/_als.py docstring, written out with numpy."""
    on = R > 0
    n_u = on.sum(axis=1)  # items per user
    n_i = on.sum(axis=0)  # users per item
    idf_u = np.log(R.shape[1]) - np.log1p(n_u)  # items are the documents, users the terms
    if scheme == "binary":
        w = np.ones_like(R)
    elif scheme == "linear":
        w = R.astype(np.float64)
    elif scheme == "log":
        w = np.log1p(R.astype(np.float64))
    elif scheme == "tfidf":
        w = np.broadcast_to(idf_u[:, None], R.shape)
    else:  # bm25 on binary data: tf = 1
        length_norm = (1 - BM25_B) + BM25_B * n_i / n_i.mean()
        w = idf_u[:, None] * (BM25_K1 + 1) / (BM25_K1 * length_norm[None, :] + 1)
    return np.where(on, np.maximum(w, 0.0), 0.0)


@pytest.mark.parametrize("scheme", ["binary", "linear", "log", "bm25", "tfidf"])
def test_confidence_matrix_is_one_plus_alpha_w(scheme):
    cfg = CollabSection(confidence=scheme, confidence_alpha=ALPHA)
    c = confidence_matrix(sp.csr_matrix(R), cfg)
    assert c.dtype == np.float32 and c.nnz == int((R > 0).sum())  # same pairs, no explicit drops
    expected = np.where(R > 0, 1.0 + ALPHA * expected_weights(scheme), 0.0)
    np.testing.assert_allclose(c.toarray(), expected, rtol=1e-6)
    assert (c.data >= 1.0).all()  # implicit reads a stored value <= 0 as a negative


def test_user_with_every_item_gets_confidence_one_under_tfidf():
    # idf_u = log 4 - log 5 < 0 for user 2 (rated all 4 items): clipped, so c = 1, still a positive
    c = confidence_matrix(
        sp.csr_matrix(R), CollabSection(confidence="tfidf", confidence_alpha=ALPHA)
    )
    assert np.allclose(c.toarray()[2], 1.0)


def test_alpha_zero_gives_plain_positives():
    c = confidence_matrix(
        sp.csr_matrix(R), CollabSection(confidence="linear", confidence_alpha=0.0)
    )
    assert np.array_equal(c.toarray(), (R > 0).astype(np.float32))


@pytest.mark.parametrize("confidence", ["linear", "bm25"])
def test_fit_is_reproducible_for_a_seed(confidence, make_ratings, implicit_worker):
    ratings = make_ratings(30, 25, 0.3, seed=2)
    ids_u, ids_i = np.arange(30), np.arange(25)
    cfg = CollabSection(model="als", factors=4, iterations=5, confidence=confidence)
    a = fit_cf(ratings, ids_u, ids_i, cfg, seed=11, worker=implicit_worker)
    b = fit_cf(ratings, ids_u, ids_i, cfg, seed=11, worker=implicit_worker)
    c = fit_cf(ratings, ids_u, ids_i, cfg, seed=12, worker=implicit_worker)
    assert np.array_equal(a.user_factors, b.user_factors)
    assert np.array_equal(a.item_factors, b.item_factors)
    assert not np.array_equal(a.user_factors, c.user_factors)
    assert a.user_factors.shape == (30, 4) and a.user_factors.dtype == np.float32


def test_one_shot_worker_when_none_is_given(make_ratings):
    ratings = make_ratings(12, 10, 0.4, seed=3)
    model = fit_cf(
        ratings,
        np.arange(12),
        np.arange(10),
        CollabSection(model="als", factors=3, iterations=3),
        seed=0,
    )
    assert model.info["worker_start_s"] > 0
    assert np.isfinite(model.user_factors).all()
