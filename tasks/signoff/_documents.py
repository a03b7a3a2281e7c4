"""The sign-off's documents: ``reports/final_report.md``, ``signoff/handoff.md`` and the blank form
(part of :mod:`tasks.signoff`). Every number comes from the measures of the run's own files; the
old report's claims (:data:`OLD_REPORT_CLAIMS`) are shown beside them, labelled as never measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.columns import COHORTS
from tasks.decision import format_threshold, format_value
from tasks.profile import RunProfile
from tasks.signoff._gates import RULE_TEXT
from tasks.signoff._measures import METRICS, POLICY

__all__ = [
    "FILES",
    "OLD_REPORT_CLAIMS",
    "claims_table",
    "gate_table",
    "models_table",
    "paired_table",
    "regression_line",
    "render_final_report",
    "render_form",
    "render_handoff",
    "selection_sentence",
]

FILES = {
    "final_report": "reports/final_report.md",
    "handoff": "signoff/handoff.md",
    "signoff_form": "signoff/signoff_form.md",
    "signoff": "signoff/signoff.json",
}
#: What the old hand-run system's final report claimed, never measured by it (it sampled 500-2,000
#: users): shown beside this run's measured values, never used as a gate.
OLD_REPORT_CLAIMS: dict[str, dict[str, Any]] = {
    "recall_at_10": {"label": "Recall@10", "claimed": 0.342, "threshold": 0.30},
    "map_at_10": {"label": "MAP@10", "claimed": 0.287, "threshold": 0.25},
}


# ---------------------------------------------------------------------------------------------
# documents


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.2f}%"


def gate_table(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gates as a markdown table: measured value, threshold, pass, effect, source."""
    lines = [
        "| gate | measured | threshold | pass | effect if failed | source |",
        "|---|---:|---:|:---:|---|---|",
    ]
    for g in gates:
        mark = "PASS" if g["passed"] else "FAIL"
        effect = "REJECT" if g["effect"] == "reject" else "blocks APPROVE"
        note = f" ({g['note']})" if g.get("note") else ""
        lines.append(
            f"| {g['label']} | {format_value(g['measured'], g.get('unit', 'number'))} | "
            f"{format_threshold(g)} | {mark} | {effect} | `{g['source']}`{note} |"
        )
    return lines


def regression_line(measures: Mapping[str, Any]) -> str:
    """One line on the regression check: compared (and the gate says the rest), not compared
    (and why), or not run."""
    regression = measures.get("regression")
    if not isinstance(regression, Mapping):
        return "Regression against a baseline run: not run (no `eval/regression.json`)."
    if not measures.get("regression_compared"):
        return f"Regression against a baseline run: **not compared** - {regression.get('reason')}."
    return (
        f"Regression against a baseline run: compared with `{regression.get('baseline_run')}` "
        f"({regression.get('compare_with')}); significant drop: "
        f"**{'yes' if measures.get('significant_drop') else 'no'}**."
    )


