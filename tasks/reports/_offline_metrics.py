"""``offline_metrics.md``: the tuned policy against every baseline (part of :mod:`tasks.reports`).

The summary first: every model's validation and test Recall/MAP/NDCG@10 (test with intervals), the
tuned policy first, then the baselines by test Recall@10; one sentence on how the policy was
selected; the paired difference to the best baseline and what the acceptance gates say, in plain
words (a loss or a tie is written as one). Details after: what each model is, per cohort, every K,
beyond accuracy, paired tests, the content-weight grid on validation, candidate recall, data and
split, definitions, figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tasks.charts import (
    METRIC_LABELS,
    cohort_order,
    lift_over_best_baseline,
    model_order,
    policy_parts,
    validation_table,
)
from tasks.columns import COHORTS
from tasks.metrics import BEYOND_ACCURACY_METRICS, RANKING_METRICS
from tasks.reports._describe import CF_MODELS, _cf_phrase, _ranking_text, describe_models
from tasks.reports._format import (
    MISSING,
    _is_missing,
    _label,
    _mapping,
    _pct,
    _table,
    format_any,
    format_diff,
    format_metric,
)
from tasks.reports._sections import (
    HEADLINE_METRICS,
    _all_k_lines,
    _check_paired,
    _chosen_grid_row,
    _ci_label,
    _definitions_lines,
    _figure_lines,
    _grid_lines,
    _Metrics,
    _paired_lines,
    _summary_lines,
    _title_lines,
    _validation_grid,
    _validation_users,
)
from tasks.reports._verdict import _gate_lines, _gate_summary, _other_metrics_sentence, verdict_text

__all__ = ["offline_metrics_report"]


_DATASET_LABELS = {
    "n_users": "users",
    "n_items": "films in the catalogue",
    "n_ratings": "ratings",
    "n_test_users_with_relevant": "test users with a relevant held-out item",
    "n_users_evaluated": "users evaluated",
    "n_relevant_pairs": "relevant held-out ratings",
}


def _selection_sentence(
    policy: Mapping[str, Any], context: Mapping[str, Any], val: pd.DataFrame | None
) -> str:
    """One sentence (two at most) on how the tuned policy was chosen, from policy.json."""
    if not policy:
        return f"How the tuned policy was selected: {MISSING} (no tuning/policy.json)."
    search = _mapping(policy.get("search"))
    trials = _mapping(search.get("trials"))
    baselines = _mapping(context.get("baselines"))
    split = _mapping(context.get("split"))
    validation = _mapping(policy.get("validation"))
    if split.get("method") == "global":
        cut = split.get("validation_cut_quantile") or split.get("global_cut_quantile")
        where = f"the training ratings after the {format_any(cut)} quantile of training time"
    else:
        fraction = split.get("validation_fraction") or split.get("holdout_fraction")
        where = (
            f"each user's last {_pct(fraction)} of training ratings"
            if fraction is not None
            else "each user's last training ratings"
        )
    n_val = _validation_users(val, policy)
    users = f", {n_val} users" if n_val else ""
    if validation.get("sampled"):
        users += " (a seeded sample)"
    tuned = [(n, _mapping(baselines.get(n))) for n in (*CF_MODELS, "popularity")]
    per_model = [
        f"{_label(name)} {int(entry['trials']):,}"
        for name, entry in tuned
        if entry and entry.get("params") and not _is_missing(entry.get("trials"))
    ]
    fixed = [
        _label(name)
        for name, entry in tuned
        if entry and not entry.get("params") and not entry.get("skipped")
    ]
    n_policy = trials.get("policy")
    trial_text = (
        f"{int(n_policy):,} search trials for the policy"
        if not _is_missing(n_policy)
        else f"policy trials: {MISSING}"
    ) + (f", the same budget for each tuned baseline ({', '.join(per_model)})" if per_model else "")
    if fixed:
        trial_text += f"; {', '.join(fixed)} {'has' if len(fixed) == 1 else 'have'} nothing to tune"
    metric = str(validation.get("metric") or "recall@10")
    name, _, kk = metric.partition("@")
    chose = _cf_phrase(policy.get("collab")) if policy.get("collab") else MISSING
    knobs = _ranking_text(_mapping(policy.get("ranking")), policy.get("alphas"))
    text = (
        f"**How the tuned policy was selected:** on the validation split only ({where}{users}), "
        f"maximising {METRIC_LABELS.get(name, name)}@{kk}, with {trial_text}. The search chose "
        f"{chose}" + (f" with {knobs}" if knobs else "") + ". That configuration was then refit on "
        "the whole training data, and the test set was scored once."
    )
    if search.get("cut_short"):
        cut = search.get("cut_short_studies") or []
        text += (
            " **The search was cut short by its time budget**"
            + (f" ({', '.join(map(str, cut))})" if cut else "")
            + ": the best configuration found so far was kept."
        )
    return text


def _models_lines(
    descriptions: Mapping[str, str], m: _Metrics, context: Mapping[str, Any], models: Sequence[str]
) -> list[str]:
    lines = ["## The models", ""]
    for model in models:
        text = descriptions.get(model, "no description recorded in the run's files")
        lines.append(f"- **{_label(model)}** (`{model}`): {text}.")
    for name, entry in _mapping(context.get("baselines")).items():
        entry = _mapping(entry)
        if name not in m.models and entry.get("skipped"):
            lines.append(f"- **{_label(name)}** (`{name}`): not run - {entry['skipped']}.")
    if "tuned_policy" not in m.models:
        lines.append(
            f"- **tuned policy** (`tuned_policy`): {MISSING} - the test table has no rows for it."
        )
    return lines


def _cohort_lines(
    m: _Metrics,
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    tuning: pd.DataFrame | None,
    policy: Mapping[str, Any],
    gates: Mapping[str, Any] | None,
    k: int,
    context: Mapping[str, Any],
    policy_model: str,
) -> list[str]:
    """Per cohort: the tuned policy against the cohort's best baseline, then every model."""
    label = f"Recall@{k}"
    lines = [f"## Per cohort, K={k}", ""]
    absent = [c for c in COHORTS if c not in m.cohorts]
    if absent:
        lines += [
            f"Cohort(s) {', '.join(absent)}: {MISSING} - the test table has no rows for them "
            "(no evaluated users in the cohort).",
            "",
        ]
    split = _mapping(context.get("split"))
    if {"cold_max", "light_max", "medium_max"} <= set(split):
        lines += [
            f"Cohorts by number of training ratings: cold at most {split['cold_max']}, light at most "
            f"{split['light_max']}, medium at most {split['medium_max']}, heavy more.",
            "",
        ]
    lift = lift_over_best_baseline(metrics, paired, policy_model, "recall", k)
    gate_by = {str(g.get("name")): g for g in (_mapping(gates).get("gates") or [])}
    alphas, _ = policy_parts(policy)
    if not lift.empty:
        ci = _ci_label(context)
        rows = []
        for r in lift.to_dict("records"):
            cohort = str(r["cohort"])
            grid = _chosen_grid_row(tuning, cohort, alphas.get(cohort))
            gate = gate_by.get(
                "lift_over_best_baseline" if cohort == "all" else f"no_cohort_worse_{cohort}"
            )
            if cohort == "all":
                gate_all = [
                    gate_by.get(n)
                    for n in ("lift_over_best_baseline", "significantly_better_than_best_baseline")
                ]
                states = [g.get("passed") for g in gate_all if g]
                result = (
                    MISSING
                    if not states
                    else "passed"
                    if all(s is True for s in states)
                    else "**FAILED**"
                    if any(s is False for s in states)
                    else "not evaluated"
                )
            else:
                result = (
                    MISSING
                    if gate is None
                    else {True: "passed", False: "**FAILED**"}.get(
                        gate.get("passed"), "not evaluated"
                    )
                )
            if cohort == "all":
                weight = "per cohort" if alphas else "-"
                tuned_val = _mapping(policy.get("validation")).get(f"recall@{k}")
                validation = format_metric(tuned_val) if not _is_missing(tuned_val) else "-"
            else:
                weight = format_any(alphas[cohort]) if cohort in alphas else "-"
                validation = format_metric(grid.get(f"recall@{k}")) if grid else "-"
            rows.append(
                [
                    cohort,
                    f"{int(r['n_users']):,}",
                    weight,
                    validation,
                    m.estimate(policy_model, cohort, "recall", k),
                    _label(str(r["best_baseline"])),
                    m.estimate(str(r["best_baseline"]), cohort, "recall", k),
                    format_diff(r["mean_diff"], r["ci_low"], r["ci_high"]),
                    "undefined (baseline 0)"
                    if _is_missing(r["lift_pct"])
                    else f"{r['lift_pct']:+.1f}%",
                    result,
                ]
            )
        header = ["Cohort", "Test users", "Content weight", f"Validation {label} (tuned)",
                  f"Test {label}, tuned policy", "Best baseline on test", f"Its test {label}",
                  f"Difference [{ci}]", "Lift", "Gate"]  # fmt: skip
        lines += [
            f"The tuned policy against the best baseline of each cohort ({label}); validation = "
            "the cohort's validation users at the content weight chosen for it.",
            "",
            *_table(header, rows),
        ]
    else:
        lines.append(f"{MISSING}: no {label} rows for the tuned policy or for any baseline.")
    present = [c for c in m.cohorts if any(m.get(x, c, "recall", k) for x in m.models)]
    for metric in HEADLINE_METRICS:
        title = f"{METRIC_LABELS[metric]}@{k}"
        if metric not in m.metrics:
            lines += ["", f"### {title} per cohort", "", f"{MISSING}: no rows."]
            continue
        header = ["Model"]
        uniform: dict[str, bool] = {}
        for c in present:
            ns = m.n_users(c, m.models, k)
            uniform[c] = len(ns) == 1
            header.append(f"{c} (n={ns[0]:,})" if len(ns) == 1 else c)
        rows = [
            [
                _label(model),
                *[m.estimate(model, c, metric, k, with_n=not uniform[c]) for c in present],
            ]
            for model in m.models
        ]
        lines += ["", f"### {title} per cohort", "", *_table(header, rows)]
    return lines


