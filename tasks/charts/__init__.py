"""Charts: the figures of the evaluation stage (DESIGN.md step 8), drawn from the run's own tables.

Place in the pipeline: the ``evaluation`` stage (:mod:`tasks.evaluation`) scores the tuned policy
and every tuned baseline once on test, then calls :func:`write_all_charts`; :mod:`tasks.reports`
links the figures from ``offline_metrics.md``. Nothing here computes a metric: it draws the
numbers it is given (the lift is the ratio of two given numbers, its interval the paired-test
interval divided by the baseline mean).

Inputs, passed in as DataFrames and dicts:

- ``metrics``: the long TEST table (``eval/metrics.parquet``): model, cohort, metric, k, value,
  ci_low, ci_high, n_users.
- ``paired``: the paired tests on test (``eval/paired_tests.parquet``): tuned policy - baseline.
- ``tuning_results``: the content-weight grid of the chosen configuration on the VALIDATION split
  (``tuning/tuning_results.csv``): split, alpha, cohort, users_eval, ..., recall@10, map@10, ...
- ``validation``: ``tuning/validation_metrics.csv`` (model, recall@10, map@10, ndcg@10, users,
  ...): every model's validation figures, drawn beside its test figures.
- ``per_user_recall``: {model: per-user Recall@K on test}.
- ``policy``: ``tuning/policy.json`` (its ``alphas``; see :func:`policy_parts`).

Figures (:data:`FIGURE_FILES`, written by :func:`write_all_charts` into ``figures/``):

- ``models_on_test.png`` - Recall, MAP and NDCG at K=10 of every model on test (bars with the
  bootstrap interval), the same model's validation value marked beside each bar; the tuned policy
  first, then the baselines by test Recall@10.
- ``metric_vs_k.png`` - Recall@K against K, one line per model, bootstrap band (all users).
- ``cohort_recall.png`` - Recall@10 per cohort x model, bars with interval error bars, n per cohort.
- ``alpha_sweep.png`` - VALIDATION Recall@10 of the chosen configuration against the content
  weight alpha, one line per cohort; the chosen alpha is a star, a grid point that hit its time
  budget an X.
- ``beyond_accuracy.png`` - three panels per model at K=10: user and catalog coverage, novelty,
  intra-list diversity.
- ``recall_distribution.png`` - histogram and ECDF of per-user Recall@10 per model, with the
  share of users whose Recall@10 is zero.
- ``lift_over_baseline.png`` - lift of the tuned policy over the best baseline in each cohort, in
  %, with the paired-bootstrap interval, coloured by what the interval says, and the sign-off's
  lift gate (``signoff.min_lift``) over the all-users bar.

Drawing uses matplotlib's object-oriented API (a ``Figure`` rendered by the Agg canvas, never
pyplot): no global figure registry, so it is safe in Prefect's worker threads and each figure is
freed when its function returns, whatever ``MPLBACKEND`` says. Legends sit outside the plotting
area, so they never hide a bar. Every file is written atomically (:func:`tasks.io.atomic_path`).
Missing data: a model, cohort or metric absent from the input is skipped and the chart says so in
a note under the plot; a chart with nothing to draw is still written, with the reason in place of
the plot, so a report link resolves and shows why. An input without a required column is an error
that names the column.

Modules: ``_labels`` (names, labels and orders of models, metrics and cohorts; table lookups
shared with :mod:`tasks.reports`), ``_draw`` (shared drawing helpers), one module per figure
family - ``_test_metrics`` (models on test, metric vs K, per cohort, beyond accuracy),
``_distribution`` (per-user Recall), ``_alpha_sweep`` (the validation grid), ``_lift`` (lift over
the best baseline) - and ``_write`` (:func:`write_all_charts`).
"""

from tasks.charts._alpha_sweep import alpha_sweep_chart
from tasks.charts._distribution import recall_distribution_chart
from tasks.charts._draw import DPI
from tasks.charts._labels import (
    FIGURE_FILES,
    METRIC_LABELS,
    MODEL_LABELS,
    MODEL_ORDER,
    cohort_order,
    model_label,
    model_order,
    policy_parts,
    summary_order,
    validation_table,
)
from tasks.charts._lift import lift_chart, lift_over_best_baseline
from tasks.charts._test_metrics import (
    beyond_accuracy_chart,
    cohort_recall_bars_chart,
    metric_vs_k_chart,
    models_on_test_chart,
)
from tasks.charts._write import write_all_charts

__all__ = [
    "DPI",
    "FIGURE_FILES",
    "METRIC_LABELS",
    "MODEL_LABELS",
    "MODEL_ORDER",
    "alpha_sweep_chart",
    "beyond_accuracy_chart",
    "cohort_order",
    "cohort_recall_bars_chart",
    "lift_chart",
    "lift_over_best_baseline",
    "metric_vs_k_chart",
    "model_label",
    "model_order",
    "models_on_test_chart",
    "policy_parts",
    "recall_distribution_chart",
    "summary_order",
    "validation_table",
    "write_all_charts",
]