def models_table(measures: Mapping[str, Any]) -> list[str]:
    """Tuned policy and every baseline: validation and test Recall/MAP/NDCG@10."""
    rows = measures.get("models") or []
    if not rows:
        return [
            "No model was evaluated (no `eval/metrics.parquet`, no `tuning/validation_metrics.csv`)."
        ]
    lines = [
        "| model | validation Recall@10 | validation MAP@10 | validation NDCG@10 | test Recall@10 | "
        "test 95% CI | test MAP@10 | test NDCG@10 |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        val, test = row.get("validation") or {}, row.get("test") or {}
        vcells = [_fmt(val.get(m)) if val else "not tuned" for m in METRICS]
        ci = test.get("recall_ci")
        tcells = [_fmt(test.get("recall")) if test else "not evaluated"]
        tcells.append(f"{_fmt(ci[0])}-{_fmt(ci[1])}" if ci else "")
        tcells += [_fmt(test.get(m)) if test else "" for m in ("map", "ndcg")]
        name = f"**{row['model']}**" if row["model"] == POLICY else row["model"]
        lines.append("| " + " | ".join([name, *vcells, *tcells]) + " |")
    users_val = next((r["validation"].get("users") for r in rows if r.get("validation")), None)
    users_test = next((r["test"].get("users") for r in rows if r.get("test")), None)
    lines += [
        "",
        f"Validation: `tuning/validation_metrics.csv` ({users_val or 'unknown'} validation users; "
        "models fitted on `train_fit`). Test: `eval/metrics.parquet` "
        f"({users_test or 'unknown'} test users, every one with a relevant held-out item; models "
        "refit on `train`, scored once). 'not tuned': the model had no validation row.",
    ]
    return lines


def paired_table(measures: Mapping[str, Any]) -> list[str]:
    """The paired difference tuned policy - best baseline, all users and per cohort."""
    best = measures.get("paired_best")
    cohorts = measures.get("cohorts") or {}
    if not best and not cohorts:
        return ["No paired test was recorded (`eval/paired_tests.parquet`)."]
    lines = [
        "| cohort | best baseline | tuned Recall@10 | baseline Recall@10 | difference | 95% CI | p | users |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    if best:
        lines.append(
            f"| all | {best['baseline']} | {_fmt(measures.get('recall_at_10'))} | "
            f"{_fmt(measures.get('best_baseline_recall_at_10'))} | {best['mean_diff']:+.4f} | "
            f"[{best['ci_low']:+.4f}, {best['ci_high']:+.4f}] | {_fmt(best.get('p_value'))} | "
            f"{best.get('n_users', '')} |"
        )
    for cohort in [c for c in COHORTS if c in cohorts]:
        e = cohorts[cohort]
        if not e:
            lines.append(f"| {cohort} | - | - | - | - | no evaluated user | - | 0 |")
            continue
        ci = (
            f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]"
            if e.get("rule") == "paired"
            else "no paired test"
        )
        lines.append(
            f"| {cohort} | {e['best_baseline']} | {_fmt(e['policy_value'])} | "
            f"{_fmt(e['baseline_value'])} | {e['mean_diff']:+.4f} | {ci} | {_fmt(e.get('p_value'))} | "
            f"{e['n_users']} |"
        )
    lines += [
        "",
        "Difference = mean over the users of (tuned policy - baseline) Recall@10; 95% CI = paired "
        "percentile bootstrap (`eval/paired_tests.parquet`); the best baseline is the one with the "
        "highest test Recall@10 over all users (per cohort: in that cohort).",
    ]
    return lines


def selection_sentence(measures: Mapping[str, Any]) -> str:
    """How the policy was selected, in one sentence, from tuning/policy.json.

    >>> selection_sentence({"selection": {"model": "ease", "alphas": {"light": 0.6, "cold": 0.3},
    ...     "lambda_div": 0.0, "policy_trials": 30, "n_trials": 30, "cut_short": False,
    ...     "validation": {"metric": "recall@10", "value": 0.13, "users": 560}}})[:93]
    'A seeded search of 30 trials (a budget of 30 per model) chose the ease CF model, content weig'
    """
    sel = measures.get("selection")
    if not sel:
        return "How the policy was selected: not recorded (no `tuning/policy.json`)."
    val = sel.get("validation") or {}
    alphas = sel.get("alphas") or {}
    ordered = [c for c in COHORTS if c in alphas] + [c for c in alphas if c not in COHORTS]
    alpha_text = ", ".join(f"{c} {alphas[c]:g}" for c in ordered) or "not recorded"
    trials, allowed = sel.get("policy_trials"), sel.get("n_trials")
    budget = "" if trials is None else f" of {trials} trials"
    if trials is not None and allowed is not None:
        budget += (
            f" (a budget of {allowed} per model)"
            if trials <= allowed
            else f" (a budget of {allowed} per model, plus {trials - allowed} warm starts: each tuned CF "
            "baseline re-scored as a pure-CF policy, and the seed configuration)"
        )
    if sel.get("cut_short"):
        budget += ", cut short by its time budget,"
    value = val.get("value")
    target = (
        f"the best validation {val.get('metric', 'score')} ({value:.4f} over {val.get('users')} users)"
        if value is not None
        else "the best validation score"
    )
    lambda_div = sel.get("lambda_div")
    return (
        f"A seeded search{budget} chose the {sel.get('model') or 'unknown'} CF model, content "
        f"weights {alpha_text} and lambda_div {'unknown' if lambda_div is None else f'{lambda_div:g}'} "
        f"for {target}: {sel.get('how_selected') or 'chosen on the validation split only'} "
        "(`tuning/policy.json`)."
    )


def claims_table(measures: Mapping[str, Any], cfg: Any) -> list[str]:
    """The old report's unmeasured claims beside this run's measured values (not gates)."""
    lines = [
        "| metric | claimed by the old report (never measured) | old threshold | measured here (tuned "
        "policy, test, all users) | measured here reaches the old threshold |",
        "|---|---:|---:|---:|:---:|",
    ]
    for key, claim in OLD_REPORT_CLAIMS.items():
        measured = measures.get(key)
        reaches = (
            "not measured"
            if measured is None
            else ("yes" if measured >= claim["threshold"] else "no")
        )
        lines.append(
            f"| {claim['label']} | {claim['claimed']:.3f} | {claim['threshold']:.2f} | "
            f"{_fmt(measured)} | {reaches} |"
        )
    floors = [
        f"`{name}` = {'off' if value is None else f'{value:g}'}"
        for name, value in (
            ("signoff.min_recall_at_10", cfg.min_recall_at_10),
            ("signoff.min_map_at_10", cfg.min_map_at_10),
        )
    ]
    lines += [
        "",
        "The old hand-run system's final report claimed these numbers from an evaluation cut down to "
        "500-2,000 sampled users; they were never measured and are **not gates** here. Absolute "
        "floors are per profile (" + ", ".join(floors) + ").",
    ]
    return lines


def _link_or_absent(root: Path, relpath: str, from_dir: str, text: str | None = None) -> str:
    target = root / relpath
    label = text or relpath
    if target.exists() or relpath in FILES.values():  # the handoff's own files are all written
        rel = (
            Path(relpath).relative_to(from_dir).as_posix()
            if relpath.startswith(from_dir + "/")
            else None
        )
        href = rel or "../" * len(Path(from_dir).parts) + relpath
        return f"[{label}]({href})"
    return f"{label} (not produced by this run)"


def _comparison_sections(
    root: Path, measures: Mapping[str, Any], cfg: Any, from_dir: str
) -> list[str]:
    """Models, paired difference, selection and the old claims: shared by both documents."""
    lines = ["", "## Models at K=10: validation and test", "", *models_table(measures)]
    if (root / "figures/models_on_test.png").is_file():
        href = "../" * len(Path(from_dir).parts) + "figures/models_on_test.png"
        lines += ["", f"![models on test with 95% CIs]({href})"]
    lines += [
        "",
        "## Tuned policy vs the best baseline (paired difference)",
        "",
        *paired_table(measures),
        "",
        "## How the policy was selected",
        "",
        selection_sentence(measures),
        "",
        "## Claimed by the old report vs measured here",
        "",
        *claims_table(measures, cfg),
    ]
    return lines


def render_final_report(
    root: Path,
    profile: RunProfile,
    decision: str,
    reasons: Sequence[str],
    gates: Sequence[Mapping[str, Any]],
    measures: Mapping[str, Any],
    facts: Mapping[str, Mapping[str, Any]],
) -> str:
    """``reports/final_report.md``: decision, gates, models, links to every section; numbers from
    the run's own files (metrics, paired tests, validation metrics, policy, manifest, facts)."""
    run_id = root.name
    link = lambda rel, text=None: _link_or_absent(root, rel, "reports", text)  # noqa: E731
    lines = [
        f"# Final report - {profile.name} run {run_id}",
        "",
        f"**Recommendation: {decision}** (computed from the gates below; the rule is in "
        f"{link('signoff/handoff.md', 'the sign-off package')}).",
        "",
        "## Executive summary",
        "",
    ]
    n_users = measures.get("n_users")
    if measures.get("recall_at_10") is not None:
        ci = measures.get("recall_at_10_ci", [None, None])
        lines.append(
            f"- The tuned policy reaches test Recall@10 {_fmt(measures['recall_at_10'])} "
            f"(95% CI {_fmt(ci[0])}-{_fmt(ci[1])}), MAP@10 {_fmt(measures.get('map_at_10'))} and "
            f"NDCG@10 {_fmt(measures.get('ndcg_at_10'))} over {n_users or 0:,} evaluated users "
            "(every test user with a relevant held-out item)."
        )
    best = measures.get("paired_best")
    if measures.get("best_baseline") is not None:
        lift = measures.get("lift")
        diff = (
            f"; paired difference {best['mean_diff']:+.4f} [{best['ci_low']:+.4f}, {best['ci_high']:+.4f}]"
            if best
            else "; no paired test"
        )
        lines.append(
            f"- Best baseline on test: {measures['best_baseline']} with Recall@10 "
            f"{_fmt(measures['best_baseline_recall_at_10'])}; lift of the tuned policy "
            f"{format_value(lift, 'relative')}{diff}."
        )
    lines.append(f"- {selection_sentence(measures)}")
    if measures.get("validation_rate") is not None:
        lines.append(
            f"- Artifacts: {measures.get('n_files')} files inventoried, validation rate "
            f"{_pct(measures['validation_rate'])}, {measures.get('failed_validations', 0)} failed."
        )
    if measures.get("edge_case_pass_rate") is not None:
        lines.append(f"- Edge cases: pass rate {_pct(measures['edge_case_pass_rate'])}.")
    lines += ["", "Reasons for the recommendation:", ""] + [f"- {r}" for r in reasons]
    lines += ["", "## Headline gates", "", *gate_table(gates), "", regression_line(measures)]
    lines += _comparison_sections(root, measures, profile.signoff, "reports")
    regression = measures.get("regression")
    if isinstance(regression, Mapping):
        lines += ["", "## Regression against the baseline run", ""]
        if not measures.get("regression_compared"):
            lines.append(f"Not compared: {regression.get('reason')}.")
        else:
            lines.append(
                f"Compared with: {regression.get('baseline_run')} ({regression.get('compare_with')}); "
                f"{regression.get('reason', '')}."
            )
            lines.append(
                f"Significant drop: **{'yes' if regression.get('significant_drop') else 'no'}** "
                f"(details: `eval/regression.json`, {link('reports/regression.md')})."
            )
            rows = regression.get("rows") or []
            if rows:
                lines += [
                    "",
                    "| cohort | metric | K | baseline | current | delta | CI | significant |",
                    "|---|---|---:|---:|---:|---:|---|:---:|",
                ]
                for r in rows:
                    lines.append(
                        f"| {r.get('cohort')} | {r.get('metric')} | {r.get('k')} | {_fmt(r.get('baseline'))} | "
                        f"{_fmt(r.get('current'))} | {_fmt(r.get('delta'))} | {_fmt(r.get('ci_low'))}-"
                        f"{_fmt(r.get('ci_high'))} | {'yes' if r.get('significant') else 'no'} |"
                    )
    case = facts.get("case_studies") or {}
    figures = sorted((root / "figures").glob("*.png")) if (root / "figures").is_dir() else []
    lines += [
        "",
        "## Sections",
        "",
        "- Offline metrics (4.1): "
        + ", ".join(
            link(rel)
            for rel in (
                "reports/offline_metrics.md",
                "reports/cf_eval.md",
                "reports/content_eval.md",
            )
        )
        + "; figures: "
        + (", ".join(link(f"figures/{p.name}") for p in figures) or "none"),
        "- Tuning on the validation split: "
        + ", ".join(
            link(rel)
            for rel in (
                "tuning/policy.json",
                "tuning/baselines.json",
                "tuning/validation_metrics.csv",
                "tuning/trials.csv",
                "tuning/tuning_results.csv",
            )
        ),
        "- Case studies (4.2): "
        + link("reports/case_studies.md")
        + (
            "; category shares: "
            + ", ".join(
                f"{k} {_pct(v)}" for k, v in sorted((case.get("category_share") or {}).items())
            )
            if case.get("category_share")
            else ""
        ),
        "- Edge cases (4.3): "
        + link("reports/edge_cases.md")
        + (
            "; per category: "
            + ", ".join(
                f"{k} {_pct(v)}" for k, v in sorted(measures["edge_case_per_category"].items())
            )
            if measures.get("edge_case_per_category")
            else ""
        ),
        "- Artifact inventory (4.4.2): "
        + link("inventory/artifact_inventory.md")
        + ", "
        + link("inventory/artifact_manifest.json")
        + (
            ", " + link(measures["data_docs"], "Great Expectations Data Docs")
            if measures.get("data_docs")
            else ""
        ),
        "- Sign-off (4.4.3): "
        + ", ".join(
            link(rel) for rel in (FILES["handoff"], FILES["signoff_form"], FILES["signoff"])
        ),
        "- The evaluation's own acceptance gates: " + link("eval/gates.json"),
        "",
        f"Every number above was computed by this run ({run_id}), except the old report's claims, "
        "which are labelled as such.",
    ]
    return "\n".join(lines) + "\n"


def render_handoff(
    root: Path,
    profile: RunProfile,
    decision: str,
    reasons: Sequence[str],
    gates: Sequence[Mapping[str, Any]],
    checklist: Sequence[Mapping[str, Any]],
    repro: Mapping[str, Any],
    measures: Mapping[str, Any],
) -> str:
    run_id = root.name
    link = lambda rel, text=None: _link_or_absent(root, rel, "signoff", text)  # noqa: E731
    box = {True: "[x]", False: "[ ]", None: "[ ]"}
    cfg = profile.signoff
    floors = ", ".join(
        f"{name} {'off' if value is None else f'{value:g}'}"
        for name, value in (
            ("min_recall_at_10", cfg.min_recall_at_10),
            ("min_map_at_10", cfg.min_map_at_10),
        )
    )
    lines = [
        f"# Sign-off package - {profile.name} run {run_id}",
        "",
        f"**Recommendation: {decision}**",
        "",
        f"Rule: {RULE_TEXT}",
        "",
        "Reasons:",
        "",
        *[f"- {r}" for r in reasons],
        "",
        "## Decision table",
        "",
        f"Thresholds from the profile `{profile.name}`: `[signoff]` min_lift {cfg.min_lift:g}, "
        f"{floors}, min_user_coverage {cfg.min_user_coverage:g}, min_artifact_validation "
        f"{cfg.min_artifact_validation:g}, require_no_regression {str(cfg.require_no_regression).lower()}; "
        f"`edge_cases.min_pass_rate` {profile.edge_cases.min_pass_rate:g}.",
        "",
        *gate_table(gates),
        "",
        regression_line(measures),
        *_comparison_sections(root, measures, cfg, "signoff"),
        "",
        "## QA checklist",
        "",
        "Every box is derived from a status the run recorded (evidence in brackets); an unchecked box "
        "marked 'not run' means the stage did not produce the evidence.",
        "",
    ]
    for item in checklist:
        suffix = " - not run" if item["status"] is None else ""
        lines.append(f"- {box[item['status']]} {item['item']}{suffix} ({item['evidence']})")
    versions = repro["package_versions"]
    lines += [
        "",
        "## Reproducibility",
        "",
        f"- seed: {repro['seed']} (evaluation seed {repro['eval_seed']}, search seed "
        f"{repro.get('tuning_seed')})",
        f"- profile: `{repro['profile']}`, resolved profile {link('profile.toml')} "
        f"(sha256 `{repro['profile_sha256']}`)",
        f"- git commit: `{repro['git_commit']}`",
        f"- platform: {repro['platform']}",
        "- package versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- data: {repro['data_source']} ({repro.get('data_format') or 'unknown format'})",
    ]
    for rel, digest in repro["input_data"].items():
        lines.append(f"- input table `{rel}`: sha256 `{digest}`")
    for role, src in repro["source_files"].items():
        lines.append(f"- source file {role} `{src['path']}`: sha256 `{src['sha256']}`")
    lines += [
        "",
        "## README snippets",
        "",
        "Reproduce this run (its resolved profile, every override included; the named profile "
        f"`{profile.name}` gives the same run when no override was used):",
        "",
        "```bash",
        repro["command"],
        "```",
        "",
        "Re-check every file of this run against its manifest (exit 1 when a file changed, went "
        "missing or fails its suite):",
        "",
        "```bash",
        f"movierec validate artifacts/{profile.name}/{run_id}",
        "```",
        "",
        "Try the recommender of this run:",
        "",
        "```bash",
        f"movierec recommend --run artifacts/{profile.name}/{run_id} --user 1 --k 10",
        "```",
        "",
        "README section (paste as is):",
        "",
        "```markdown",
        "## Sign-off",
        "",
        "Every run ends with `reports/final_report.md` (decision, gates, models on validation and test,",
        "links to every section), `inventory/` (every file with sha256 and its Great Expectations result,",
        "plus Data Docs) and `signoff/` (`handoff.md`: decision table, QA checklist, reproducibility;",
        "`signoff_form.md`; `signoff.json`). The recommendation APPROVE / NEEDS WORK / REJECT is computed",
        "from the gates against the profile's `[signoff]` thresholds; `movierec validate RUN_DIR`",
        "re-checks a run.",
        "```",
        "",
        "## Files",
        "",
        f"- {link('reports/final_report.md', 'final report')}",
        f"- {link(FILES['signoff_form'], 'sign-off form (blank)')}",
        f"- {link(FILES['signoff'], 'signoff.json')} (the same facts for machines)",
        f"- {link('inventory/artifact_inventory.md', 'artifact inventory')}",
    ]
    return "\n".join(lines) + "\n"


def render_form(root: Path, profile: RunProfile, decision: str) -> str:
    return "\n".join(
        [
            f"# Sign-off form - {profile.name} run {root.name}",
            "",
            f"Computed recommendation: **{decision}** (see [handoff.md](handoff.md) and "
            "[the final report](../reports/final_report.md)). The reviewer's decision below may "
            "differ; say why.",
            "",
            "| field | entry |",
            "|---|---|",
            "| reviewer name | |",
            "| role | |",
            "| date | |",
            "| decision (APPROVE / NEEDS WORK / REJECT) | |",
            "| conditions or follow-ups | |",
            "| signature | |",
            "",
            "Checked before signing:",
            "",
            "- [ ] I read the final report and the decision table",
            "- [ ] I ran `movierec validate` on this run directory and it passed",
            "- [ ] I reviewed the failed gates and accept the listed follow-ups",
            "",
            "Comments:",
            "",
            "",
        ]
    )
