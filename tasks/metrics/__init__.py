"""Metrics: ranking accuracy, beyond-accuracy, bootstrap intervals and paired tests.

Place in the pipeline: the arithmetic behind stages 7 (tuning) and 8 (offline metrics).
:mod:`tasks.evaluation` produces the top-K lists of a batch of users and calls the functions
here; this package knows nothing about files, Prefect or models. Every function works on whole
arrays for all users of a batch at once (no per-user Python loop), so all 200k test users of
ML-32M are scored in seconds. Measured on the shared 2-core dev machine (200k users x K = 50
over 87,585 items, 1.2M relevant pairs; CPU time, wall time about twice that under load):
hit lookup 0.3 s, :func:`ranking_metrics` at K in {5, 10, 20, 50} 0.5 s, user coverage +
novelty + 384-d intra-list diversity at the four K 4.5 s, catalog coverage 0.2 s, a
1000-resample bootstrap 1.4 s (one metric) to 2.2 s (36 metrics sharing the resamples).

Definitions (DESIGN.md "Evaluation definitions"). For user u with held-out relevant items R_u
and top-K list L_u (items already seen in training removed by the caller), rank r = 1..K:

- Recall@K    = |L_u ∩ R_u| / |R_u|
- Precision@K = |L_u ∩ R_u| / K                         (a list shorter than K is penalised)
- AP@K        = sum_{r <= K, item r in R_u} Precision@r / min(|R_u|, K);  MAP@K = mean AP@K
- NDCG@K      = DCG@K / IDCG@K, DCG@K = sum_{r <= K, hit} 1 / log2(r + 1),
  IDCG@K = sum_{r = 1}^{min(|R_u|, K)} 1 / log2(r + 1)
- MRR@K       = 1 / rank of the first hit within K (0 if none)
- HitRate@K   = 1 if the list holds at least one relevant item within K, else 0
- user coverage@K = 1 if the user got a full list of K items, else 0 (mean = share of users)
- catalog coverage@K = |union of all lists' top-K items| / catalog size
- novelty@K   = mean over the list of -log2(share of training users who rated the item)
- intra-list diversity@K = 1 - mean pairwise cosine of the list's content embeddings

Every reported number is a mean over ALL evaluated users (users with |R_u| >= 1): a user who
gets no list, or a shorter one, scores 0 on what is missing. A user with |R_u| = 0 is not an
evaluated user; the functions still return 0 for them instead of dividing by zero.

Modules, one per metric family (as RecTools' ``rectools/metrics/``): ``_ranking`` (the data
layout, :func:`relevance_matrix`, :func:`hit_matrix`, the per-user ranking metrics and
:func:`ranking_metrics`, with the three-user example of the doctests), ``_beyond``
(beyond-accuracy), ``_uncertainty`` (:func:`bootstrap_ci` / :func:`bootstrap_many`: user-level
resampling, seeded, percentile intervals; :func:`paired_test`: paired bootstrap of per-user
differences plus a Wilcoxon signed-rank p-value), ``_tables`` (the long-format tables of
DESIGN.md "Contracts": :func:`metrics_long_table`, :func:`paired_tests_table`) and ``_checks``
(input checks shared by all of them).
"""

from tasks.metrics._beyond import (
    BEYOND_ACCURACY_METRICS,
    beyond_accuracy_metrics,
    catalog_coverage,
    intra_list_diversity,
    item_user_share,
    novelty,
    user_coverage,
)
from tasks.metrics._ranking import (
    DEFAULT_KS,
    RANKING_METRICS,
    average_precision_at_k,
    hit_at_k,
    hit_matrix,
    n_relevant_per_user,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    relevance_matrix,
)
from tasks.metrics._tables import (
    ALL_USERS,
    METRICS_TABLE_COLUMNS,
    PAIRED_TESTS_COLUMNS,
    metrics_long_table,
    paired_tests_table,
)
from tasks.metrics._uncertainty import bootstrap_ci, bootstrap_many, paired_test

__all__ = [
    "ALL_USERS",
    "BEYOND_ACCURACY_METRICS",
    "DEFAULT_KS",
    "METRICS_TABLE_COLUMNS",
    "PAIRED_TESTS_COLUMNS",
    "RANKING_METRICS",
    "average_precision_at_k",
    "beyond_accuracy_metrics",
    "bootstrap_ci",
    "bootstrap_many",
    "catalog_coverage",
    "hit_at_k",
    "hit_matrix",
    "intra_list_diversity",
    "item_user_share",
    "metrics_long_table",
    "n_relevant_per_user",
    "ndcg_at_k",
    "novelty",
    "paired_test",
    "paired_tests_table",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "relevance_matrix",
    "user_coverage",
]