def _beyond_lines(m: _Metrics, models: Sequence[str], k: int) -> list[str]:
    lines = [f"## Beyond accuracy, all users, K={k}", ""]
    shown = [x for x in BEYOND_ACCURACY_METRICS if x in m.metrics]
    if not shown:
        return [*lines, f"{MISSING}: the test table has no beyond-accuracy rows."]
    header = ["Model", *[METRIC_LABELS.get(x, x) for x in shown]]
    rows = [[_label(model), *[m.estimate(model, "all", x, k) for x in shown]] for model in models]
    lines += _table(header, rows)
    others = [kk for kk in m.ks if kk != k]
    lines += [
        "",
        "Catalog coverage is a count of distinct films over all lists, not a mean over users, so it "
        "has no interval. Novelty is in bits (not bounded by 1)."
        + (
            f" The same metrics at K = {', '.join(map(str, others))} are in eval/metrics.parquet."
            if others
            else ""
        ),
    ]
    missing = [METRIC_LABELS.get(x, x) for x in BEYOND_ACCURACY_METRICS if x not in m.metrics]
    if missing:
        lines += ["", f"Not in the test table ({MISSING}): {', '.join(missing)}."]
    return lines


def _candidate_recall_lines(
    context: Mapping[str, Any], tuning: pd.DataFrame | None, policy: Mapping[str, Any]
) -> list[str]:
    lines = [
        "## Candidate recall",
        "",
        "The share of relevant held-out films that reach the tuned policy's candidate pool at all: "
        "a ceiling on what re-ranking the pool can recall.",
        "",
    ]
    test = _mapping(context.get("candidate_recall"))
    alphas, _ = policy_parts(policy)
    val: dict[str, str] = {}
    if tuning is not None and "candidate_recall" in tuning.columns:
        grid = _validation_grid(tuning)
        for cohort in cohort_order(grid["cohort"].astype(str)):
            values = grid.loc[grid["cohort"].astype(str) == cohort, "candidate_recall"].astype(
                float
            )
            row = _chosen_grid_row(tuning, cohort, alphas.get(cohort))
            if values.min() == values.max():  # the pool does not depend on the content weight
                val[cohort] = format_metric(values.iloc[0])
            elif row is not None:
                val[cohort] = format_metric(row["candidate_recall"])
            else:
                val[cohort] = f"{format_metric(values.min())} to {format_metric(values.max())}"
    cohorts = cohort_order([*test, *val])
    if not cohorts:
        return [*lines, f"{MISSING}: neither the evaluation nor the grid recorded it."]
    rows = [
        [c, val.get(c, MISSING), format_metric(test[c]) if c in test else MISSING] for c in cohorts
    ]
    return lines + _table(["Cohort", "Validation", "Test"], rows)


