"""Reports: the markdown of the evaluation stage (DESIGN.md step 8), from the run's own files.

Place in the pipeline: the ``evaluation`` stage scores the tuned policy and every tuned baseline
once on test, then calls :func:`write_offline_reports` (through
:mod:`tasks.evaluation._reports`), beside :mod:`tasks.charts`, whose figures the reports link.
Three reports, in ``reports/`` of the run directory:

- ``offline_metrics.md`` - a summary first: every model's validation and test Recall/MAP/NDCG@10
  (test with intervals), the tuned policy first, then the baselines by test Recall@10; one
  sentence on how the policy was selected; the paired difference to the best baseline and what
  the acceptance gates say, in plain words (a loss or a tie is written as one). Details after:
  what each model is, per cohort, every K, beyond accuracy, paired tests, the content-weight grid
  on validation, candidate recall, data and split, definitions, figures.
- ``cf_eval.md`` - the tuned collaborative models (EASE, item kNN, ALS) and the policy's CF part:
  configuration, trials, validation and test figures, the best trials of each search.
- ``content_eval.md`` - the content baseline and the policy's content weights: what the blend
  adds over collaborative-only on validation, per cohort; the content baseline on test.

Honesty rule: every number is read from the arguments - the run's own tables and files - and
nothing is typed by hand; a model's description is built from its recorded configuration
(:func:`describe_models`). What an input lacks is written as *missing*, never filled in. Numbers
are formatted one way throughout: a mean with its interval as ``0.0712 [0.0650, 0.0781]``, a
difference with signs (``+0.0120 [+0.0047, +0.0200]``), p-values with four decimals (scientific
below 0.0001).

Inputs: ``metrics`` (``eval/metrics.parquet``), ``paired`` (``eval/paired_tests.parquet``),
``tuning_results`` (``tuning/tuning_results.csv``: the content-weight grid of the chosen
configuration on validation), ``policy`` (``tuning/policy.json``), ``gates``
(``eval/gates.json``: ``{"gates": [{"name", "description", "measured", "threshold", "passed",
"details"}], "all_passed", "best_baseline", "min_lift", "metric", "k"}``) and ``context``, a dict
whose keys are all optional (a missing one is reported as missing):

- ``run_id``, ``profile``;
- ``split`` (the ``[split]`` section), ``eval`` (the ``[eval]`` section: confidence,
  bootstrap_samples, seed, sample_users);
- ``dataset``: counts (n_users, n_items, n_test_users_with_relevant, n_users_evaluated,
  n_relevant_pairs, n_ratings);
- ``validation_metrics``: the records of ``tuning/validation_metrics.csv``;
- ``baselines``: ``tuning/baselines.json`` ``"baselines"`` (config, params, trials, cut_short,
  skipped per tuned baseline);
- ``trials``: the records of ``tuning/trials.csv``;
- ``cf_roles``: ``models/cf/roles.json`` ``"roles"`` (the seed policy's CF configuration);
- ``seed_candidates``: the profile's ``[candidates]`` (the seed policy's pool, boosts and MMR);
- ``content_meta``: ``models/content_meta.json`` (encoder, embedding size);
- ``candidate_recall``: {cohort: share of relevant test items inside the tuned policy's pool};
- ``min_lift``: the sign-off's lift gate.

Modules: one per report - ``_offline_metrics``, ``_cf_eval``, ``_content_eval`` - and what they
share: ``_format`` (numbers and tables), ``_describe`` (what each model is), ``_sections``
(sections several reports hold), ``_verdict`` (the comparison with the best baseline and the gates
in plain words) and ``_write`` (:func:`write_offline_reports`).
"""

from tasks.reports._cf_eval import cf_eval_report
from tasks.reports._content_eval import content_eval_report
from tasks.reports._describe import CF_MODELS, CONTENT_MODELS, describe_cf, describe_models
from tasks.reports._format import format_any, format_diff, format_estimate, format_metric, format_p
from tasks.reports._offline_metrics import offline_metrics_report
from tasks.reports._sections import EVALUATION_DEFINITIONS
from tasks.reports._verdict import verdict_text
from tasks.reports._write import REPORT_FILES, write_offline_reports

__all__ = [
    "CF_MODELS",
    "CONTENT_MODELS",
    "EVALUATION_DEFINITIONS",
    "REPORT_FILES",
    "cf_eval_report",
    "content_eval_report",
    "describe_cf",
    "describe_models",
    "format_any",
    "format_diff",
    "format_estimate",
    "format_metric",
    "format_p",
    "offline_metrics_report",
    "verdict_text",
    "write_offline_reports",
]
