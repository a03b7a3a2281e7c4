"""Regression check: is this run's model significantly worse than a baseline run of the same profile?

Place in the pipeline: the ``regression`` stage, right after ``evaluation`` (every run; the
``nightly-reevaluation`` deployment relies on it). It reads this run's ``eval/per_user.parquet``
(one row per evaluated test user, with ``<model>_<metric>@<k>`` columns for the tuned policy and
every baseline) and the baseline run's, and writes ``eval/regression.json`` (read by the sign-off:
a significant drop turns the decision into NEEDS WORK) and ``reports/regression.md`` (a section of
the final report).

**Baseline** (:func:`find_baseline`, ``[nightly] compare_with``): among the run directories
``<artifacts>/<profile>/<run-id>/`` whose ``logs/run_status.json`` says ``"complete"`` and that hold
``eval/per_user.parquet``, the newest (run ids start with a UTC timestamp, so the newest sorts
last) - ``previous`` - or the newest whose ``signoff/signoff.json`` decision is ``APPROVE`` -
``last_approved``, falling back to the newest complete run when none was approved (the reason
says so: a nightly with no approved run still compares). No complete run: **not compared** (``compared`` false, no rows, ``significant_drop``
false) and the reason says why; the sign-off then has no regression gate and reports "not
compared" - never a pass. The baseline (its run directory and the fingerprint of its per-user table) is a
parameter of the stage, so it is part of the cache key: a newly approved run invalidates the check.

**Comparison** (:func:`compare_runs`), per cohort (``all`` plus every activity cohort) and per
metric in ``[nightly] metrics`` at ``k`` (per-user columns ``<model>_<metric>@<k>``):

- same test users in both runs (the data did not change): *paired*. d_u = current_u - baseline_u
  over the cohort's users (cohort of the current run); delta = mean(d); [ci_low, ci_high] = the
  percentile bootstrap interval of mean(d) (user resamples, :func:`tasks.metrics.bootstrap_many`).
- otherwise: *Welch*. delta = mean(current) - mean(baseline);
  se = sqrt(s_c^2 / n_c + s_b^2 / n_b); interval delta +- t_{q, nu} se with the
  Welch-Satterthwaite degrees of freedom nu = se^4 / ((s_c^2/n_c)^2/(n_c-1) + (s_b^2/n_b)^2/(n_b-1)).

The interval's level is ``confidence``, or with ``family_wise`` (Bonferroni) 1 - (1 - confidence) / m
for m comparisons, so that comparing the same model twice flags nothing with probability at
least ``confidence``. A row is a significant drop when ci_high < -min_drop (the whole interval
lies below zero by more than ``min_drop``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.columns import COHORTS, Col
from tasks.io import ArtifactRef, write_json, write_text
from tasks.metrics import bootstrap_many
from tasks.profile import NightlySection
from tasks.stage import StageOutput, run_stage_core, stage_task
from tasks.validation import require_valid

__all__ = [
    "REGRESSION_COLUMNS",
    "REGRESSION_FILES",
    "Baseline",
    "check_regression",
    "compare_runs",
    "find_baseline",
    "regression_check_frame",
    "regression_core",
    "regression_markdown",
]

REGRESSION_FILES: dict[str, str] = {
    "regression": "eval/regression.json",
    "regression_report": "reports/regression.md",
}
#: Columns of the comparison rows (``rows`` of eval/regression.json), validated by
#: ``expectations/regression.json``.
REGRESSION_COLUMNS = (
    "cohort",
    "metric",
    "k",
    "baseline",
    "current",
    "delta",
    "ci_low",
    "ci_high",
    "significant",
    "n_users",
    "method",
    "confidence",
)
_PER_USER = "eval/per_user.parquet"
_RUN_STATUS = "logs/run_status.json"
_SIGNOFF = "signoff/signoff.json"


class Baseline(BaseModel):
    """The run this run is compared with (``run_dir`` None: there is none, ``reason`` says why)."""

    model_config = ConfigDict(frozen=True)

    compare_with: str
    reason: str
    run_dir: str | None = None
    per_user: ArtifactRef | None = None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def find_baseline(
    artifacts_root: Path | str,
    profile_name: str,
    compare_with: str,
    exclude: Path | str | None = None,
) -> Baseline:
    """The baseline run for ``compare_with`` ("last_approved" or "previous"); see the module doc.

    ``exclude`` (the current run directory) is never chosen.
    """
    if compare_with not in ("last_approved", "previous"):
        raise ValueError(
            f"compare_with must be 'last_approved' or 'previous', got {compare_with!r}"
        )
    folder = Path(artifacts_root).resolve() / profile_name
    skip = Path(exclude).resolve() if exclude is not None else None
    runs = (
        sorted(
            (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.name,
            reverse=True,
        )
        if folder.is_dir()
        else []
    )
    complete: list[Path] = []
    for run in runs:
        if skip is not None and run.resolve() == skip:
            continue
        status = _read_json(run / _RUN_STATUS) or {}
        if status.get("status") != "complete" or not (run / _PER_USER).is_file():
            continue
        complete.append(run)
        if compare_with == "last_approved":
            decision = (_read_json(run / _SIGNOFF) or {}).get("decision")
            if decision != "APPROVE":
                continue
            reason = f"newest complete run of profile '{profile_name}' whose sign-off decision is APPROVE"
        else:
            reason = f"newest complete run of profile '{profile_name}' before this one"
        return Baseline(
            compare_with=compare_with,
            reason=reason,
            run_dir=str(run),
            per_user=ArtifactRef.of(run, _PER_USER),
        )
    if complete:  # last_approved, and no run was approved: the newest complete run, said so
        return Baseline(
            compare_with=compare_with,
            reason=f"no complete run of profile '{profile_name}' has sign-off decision APPROVE "
            f"({len(complete)} complete run(s)): compared with the newest complete run instead",
            run_dir=str(complete[0]),
            per_user=ArtifactRef.of(complete[0], _PER_USER),
        )
    why = f"no earlier complete run of profile '{profile_name}' under {folder}; nothing to compare with"
    return Baseline(compare_with=compare_with, reason=why)


def _metric_column(model: str, metric: str, k: int) -> str:
    return f"{model}_{metric}@{k}"


def _check_columns(df: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        from tasks.errors import InputDataError

        raise InputDataError(
            f"{source}: column(s) {missing} missing (the regression check compares per-user "
            f"metrics; [nightly] model/metrics/k must name columns the evaluation stage wrote, "
            f"e.g. tuned_policy_recall@10)."
        )


def _welch_interval(cur: np.ndarray, base: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats

    var_c = cur.var(ddof=1) / cur.size
    var_b = base.var(ddof=1) / base.size
    se = math.sqrt(var_c + var_b)
    delta = float(cur.mean() - base.mean())
    if se == 0.0:
        return delta, delta
    dof = se**4 / (var_c**2 / (cur.size - 1) + var_b**2 / (base.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
    return delta - half, delta + half


def compare_runs(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    cfg: NightlySection,
) -> pd.DataFrame:
    """One row per (cohort, metric): baseline and current means, delta and its interval.

    ``baseline`` / ``current`` are per-user tables (``user_id``, ``cohort``,
    ``<model>_<metric>@<k>``). Paired by user when both hold the same users, else Welch (see the
    module doc). Columns: :data:`REGRESSION_COLUMNS`.

    >>> cfg = NightlySection(metrics=("recall",), bootstrap_samples=200)
    >>> base = pd.DataFrame({"user_id": [1, 2, 3, 4], "cohort": ["light"] * 4,
    ...                      "tuned_policy_recall@10": [1.0, 1.0, 0.0, 1.0]})
    >>> worse = base.assign(**{"tuned_policy_recall@10": [0.0, 0.0, 0.0, 0.0]})
    >>> rows = compare_runs(base, worse, cfg)
    >>> rows[["cohort", "delta", "ci_high", "significant", "method"]].to_dict("records")[0]
    {'cohort': 'all', 'delta': -0.75, 'ci_high': -0.25, 'significant': True, 'method': 'paired bootstrap'}
    """
    columns = [_metric_column(cfg.model, m, cfg.k) for m in cfg.metrics]
    _check_columns(baseline, [Col.USER, Col.COHORT, *columns], "baseline eval/per_user.parquet")
    _check_columns(current, [Col.USER, Col.COHORT, *columns], "current eval/per_user.parquet")
    base = baseline.sort_values(Col.USER, kind="stable").reset_index(drop=True)
    cur = current.sort_values(Col.USER, kind="stable").reset_index(drop=True)
    paired = len(base) == len(cur) and np.array_equal(
        base[Col.USER].to_numpy(np.int64), cur[Col.USER].to_numpy(np.int64)
    )
    cohorts = [
        "all",
        *[c for c in COHORTS if c in set(cur[Col.COHORT]) or c in set(base[Col.COHORT])],
    ]

    def members(df: pd.DataFrame, cohort: str) -> np.ndarray:
        return np.ones(len(df), bool) if cohort == "all" else (df[Col.COHORT] == cohort).to_numpy()

    groups = []  # (cohort, current mask, baseline mask) of the cohorts with enough users
    for cohort in cohorts:
        # paired: the same users on both sides, grouped by the current run's cohort
        m_cur = members(cur, cohort)
        m_base = m_cur if paired else members(base, cohort)
        if m_cur.sum() >= cfg.min_users and m_base.sum() >= cfg.min_users:
            groups.append((cohort, m_cur, m_base))
    n_tests = len(groups) * len(columns)
    level = (
        1.0 - (1.0 - cfg.confidence) / n_tests if cfg.family_wise and n_tests else cfg.confidence
    )

    rows: list[dict[str, Any]] = []
    for cohort, m_cur, m_base in groups:
        cur_vals = {col: cur.loc[m_cur, col].to_numpy(np.float64) for col in columns}
        base_vals = {col: base.loc[m_base, col].to_numpy(np.float64) for col in columns}
        if paired:
            # one bootstrap call per cohort: every metric's differences share the same resamples
            diffs = {col: cur_vals[col] - base_vals[col] for col in columns}
            intervals = bootstrap_many(diffs, cfg.bootstrap_samples, level, cfg.seed)
        for metric, col in zip(cfg.metrics, columns, strict=True):
            c, b = cur_vals[col], base_vals[col]
            delta = float(c.mean() - b.mean())
            if paired:
                _, low, high = intervals[col]
            else:
                low, high = _welch_interval(c, b, level)
            low, high = min(low, delta), max(high, delta)  # a percentile interval can miss it
            rows.append(
                {
                    Col.COHORT: cohort,
                    "metric": metric,
                    "k": int(cfg.k),
                    "baseline": float(b.mean()),
                    "current": float(c.mean()),
                    "delta": delta,
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "significant": bool(high < -cfg.min_drop),
                    "n_users": int(c.size),
                    "method": "paired bootstrap" if paired else "welch",
                    "confidence": float(level),
                }
            )
    frame = pd.DataFrame(rows, columns=list(REGRESSION_COLUMNS))
    return frame.astype({"k": "int64", "n_users": "int64", "significant": "bool"})


def regression_check_frame(rows: pd.DataFrame, min_drop: float) -> pd.DataFrame:
    """``rows`` plus the flags ``expectations/regression.json`` checks: the interval contains the
    delta, and ``significant`` is exactly ``ci_high < -min_drop``."""
    contains = (rows["ci_low"] <= rows["delta"]) & (rows["delta"] <= rows["ci_high"])
    consistent = rows["significant"] == (rows["ci_high"] < -min_drop)
    return rows.assign(
        interval_contains_delta=contains.to_numpy(bool),
        significance_consistent=consistent.to_numpy(bool),
    )


def regression_markdown(doc: dict[str, Any], run_dir: str) -> str:
    """The ``Regression check`` section of the final report, from eval/regression.json's content."""
    lines = ["## Regression check", ""]
    baseline = doc.get("baseline_run")
    if not doc.get("compared", baseline is not None):
        lines += [
            f"**Not compared**: {doc['reason']}. There was no baseline run to compare with, so this "
            "is not a pass: the sign-off has no regression gate for this run.",
            "",
        ]
        return "\n".join(lines)
    verdict = (
        "**Significant drop** - the decision cannot be APPROVE (NEEDS WORK)."
        if doc["significant_drop"]
        else "No significant drop."
    )
    rows = doc["rows"]
    level = rows[0]["confidence"] if rows else None
    lines += [
        f"This run (`{run_dir}`) against `{baseline}` ({doc['compare_with']}: {doc['reason']}).",
        "",
        verdict,
        "",
        f"Per-user metrics of the tuned policy, {rows[0]['method'] if rows else ''}; intervals at "
        f"{100 * level:.2f}% per comparison"
        + (" (Bonferroni over the table)" if doc.get("family_wise") else "")
        + "; a drop is significant when the whole interval is below "
        + (f"-{doc['min_drop']:g}." if doc.get("min_drop") else "zero."),
        "",
        "| cohort | metric | users | baseline | current | delta | interval | drop |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cohort']} | {r['metric']}@{r['k']} | {r['n_users']:,} | {r['baseline']:.4f} | "
            f"{r['current']:.4f} | {r['delta']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
            f"{'**yes**' if r['significant'] else 'no'} |"
        )
    lines.append("")
    return "\n".join(lines)