def _data_lines(context: Mapping[str, Any]) -> list[str]:
    lines = ["## Data and split", ""]
    dataset = _mapping(context.get("dataset"))
    if dataset:
        facts = [
            f"{format_any(v)} {_DATASET_LABELS.get(key, key.removeprefix('n_').replace('_', ' '))}"
            for key, v in dataset.items()
        ]
        lines.append("- Data: " + ", ".join(facts) + ".")
    else:
        lines.append(f"- Data size: {MISSING}.")
    split = _mapping(context.get("split"))
    if not split:
        return [*lines, f"- Split rule, relevance rule, cohorts: {MISSING}."]

    def get(key: str) -> str:
        return format_any(split[key]) if key in split else MISSING

    method = split.get("method")
    if method == "per_user":
        lines.append(
            f"- Test: each user's last {_pct(split.get('holdout_fraction'))} of ratings by time "
            f"(rounded up, at least {get('min_holdout')}); validation: the last "
            f"{_pct(split.get('validation_fraction') or split.get('holdout_fraction'))} of the "
            "remaining training ratings, by the same rule."
        )
    elif method == "global":
        lines.append(
            f"- Test: ratings at or after the {get('global_cut_quantile')} quantile of all "
            "timestamps; validation: training ratings after the "
            f"{format_any(split.get('validation_cut_quantile') or split.get('global_cut_quantile'))} "
            "quantile of the training timestamps."
        )
    else:
        lines.append(f"- Split method: {format_any(method) if method else MISSING}.")
    lines.append(
        f"- Relevance: a held-out rating is relevant when it is at least {get('relevance_threshold')} "
        "stars; a user with at least one relevant held-out film is evaluated."
    )
    if "simulated_cold_share" in split:
        lines.append(
            f"- Simulated cold start: {_pct(split['simulated_cold_share'])} of the users keep only "
            f"their first {get('simulated_cold_min')} to {get('simulated_cold_max')} training "
            "ratings; the films they dropped are never recommended to them."
        )
    ev = _mapping(context.get("eval"))
    if "sample_users" in ev:
        lines.append(
            "- Every test user is evaluated (no sampling)."
            if int(ev["sample_users"]) == 0
            else f"- A seeded sample of {format_any(ev['sample_users'])} test users is evaluated, "
            "as the profile asks."
        )
    return lines


