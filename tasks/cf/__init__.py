"""Collaborative filtering: the CF part of the hybrid, any of four models behind one scorer.

Place in the pipeline: fitted on the training ratings after ``split`` (the ``collaborative``
stage, and the tuning search, which fits many of them), saved under ``models/cf/<role>/`` and
loaded by the ranking engine (:mod:`tasks.ranking`), which calls :meth:`CFModel.score_into` on
batches of users from two threads. Configuration: :class:`tasks.profile.CollabSection`.

Data: ``R`` = training rating CSR in the shared index (rows ``user_idx`` = sorted user ids of the
cohorts table, columns ``item_idx`` = the movie catalogue sorted by ``movie_id``;
:func:`rating_matrix`). ``X`` = the pairs with ``r_ui >= collab.min_rating`` (:func:`interactions`);
a user / item with no pair in X is unknown: score 0, ``user_known`` / ``item_known`` False.

- ``als`` (implicit): ``p_ui = 1`` on X, ``c_ui = 1 + confidence_alpha * w_ui``,
  ``w`` = 1 | r | log(1 + r) | BM25 | TF-IDF; ``s_ui = x_u . y_i``.
- ``ease`` (Steck 2019): ``B = I - P diag(1 / diag P)``, ``P = (X^T X + lambda I)^-1`` on binary X;
  ``s_u = X_u B``.
- ``item_knn`` (implicit's cosine / BM25 / TF-IDF neighbours): ``S`` = top ``knn_k`` of
  ``W^T W`` per item; ``s_u = X_u S``.
- ``puresvd``: ``X ~ U S V^T`` (truncated SVD of the kept ratings); ``s_ui = (U S)_u . V_i``.

Details and sources are in the private modules (``_als``, ``_ease``, ``_knn``, ``_svd``). implicit
runs only in an :class:`ImplicitWorker` process (its OpenMP is not fork-safe).
"""

from tasks.cf._fit import fit_cf
from tasks.cf._interactions import interactions, rating_matrix
from tasks.cf._io import FILES, load_cf_model, save_cf_model
from tasks.cf._model import CFModel
from tasks.cf._worker import ImplicitWorker, ImplicitWorkerError

__all__ = [
    "FILES",
    "CFModel",
    "ImplicitWorker",
    "ImplicitWorkerError",
    "fit_cf",
    "interactions",
    "load_cf_model",
    "rating_matrix",
    "save_cf_model",
]
