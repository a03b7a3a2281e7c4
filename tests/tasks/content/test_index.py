"""Tests for tasks/content/_index.py."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.content import ids_to_index
from tasks.errors import InputDataError


def test_ids_to_index_rejects_unknown_ids():
    assert ids_to_index(np.array([2, 5, 9]), np.array([9, 2, 5]), what="movie_id").tolist() == [
        2,
        0,
        1,
    ]
    with pytest.raises(InputDataError, match="not in the index"):
        ids_to_index(np.array([2, 5, 9]), np.array([5, 6]), what="movie_id")
    # the lookup-table path for long inputs gives the same answer and the same error
    ids = np.array([3, 10, 11, 400], np.int32)
    values = ids[np.random.default_rng(0).integers(0, 4, 200_000)]
    assert np.array_equal(ids_to_index(ids, values, what="movie_id"), np.searchsorted(ids, values))
    for bad in (401, 4, -1):
        with pytest.raises(InputDataError, match=rf"e\.g\. \[{bad}\]"):
            ids_to_index(ids, np.append(values, bad), what="movie_id")
