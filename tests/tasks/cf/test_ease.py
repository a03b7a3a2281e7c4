"""Tests for tasks/cf/_ease.py: EASE equals its closed form, zero diagonal, refusal above the limit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf import fit_cf
from tasks.cf._ease import check_ease_size, ease_weights, gram_matrix
from tasks.errors import InputDataError
from tasks.profile import CollabSection


def ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """B = I - P diag(1/diag P), P = (X^T X + lam I)^-1, straight from the paper with numpy."""
    p = np.linalg.inv(x.T.astype(np.float64) @ x + lam * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p / np.diag(p)[None, :]


@pytest.mark.parametrize("block", [3, 1024])  # blocked (3 rows at a time) and one block
@pytest.mark.parametrize("lam", [0.5, 25.0])
def test_ease_weights_equal_the_closed_form(block, lam):
    rng = np.random.default_rng(4)
    x = (rng.random((40, 17)) < 0.3).astype(np.float32)
    x[0, :] = 1.0  # every item has a pair
    weights = ease_weights(sp.csr_matrix(x), lam, block=block)
    assert weights.dtype == np.float32 and weights.shape == (17, 17)
    np.testing.assert_allclose(weights, ease_reference(x, lam), rtol=1e-5, atol=1e-6)
    assert not np.diag(weights).any()


def test_gram_matrix_blocks():
    x = sp.random(30, 11, density=0.3, random_state=2, format="csr", dtype=np.float32)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(gram_matrix(x, block=4), (x64.T @ x64).toarray(), rtol=1e-12)


def test_fit_uses_the_binary_matrix_of_active_items(make_ratings):
    ratings = make_ratings(25, 12, 0.3, seed=5).tolil()
    ratings[:, 4] = 0  # an item nobody rated
    ratings = ratings.tocsr()
    ratings.eliminate_zeros()
    cfg = CollabSection(model="ease", ease_lambda=3.0)
    model = fit_cf(ratings, np.arange(25), np.arange(12), cfg, seed=0)
    active = np.array([i for i in range(12) if i != 4])
    x = (ratings.toarray() > 0).astype(np.float32)[:, active]
    expected = np.zeros((25, 12))
    expected[:, active] = x @ ease_reference(x, 3.0)
    np.testing.assert_allclose(model.scores(np.arange(25)), expected, rtol=1e-4, atol=1e-5)
    assert model.info["ease_items"] == 11 and not model.item_known[4]


def test_refused_above_ease_max_items(make_ratings):
    ratings = make_ratings(20, 30, 0.5, seed=1)
    cfg = CollabSection(model="ease", ease_max_items=29)
    with pytest.raises(InputDataError, match=r"collab\.ease_max_items = 29") as err:
        fit_cf(ratings, np.arange(20), np.arange(30), cfg, seed=0)
    message = str(err.value)
    assert "30 items" in message and "GiB" in message and "'als' or 'item_knn'" in message
    check_ease_size(30, CollabSection(ease_max_items=30))  # at the limit: allowed
    with pytest.raises(InputDataError, match=r"about 4\.5 GiB"):
        check_ease_size(20_000, CollabSection(ease_max_items=10_000))
