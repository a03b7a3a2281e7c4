"""Tests for tasks/cf/_knn.py: the similarity and the scores are implicit's own.

The reference runs implicit's recommenders in a fresh interpreter (their fit is an OpenMP loop,
which must not run in the test process: later tests fork).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf import fit_cf
from tasks.profile import CollabSection

K = 8
WEIGHTINGS = ("cosine", "bm25", "tfidf")

_REFERENCE = r"""
import sys
import numpy as np, scipy.sparse as sp
from threadpoolctl import threadpool_limits
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
folder, k = sys.argv[1], int(sys.argv[2])
x = sp.load_npz(folder + "/x.npz").tocsr()
kinds = {"cosine": CosineRecommender, "bm25": BM25Recommender, "tfidf": TFIDFRecommender}
out = {}
with threadpool_limits(1, "blas"):
    for name, cls in kinds.items():
        model = cls(K=k, num_threads=1)
        model.fit(x, show_progress=False)
        ids, scores = model.recommend(
            np.arange(x.shape[0]), x, N=x.shape[1], filter_already_liked_items=False
        )
        s = model.similarity.tocsr()
        s.eliminate_zeros()
        out[name + "_ids"], out[name + "_scores"] = ids, scores
        out[name + "_similarity"] = s.toarray()
np.savez(folder + "/reference.npz", **out)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_ratings):
    ratings = make_ratings(40, 30, 0.25, seed=11)
    binary = (ratings > 0).astype(np.float32).tocsr()
    folder = tmp_path_factory.mktemp("knn-reference")
    sp.save_npz(folder / "x.npz", binary)
    subprocess.run(
        [sys.executable, "-P", "-c", _REFERENCE, str(folder), str(K)], check=True, timeout=120
    )
    with np.load(folder / "reference.npz") as ref:
        reference = dict(ref)
    return ratings, reference


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_similarity_and_scores_are_implicits(weighting, data, implicit_worker):
    ratings, ref = data
    n_users, n_items = ratings.shape
    cfg = CollabSection(model="item_knn", knn_k=K, knn_weighting=weighting)
    model = fit_cf(
        ratings, np.arange(n_users), np.arange(n_items), cfg, seed=0, worker=implicit_worker
    )
    assert model.item_known.all() and model.info["similarity_nnz"] <= K * n_items
    np.testing.assert_allclose(
        model.similarity.toarray(), ref[f"{weighting}_similarity"], rtol=1e-5, atol=1e-7
    )

    scores = model.scores(np.arange(n_users))
    ids, their = ref[f"{weighting}_ids"], ref[f"{weighting}_scores"]
    compared_top = 0
    for u in range(n_users):
        valid = ids[u] >= 0  # implicit returns only the items the user's likes reach
        np.testing.assert_allclose(scores[u, ids[u, valid]], their[u, valid], rtol=1e-5, atol=1e-6)
        unreached = np.setdiff1d(np.arange(n_items), ids[u, valid])
        assert not scores[u, unreached].any()
        # the same top items in the same order (where implicit's order is not a tie)
        top = their[u, valid][:6]
        if np.all(np.diff(top) < -1e-5):
            assert np.argsort(-scores[u], kind="stable")[:6].tolist() == ids[u, :6].tolist()
            compared_top += 1
    assert compared_top >= n_users // 2  # most users have no ties among their first six


def test_knn_keeps_k_neighbours_per_item(data, implicit_worker):
    ratings, _ = data
    cfg = CollabSection(model="item_knn", knn_k=3)
    model = fit_cf(
        ratings,
        np.arange(ratings.shape[0]),
        np.arange(ratings.shape[1]),
        cfg,
        seed=0,
        worker=implicit_worker,
    )
    assert (np.diff(model.similarity.indptr) <= 3).all()
    assert model.similarity.dtype == np.float32
