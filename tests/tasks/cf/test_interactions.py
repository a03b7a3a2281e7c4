"""Tests for tasks/cf/_interactions.py: the rating CSR, the kept pairs and the active block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.cf import interactions, rating_matrix
from tasks.cf._interactions import active_parts, as_rating_csr, binary, interactions_fingerprint
from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.profile import CollabSection

TRAIN = pd.DataFrame(
    {
        Col.USER: np.array([1, 1, 2, 4], np.int32),
        Col.ITEM: np.array([20, 10, 20, 30], np.int32),
        Col.RATING: np.array([5.0, 1.0, 3.0, 1.5], np.float32),
        Col.TIMESTAMP: np.arange(4, dtype=np.int64),
    }
)
USERS = np.array([1, 2, 3, 4], np.int32)  # user 3: test-only
ITEMS = np.array([10, 20, 30, 40], np.int32)  # movie 40: never rated


def test_rating_matrix_is_the_shared_index():
    r = rating_matrix(TRAIN, USERS, ITEMS)
    assert r.dtype == np.float32 and r.has_sorted_indices and r.shape == (4, 4)
    assert r.toarray().tolist() == [[1, 5, 0, 0], [0, 3, 0, 0], [0, 0, 0, 0], [0, 0, 1.5, 0]]


def test_rating_matrix_refuses_duplicates_and_unknown_ids():
    with pytest.raises(InputDataError, match="duplicate"):
        rating_matrix(pd.concat([TRAIN, TRAIN.iloc[:1]]), USERS, ITEMS)
    with pytest.raises(InputDataError, match="user_id"):
        rating_matrix(TRAIN, USERS[:2], ITEMS)
    with pytest.raises(InputDataError, match="sorted"):
        rating_matrix(TRAIN, USERS, ITEMS[::-1])


def test_min_rating_drops_low_ratings_and_keeps_values():
    r = rating_matrix(TRAIN, USERS, ITEMS)
    x = interactions(r, CollabSection(min_rating=2.0))
    assert x.toarray().tolist() == [[0, 5, 0, 0], [0, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert interactions(r, CollabSection()).nnz == 4
    parts = active_parts(x)
    # movie 10 and 30 were only rated below 2: unknown now, like movie 40 and users 3, 4
    assert parts.item_known.tolist() == [False, True, False, False]
    assert parts.user_known.tolist() == [True, True, False, False]
    assert parts.matrix.toarray().tolist() == [[5], [3]]
    assert r.nnz == 4  # the input is not modified


def test_binary_and_fingerprint():
    r = rating_matrix(TRAIN, USERS, ITEMS)
    b = binary(r)
    assert b.dtype == np.float32 and set(b.data.tolist()) == {1.0}
    assert interactions_fingerprint(b) == interactions_fingerprint(r)
    assert interactions_fingerprint(
        interactions(r, CollabSection(min_rating=2.0))
    ) != interactions_fingerprint(r)


def test_as_rating_csr_canonicalises():
    coo = sp.coo_matrix((np.array([2.0, 1.0]), (np.array([1, 0]), np.array([0, 1]))), shape=(2, 2))
    m = as_rating_csr(coo, shape=(2, 2))
    assert isinstance(m, sp.csr_matrix) and m.dtype == np.float32 and m.has_canonical_format
    with pytest.raises(InputDataError, match="index has"):
        as_rating_csr(coo, shape=(3, 2))
    with pytest.raises(InputDataError, match="infinite"):
        as_rating_csr(sp.csr_matrix(np.array([[np.nan, 1.0]])))
