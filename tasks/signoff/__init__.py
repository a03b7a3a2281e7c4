"""Sign-off package and final report (stage ``handoff``, issues 4.4.1 and 4.4.3): the decision.

Place in the pipeline: the last stage, after ``inventory``. It reads the run's own tables and the
earlier stages' facts, measures every gate, computes the recommendation and writes
``reports/final_report.md``, ``signoff/handoff.md``, ``signoff/signoff_form.md`` (blank) and
``signoff/signoff.json`` (:func:`signoff_core`). :mod:`tasks.handoff` runs it as the stage and adds
the four files to the artifact manifest. Everything is measured from the run directory alone, so a
finished run can be re-decided with other ``[signoff]`` thresholds.

Gates (thresholds from the profile's ``[signoff]`` section and ``edge_cases.min_pass_rate``);
"measured" always comes from the run's own files. The comparison with the baselines is
:func:`tasks.tuning.acceptance_gates` on ``eval/metrics.parquet`` and ``eval/paired_tests.parquet``
(Recall@10; baselines = every model of the metrics table but ``tuned_policy``; the best baseline =
the highest test Recall@10 over all users) - never ``eval/gates.json``, so ``signoff.min_lift``
applies to a finished run too:

==========================================  ===================================================  =======
gate                                        measured (source)                                    effect
==========================================  ===================================================  =======
not_significantly_worse_than_best_baseline  upper end of the paired 95% CI of tuned - best        reject
                                            baseline >= 0 (eval/paired_tests.parquet)
artifact_validation_rate                    files passing GX / files >= min_artifact_validation  reject
                                            (inventory/artifact_manifest.json)
lift_over_best_baseline                     (tuned - best) / best Recall@10 >= min_lift           approve
                                            (eval/metrics.parquet)
significantly_better_than_best_baseline     lower end of that paired CI > 0                       approve
no_cohort_worse_<cohort>                    per cohort: tuned not significantly worse than the    approve
                                            cohort's best baseline (upper end of the paired CI
                                            >= 0; no paired row: tuned >= the baseline's CI low)
search_completed                            tuning/policy.json ``search.cut_short`` is false      approve
recall_at_10 >= min_recall_at_10            tuned policy, all users (only when the floor is set)  approve
map_at_10 >= min_map_at_10                  idem                                                  approve
user_coverage_at_10 >= min_user_coverage    tuned policy, K=10 (eval/metrics.parquet)             approve
edge_case_pass_rate >= min_pass_rate        edge_cases stage facts (or edge_cases/results)        approve
artifact_validation_failures == 0           failed files in the manifest                          approve
no_significant_regression == 0             significant rows of eval/regression.json (only when    approve
                                            a baseline run was compared and the profile asks)
==========================================  ===================================================  =======

A cohort without evaluated users has no cohort gate. A regression check without a baseline run
is "not compared": no gate, and the reports say so (it is not a pass).

Decision rule (:func:`tasks.decision.decide`, a pure function of the recorded gates, which the
``signoff`` suite recomputes from ``signoff.json``):

- **REJECT** when a gate with effect "reject" fails - the tuned policy is significantly worse than
  its best baseline, or the artifact validation rate is below ``min_artifact_validation`` - or
  could not be measured (no paired test, no manifest);
- **APPROVE** when every gate passes (so a failed artifact validation, a significant regression, a
  search cut short by its time budget, and any gate that could not be measured prevent APPROVE);
- **NEEDS WORK** otherwise. The reasons list every failed gate with its measured value.

The reports also put the old hand-run system's claims (Recall@10 0.342, MAP@10 0.287, with
thresholds 0.30 / 0.25: :data:`OLD_REPORT_CLAIMS`, never measured) beside this run's measured
values - as a table, not as gates.

Modules: ``_measures`` (what is measured, from which file), ``_gates`` (the gates against the
thresholds), ``_checklist`` (QA checklist, reproducibility), ``_documents`` (the reports and the
old report's claims), ``_core`` (:func:`signoff_core`, the package written).
"""

from tasks.signoff._checklist import qa_checklist, reproducibility
from tasks.signoff._core import signoff_core
from tasks.signoff._documents import (
    FILES,
    OLD_REPORT_CLAIMS,
    render_final_report,
    render_handoff,
    selection_sentence,
)
from tasks.signoff._gates import RULE_TEXT, compute_gates
from tasks.signoff._measures import collect_measures, recorded_facts

__all__ = [
    "FILES",
    "OLD_REPORT_CLAIMS",
    "RULE_TEXT",
    "collect_measures",
    "compute_gates",
    "qa_checklist",
    "recorded_facts",
    "render_final_report",
    "render_handoff",
    "reproducibility",
    "selection_sentence",
    "signoff_core",
]
