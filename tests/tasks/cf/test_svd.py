"""Tests for tasks/cf/_svd.py: PureSVD reproduces a low-rank matrix exactly, and pads tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf import fit_cf
from tasks.cf._svd import fit_puresvd
from tasks.errors import InputDataError
from tasks.profile import CollabSection


def test_rank_two_matrix_is_reconstructed():
    rng = np.random.default_rng(0)
    r = np.round(rng.random((12, 2)) @ rng.random((2, 9)) * 4 + 0.5, 0)  # dense, positive
    low_rank = rng.random((12, 3)) @ rng.random((3, 9))  # rank 3
    x = sp.csr_matrix(low_rank.astype(np.float32))
    user, item = fit_puresvd(x, CollabSection(factors=3), seed=0)
    np.testing.assert_allclose(user @ item.T, low_rank, rtol=1e-4, atol=1e-4)
    model = fit_cf(
        sp.csr_matrix(r.astype(np.float32)),
        np.arange(12),
        np.arange(9),
        CollabSection(model="puresvd", factors=8),
        seed=0,
    )
    assert model.user_factors.shape == (12, 8)  # rank cut to 8 = min(12, 9) - 1, no padding needed


def test_tiny_data_is_padded_or_refused():
    x = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 4.0]], np.float32))
    user, item = fit_puresvd(x, CollabSection(factors=5), seed=0)
    assert user.shape == (2, 5) and item.shape == (3, 5) and not user[:, 1:].any()
    with pytest.raises(InputDataError, match="PureSVD needs"):
        fit_puresvd(sp.csr_matrix(np.ones((1, 3), np.float32)), CollabSection(), seed=0)
