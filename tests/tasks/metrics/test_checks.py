"""Tests for tasks/metrics/_checks.py: bad inputs are rejected with a message, other sparse
forms of the relevance matrix give the same hits, and the chunked paths equal the unchunked."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.metrics import (
    _beyond,
    _checks,
    _uncertainty,
    beyond_accuracy_metrics,
    bootstrap_ci,
    hit_matrix,
    intra_list_diversity,
    n_relevant_per_user,
    precision_at_k,
    ranking_metrics,
    relevance_matrix,
    user_coverage,
)
from tests.tasks.metrics.reference import RECS, REL, random_instance


def test_chunked_paths_equal_unchunked(monkeypatch):
    recs, _, rel = random_instance(4, n_users=120, width=10)
    emb = np.random.default_rng(4).standard_normal((60, 5)).astype(np.float32)
    x = np.random.default_rng(5).random(120)
    whole = (
        hit_matrix(recs, rel),
        intra_list_diversity(recs, 10, emb),
        bootstrap_ci(x, n_boot=50, seed=1),
    )
    for module in (_checks, _beyond, _uncertainty):  # every module that chunks
        monkeypatch.setattr(module, "_CELLS_PER_CHUNK", 37)  # many small chunks
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