def offline_metrics_report(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    tuning_results: pd.DataFrame | None,
    policy: Mapping[str, Any] | None,
    gates: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    figures: Mapping[str, Any] | None = None,
    *,
    k: int = 10,
    policy_model: str = "tuned_policy",
) -> str:
    """``offline_metrics.md``: the summary first, the details after (module docstring).

    ``figures`` maps a chart name (:data:`tasks.charts.FIGURE_FILES`, plus ``tuning_history`` and
    ``tuning_importances``) to its path relative to the run directory; the report, in
    ``reports/``, links ``../figures/x.png``. A chart absent from ``figures`` is reported missing
    (the two tuning charts only when the run has them).
    """
    m = _Metrics(metrics, policy_model)
    paired = _check_paired(paired)
    context = _mapping(context)
    policy = _mapping(policy)
    figures = dict(figures or {})
    val = validation_table(context.get("validation_metrics"))
    ci = _ci_label(context)
    lines = _title_lines("Offline metrics", context, "The tuned policy against every baseline.")
    lines += ["", "## Summary", ""]
    lines += _summary_lines(m, val, k, context, policy)
    lines += ["", _selection_sentence(policy, context, val)]
    lines += ["", verdict_text(metrics, paired, gates, context, k=k, policy_model=policy_model)]
    best = _mapping(gates).get("best_baseline") or next(
        iter(lift_over_best_baseline(metrics, paired, policy_model, "recall", k)
             .query("cohort == 'all'")["best_baseline"]), None)  # fmt: skip
    other = _other_metrics_sentence(paired, best, k, policy_model)
    if other:
        lines += ["", other]
    lines += ["", _gate_summary(gates)]
    lines += _figure_lines(
        figures, "models_on_test", f"Every model on test, with validation, K={k}"
    )
    lines += ["", "# Details", ""]
    lines += _models_lines(describe_models(policy, context), m, context, m.models)
    lines += ["", *_gate_lines(gates, context)]
    lines += _figure_lines(
        figures, "lift_over_baseline", f"Lift over the best baseline per cohort, Recall@{k}"
    )
    lines += [
        "",
        *_cohort_lines(m, metrics, paired, tuning_results, policy, gates, k, context, policy_model),
    ]
    lines += _figure_lines(figures, "cohort_recall", f"Recall@{k} per cohort, test")
    lines += ["", *_all_k_lines(m, m.models, RANKING_METRICS, ci)]
    lines += _figure_lines(figures, "metric_vs_k", "Recall@K vs K, test")
    lines += ["", *_beyond_lines(m, m.models, k)]
    lines += _figure_lines(figures, "beyond_accuracy", f"Coverage, novelty and diversity at K={k}")
    lines += ["", f"## Distribution of per-user Recall@{k}"]
    lines += _figure_lines(figures, "recall_distribution", f"Per-user Recall@{k} per model, test")
    lines += ["", *_paired_lines(paired, k, context, policy_model)]
    lines += ["", *_grid_lines(tuning_results, policy, k)]
    lines += _figure_lines(
        figures, "alpha_sweep", f"Validation Recall@{k} vs content weight per cohort"
    )
    lines += ["", "## The search"]
    search = _mapping(policy.get("search"))
    if search:
        lines += ["", _search_sentence(search)]
    for name, caption in (
        ("tuning_history", "Optimisation history"),
        ("tuning_importances", "Parameter importances"),
    ):
        if name in figures:
            lines += _figure_lines(figures, name, caption)
    if not search and not any(n in figures for n in ("tuning_history", "tuning_importances")):
        lines += ["", f"{MISSING}: no search record in tuning/policy.json and no search figures."]
    lines += ["", *_candidate_recall_lines(context, tuning_results, policy)]
    lines += ["", *_data_lines(context)]
    lines += ["", *_definitions_lines(context)]
    lines += ["", "The collaborative models in detail: [cf_eval.md](cf_eval.md); the content model and "
              "the content weights: [content_eval.md](content_eval.md)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _search_sentence(search: Mapping[str, Any]) -> str:
    """The search's record (policy.json ``search``) in words."""

    def name(study: str) -> str:
        return "the policy" if study == "policy" else _label(study)

    trials = _mapping(search.get("trials"))
    reused = _mapping(search.get("trials_read_from_the_store"))
    order = [s for s in ("policy", *model_order(set(trials) - {"policy"})) if s in trials]
    text = "Trials per study: " + (
        ", ".join(f"{name(s)} {int(trials[s]):,}" for s in order) if order else MISSING
    )
    if any(int(v) for v in reused.values()):
        again = [f"{name(s)} {int(reused[s]):,}" for s in order if int(reused.get(s) or 0)]
        text += (
            f" (of which read back from the trial store - a repeated proposal, or a trial an "
            f"earlier run finished: {', '.join(again)})"
        )
    text += "."
    if not _is_missing(search.get("seconds")):
        text += f" Search wall time {float(search['seconds']):,.0f} s"
        if not _is_missing(search.get("budget_seconds")):
            text += f" (time budget {format_any(float(search['budget_seconds']))} s per study)"
        text += "."
    if not _is_missing(search.get("seed")):
        text += f" Seeded sampler (seed {search['seed']})."
    cut = search.get("cut_short")
    return text + " " + ("**Cut short by its time budget.**" if cut else "Not cut short.")