def regression_core(
    run_dir: str,
    current_per_user: Path,
    baseline: Baseline,
    cfg: NightlySection,
) -> dict[str, Any]:
    """Compare, validate the rows, write eval/regression.json and reports/regression.md."""
    doc: dict[str, Any] = {
        "baseline_run": baseline.run_dir,
        "compare_with": baseline.compare_with,
        "compared": baseline.per_user is not None,
        "reason": baseline.reason,
        "significant_drop": False,
        "rows": [],
        "model": cfg.model,
        "min_drop": cfg.min_drop,
        "family_wise": cfg.family_wise,
    }
    if baseline.per_user is not None:
        columns = [
            Col.USER,
            Col.COHORT,
            *(_metric_column(cfg.model, m, cfg.k) for m in cfg.metrics),
        ]
        base_path = baseline.per_user.path
        if not base_path.is_file():
            from tasks.errors import InputDataError

            raise InputDataError(
                f"{base_path}: the baseline run's per-user table is gone; restore it or set "
                "[nightly] compare_with to another baseline."
            )
        base_df = pd.read_parquet(
            base_path, columns=[c for c in columns if c in _parquet_columns(base_path)]
        )
        cur_df = pd.read_parquet(
            current_per_user,
            columns=[c for c in columns if c in _parquet_columns(current_per_user)],
        )
        frame = compare_runs(base_df, cur_df, cfg)
        require_valid(
            regression_check_frame(frame, cfg.min_drop),
            "regression",
            source=f"{run_dir}/{REGRESSION_FILES['regression']} (rows)",
            parameters={"metrics": list(cfg.metrics)},
        )
        doc["rows"] = frame.to_dict("records")
        doc["significant_drop"] = bool(frame["significant"].any())
    json_ref = write_json(doc, run_dir, REGRESSION_FILES["regression"])
    md_ref = write_text(
        regression_markdown(doc, run_dir), run_dir, REGRESSION_FILES["regression_report"]
    )
    dropped = [f"{r['cohort']} {r['metric']}@{r['k']}" for r in doc["rows"] if r["significant"]]
    return {
        "artifacts": {"regression": json_ref, "regression_report": md_ref},
        "facts": {
            "status": "compared" if doc["compared"] else "not compared",
            "compared": doc["compared"],
            "significant_drop": doc["significant_drop"],
            "baseline_run": baseline.run_dir,
            "compare_with": baseline.compare_with,
            "reason": baseline.reason,
            "comparisons": len(doc["rows"]),
            "dropped": dropped,
            "method": doc["rows"][0]["method"] if doc["rows"] else None,
        },
    }


def _parquet_columns(path: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_schema(path).names)


@stage_task("regression")
def check_regression(
    evaluation: StageOutput,
    baseline: Baseline,
    cfg: NightlySection,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``regression``: this run's per-user metrics against ``baseline``'s (module doc).

    ``evaluation`` is the evaluation stage's output (its ``per_user`` table); ``baseline`` comes
    from :func:`find_baseline` and is part of the cache key (run directory + table fingerprint).
    """
    result = run_stage_core(
        "regression",
        budget_seconds,
        regression_core,
        run_dir,
        evaluation.ref("per_user").path,
        baseline,
        cfg,
    )
    return StageOutput.from_result("regression", result)
