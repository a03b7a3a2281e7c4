"""Tuning: the alpha grid summary, the bucket-gate policy and the acceptance gates (DESIGN.md step 7, seed 3c.3).

Place in the pipeline: inside the ``evaluation`` stage (:mod:`tasks.evaluation`), between its two
passes. Pass 1 scores every evaluated user at every alpha of ``eval.alpha_grid``; this module turns
those per-user numbers into ``tuning/tuning_results.csv`` (:func:`summarise_grid`), picks one alpha
per activity cohort (:func:`choose_alphas`), writes ``tuning/policy.json`` (:func:`policy_document`)
and, once pass 2 has evaluated the chosen policy, decides the acceptance gates written to
``eval/gates.json`` (:func:`acceptance_gates`). Everything here is a pure function of tables and
dicts; nothing reads model files.

Selection rule (per cohort c, over the grid points that finished - not timed out - and evaluated
at least one user of c)::

    alpha_c = argmax_alpha  Recall@10_c(alpha),  ties by MAP@10_c(alpha), then the smaller alpha

Values are compared after rounding to 12 decimals, so two alphas that give the same lists tie
instead of being separated by float noise. When every point timed out, the finished users of the
timed-out points are used and the provenance says so; a cohort nobody evaluated keeps the seed
policy's alpha, and the provenance says that too.

Gates (thresholds from the profile, ``eval.min_lift``; the metric is Recall@10):

- ``lift_over_best_baseline``: over all evaluated users, the tuned policy's Recall@10 is at least
  ``(1 + min_lift)`` times the best baseline's: ``lift = (tuned - best) / best >= min_lift``.
  A best baseline of 0 passes only when the tuned policy is above 0.
- ``no_regression_<cohort>`` for every cohort (cold included): the cohort's best baseline is the
  baseline with the highest Recall@10 in that cohort; the gate fails when the tuned policy is worse
  beyond the confidence interval, i.e. when the upper end of the paired-bootstrap interval of the
  per-user difference (tuned - baseline) is below 0. Without a paired test the unpaired rule is
  used: fail when the tuned value is below the baseline's ``ci_low``.

A gate without evidence (no users in a cohort, no rows in the table) is ``passed = None`` and
``all_passed`` is True only when every gate passed: a missing gate never counts as passed, and a
failed gate is reported as failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import COHORTS
from tasks.io import ArtifactRef, write_json, write_text

__all__ = [
    "BASELINE_MODELS",
    "POLICY_FILE",
    "POLICY_MODEL",
    "POLICY_VERSION",
    "SELECTION_RULE",
    "TUNING_COLUMNS",
    "TUNING_FILE",
    "TUNING_K",
    "acceptance_gates",
    "choose_alphas",
    "policy_document",
    "summarise_grid",
    "tuning_check_frame",
    "write_policy",
    "write_tuning_results",
]

#: The cut-off the grid is judged at (the issue's Recall@10 / MAP@10).
TUNING_K = 10
#: Columns of ``tuning/tuning_results.csv``, in order.
TUNING_COLUMNS: tuple[str, ...] = (
    "alpha",
    "cohort",
    "users_eval",
    "users_skipped",
    "mean_cand",
    "candidate_recall",
    f"recall@{TUNING_K}",
    f"map@{TUNING_K}",
    f"ndcg@{TUNING_K}",
    "alpha_time_sec",
    "alpha_timed_out",
)
TUNING_FILE = "tuning/tuning_results.csv"
POLICY_FILE = "tuning/policy.json"
#: Format version of ``tuning/policy.json``.
POLICY_VERSION = 1
#: Name of the tuned policy in the metrics tables.
POLICY_MODEL = "tuned_policy"
#: Every model the tuned policy is compared against (the gates' baselines).
BASELINE_MODELS: tuple[str, ...] = (
    "popularity",
    "cf_full",
    "content_full",
    "cf_only",
    "content_only",
    "seed_policy",
)
SELECTION_RULE = (
    f"per cohort, the alpha of the grid with the highest Recall@{TUNING_K} over the cohort's "
    f"evaluated users; ties by MAP@{TUNING_K}, then the smaller alpha; grid points that ran out "
    "of their time budget are not eligible unless every point did"
)
_ROUND = 12


# --------------------------------------------------------------------------- grid summary


def summarise_grid(
    cohorts: Sequence[str] | np.ndarray,
    grid: Sequence[float],
    per_user: Mapping[str, np.ndarray],
    *,
    pool_size: np.ndarray,
    candidate_hits: np.ndarray,
    n_relevant: np.ndarray,
    alpha_seconds: Sequence[float],
    alpha_timed_out: Sequence[bool],
    eligible_users: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """The tuning table: one row per (alpha, cohort), cohort "all" first, then :data:`COHORTS`.

    ``per_user`` maps ``"recall"``, ``"map"``, ``"ndcg"`` to float arrays (n_users, n_alpha) of
    the metric at :data:`TUNING_K`, NaN where the user was not evaluated at that alpha (its grid
    point ran out of time). users_eval = users with a value; users_skipped = eligible users of the
    cohort (``eligible_users``, default: the users passed in) minus users_eval; mean_cand = mean
    pool size and candidate_recall = sum of relevant items in the pool / sum of relevant items,
    both over the users evaluated at that alpha; metric columns are means over those users (NaN
    when there are none); alpha_time_sec / alpha_timed_out are per alpha.

    >>> t = summarise_grid(["light", "heavy"], [0.0, 1.0],
    ...     {"recall": np.array([[0.5, 1.0], [0.0, np.nan]]), "map": np.zeros((2, 2)),
    ...      "ndcg": np.zeros((2, 2))},
    ...     pool_size=np.array([10, 20]), candidate_hits=np.array([1, 2]), n_relevant=np.array([2, 2]),
    ...     alpha_seconds=[0.1, 0.2], alpha_timed_out=[False, True])
    >>> print(t.loc[t.cohort == "all", ["alpha", "users_eval", "users_skipped", "recall@10",
    ...                                  "candidate_recall"]].to_string(index=False))
     alpha  users_eval  users_skipped  recall@10  candidate_recall
       0.0           2              0       0.25              0.75
       1.0           1              1       1.00              0.50
    """
    labels = np.asarray(cohorts, dtype=object)
    grid = [float(a) for a in grid]
    n_users, n_alpha = len(labels), len(grid)
    arrays = {}
    for name in ("recall", "map", "ndcg"):
        arr = np.asarray(per_user[name], dtype=np.float64)
        if arr.shape != (n_users, n_alpha):
            raise ValueError(
                f"summarise_grid: per_user[{name!r}] has shape {arr.shape}, expected "
                f"(users, alphas) = ({n_users}, {n_alpha})"
            )
        arrays[name] = arr
    if len(alpha_seconds) != n_alpha or len(alpha_timed_out) != n_alpha:
        raise ValueError(
            "summarise_grid: alpha_seconds and alpha_timed_out need one value per alpha"
        )
    pool = np.asarray(pool_size, dtype=np.float64)
    hits = np.asarray(candidate_hits, dtype=np.float64)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    present = [c for c in COHORTS if (labels == c).any()] + sorted(
        {str(c) for c in labels} - set(COHORTS)
    )
    groups = [("all", np.ones(n_users, bool))] + [(c, labels == c) for c in present]
    if eligible_users is not None:
        for cohort in eligible_users:
            if cohort != "all" and cohort not in present:
                groups.append((cohort, np.zeros(n_users, bool)))
    rows = []
    for j, alpha in enumerate(grid):
        done = ~np.isnan(arrays["recall"][:, j])
        for cohort, member in groups:
            sel = member & done
            n_eval = int(sel.sum())
            if eligible_users is not None:
                eligible = int(eligible_users.get(cohort, int(member.sum())))
            else:
                eligible = int(member.sum())
            rows.append(
                {
                    "alpha": alpha,
                    "cohort": cohort,
                    "users_eval": n_eval,
                    "users_skipped": max(0, eligible - n_eval),
                    "mean_cand": float(pool[sel].mean()) if n_eval else float("nan"),
                    "candidate_recall": float(hits[sel].sum() / n_rel[sel].sum())
                    if n_eval and n_rel[sel].sum() > 0
                    else float("nan"),
                    f"recall@{TUNING_K}": float(arrays["recall"][sel, j].mean())
                    if n_eval
                    else float("nan"),
                    f"map@{TUNING_K}": float(arrays["map"][sel, j].mean())
                    if n_eval
                    else float("nan"),
                    f"ndcg@{TUNING_K}": float(arrays["ndcg"][sel, j].mean())
                    if n_eval
                    else float("nan"),
                    "alpha_time_sec": float(alpha_seconds[j]),
                    "alpha_timed_out": bool(alpha_timed_out[j]),
                }
            )
    table = pd.DataFrame(rows, columns=list(TUNING_COLUMNS))
    return table.astype({"users_eval": "int64", "users_skipped": "int64", "alpha_timed_out": bool})


def tuning_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus derived flags for its suite: ``key_unique`` ((alpha, cohort) occurs once),
    ``metrics_present`` (the metric columns are set exactly when users_eval > 0)."""
    out = table.copy()
    key = out["alpha"].astype(float).round(9).astype(str) + "|" + out["cohort"].astype(str)
    out["key_unique"] = ~key.duplicated(keep=False).to_numpy()
    metric = out[f"recall@{TUNING_K}"].astype(float)
    out["metrics_present"] = (metric.notna() == (out["users_eval"] > 0)).to_numpy()
    return out


def write_tuning_results(
    table: pd.DataFrame, run_dir: Any, relpath: str = TUNING_FILE
) -> ArtifactRef:
    """Write the tuning table as CSV (atomic), floats with full precision."""
    return write_text(table.to_csv(index=False, float_format="%.10g"), run_dir, relpath)


# --------------------------------------------------------------------------- policy


def _best_row(rows: pd.DataFrame, metric: str, tie_metric: str) -> pd.Series:
    ranked = rows.assign(
        _m=rows[metric].astype(float).round(_ROUND),
        _t=rows[tie_metric].astype(float).round(_ROUND),
    ).sort_values(["_m", "_t", "alpha"], ascending=[False, False, True], kind="stable")
    return ranked.iloc[0]


def choose_alphas(
    tuning_results: pd.DataFrame,
    fallback: Mapping[str, float],
    *,
    cohorts: Iterable[str] = COHORTS,
    metric: str = f"recall@{TUNING_K}",
    tie_metric: str = f"map@{TUNING_K}",
    allow_timed_out: bool = True,
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """The alpha of each cohort by :data:`SELECTION_RULE`; returns (alphas, choices).

    ``choices[cohort]`` records how: alpha, the metric values, users_eval, the number of eligible
    grid points, ``reason`` and ``tied`` (alphas with the same Recall@10, when MAP@10 or the
    alpha broke the tie). ``fallback`` (the seed policy) gives the alpha of a cohort no grid
    point evaluated - and, with ``allow_timed_out=False`` (the evaluation stage: a timed-out
    point has no list for the users it skipped), of a cohort whose every point timed out.

    >>> t = pd.DataFrame({"alpha": [0.0, 0.5, 1.0], "cohort": "light", "users_eval": 5,
    ...                   "recall@10": [0.1, 0.3, 0.3], "map@10": [0.1, 0.1, 0.2],
    ...                   "alpha_timed_out": False})
    >>> alphas, why = choose_alphas(t, {"light": 0.4, "cold": 0.15}, cohorts=["light", "cold"])
    >>> alphas, why["light"]["tied"], why["cold"]["reason"]
    ({'light': 1.0, 'cold': 0.15}, [0.5, 1.0], 'no evaluated users in this cohort: kept the seed policy alpha')
    """
    needed = {"alpha", "cohort", "users_eval", metric, tie_metric}
    missing = needed - set(tuning_results.columns)
    if missing:
        raise ValueError(f"choose_alphas: the tuning table lacks columns {sorted(missing)}")
    timed = (
        tuning_results["alpha_timed_out"].astype(bool)
        if "alpha_timed_out" in tuning_results.columns
        else pd.Series(False, index=tuning_results.index)
    )
    alphas: dict[str, float] = {}
    choices: dict[str, dict[str, Any]] = {}
    for cohort in cohorts:
        rows = tuning_results.loc[
            (tuning_results["cohort"].astype(str) == cohort)
            & (tuning_results["users_eval"] > 0)
            & tuning_results[metric].notna()
        ]
        finished = rows.loc[~timed.loc[rows.index]]
        if not finished.empty:
            pool, reason = finished, "best of the grid points that finished"
        elif not rows.empty and allow_timed_out:
            pool = rows
            reason = (
                "every grid point ran out of its time budget: chosen on the users each finished"
            )
        else:
            if cohort not in fallback:
                raise ValueError(
                    f"choose_alphas: cohort {cohort!r} has no evaluated users and no fallback alpha"
                )
            why = (
                "every grid point ran out of its time budget: kept the seed policy alpha"
                if not rows.empty
                else "no evaluated users in this cohort: kept the seed policy alpha"
            )
            alphas[cohort] = float(fallback[cohort])
            choices[cohort] = {
                "alpha": float(fallback[cohort]),
                "reason": why,
                "users_eval": 0,
                "grid_points": 0,
            }
            continue
        best = _best_row(pool, metric, tie_metric)
        best_metric = round(float(best[metric]), _ROUND)
        tied = sorted(
            float(a)
            for a, v in zip(pool["alpha"], pool[metric].astype(float), strict=True)
            if round(float(v), _ROUND) == best_metric
        )
        alphas[cohort] = float(best["alpha"])
        choices[cohort] = {
            "alpha": float(best["alpha"]),
            metric: float(best[metric]),
            tie_metric: float(best[tie_metric]),
            "users_eval": int(best["users_eval"]),
            "grid_points": int(len(pool)),
            "reason": reason,
            "tied": tied if len(tied) > 1 else [],
        }
    return alphas, choices


def _choice_text(cohort: str, choice: Mapping[str, Any], metric: str, tie_metric: str) -> str:
    if choice.get("users_eval", 0) == 0:
        return f"alpha {choice['alpha']:g}: {choice['reason']}"
    text = (
        f"alpha {choice['alpha']:g}: {metric} {choice[metric]:.4f}, {tie_metric} "
        f"{choice[tie_metric]:.4f} over {choice['users_eval']:,} users ({choice['reason']}, "
        f"{choice['grid_points']} grid points)"
    )
    if choice.get("tied"):
        text += f"; {metric} tied at alphas {', '.join(f'{a:g}' for a in choice['tied'])}"
    return text


def policy_document(
    alphas: Mapping[str, float],
    choices: Mapping[str, Mapping[str, Any]],
    *,
    grid: Sequence[float],
    run_id: str,
    profile: str,
    n_users: Mapping[str, int],
    seed_policy: Mapping[str, float],
    mmr_in_grid: bool,
    timed_out_alphas: Sequence[float] = (),
    created: str | None = None,
    metric: str = f"recall@{TUNING_K}",
    tie_metric: str = f"map@{TUNING_K}",
) -> dict[str, Any]:
    """The bucket-gate policy as written to ``tuning/policy.json``.

    ``{"version", "kind", "policy_id", "alphas": {cohort: alpha}, "provenance": {...}}``; the
    provenance holds one sentence per cohort (how its alpha was chosen) and the run id, profile,
    grid, selection rule, users per cohort, seed policy, whether MMR ran in the grid, the grid
    points that timed out and the creation time. ``policy_id`` is a hash of the alphas only, so the
    same policy has the same id in every run.
    """
    alphas = {c: float(a) for c, a in alphas.items()}
    policy_id = hashlib.sha256(json.dumps(alphas, sort_keys=True).encode()).hexdigest()[:12]
    provenance: dict[str, Any] = {
        cohort: _choice_text(cohort, choices[cohort], metric, tie_metric) for cohort in alphas
    }
    provenance.update(
        {
            "run_id": run_id,
            "profile": profile,
            "grid": [float(a) for a in grid],
            "selection_rule": SELECTION_RULE,
            "n_users": {c: int(n) for c, n in n_users.items()},
            "seed_policy": {c: float(a) for c, a in seed_policy.items()},
            "mmr_in_grid": bool(mmr_in_grid),
            "timed_out_alphas": [float(a) for a in timed_out_alphas],
            "choices": {c: dict(v) for c, v in choices.items()},
            "created": created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    return {
        "version": POLICY_VERSION,
        "kind": "bucket_gate_policy",
        "policy_id": policy_id,
        "alphas": alphas,
        "provenance": provenance,
    }


def write_policy(
    document: Mapping[str, Any], run_dir: Any, relpath: str = POLICY_FILE
) -> ArtifactRef:
    """Write ``tuning/policy.json`` (atomic)."""
    missing = {"version", "alphas", "provenance"} - set(document)
    if missing:
        raise ValueError(f"policy document lacks {sorted(missing)}")
    return write_json(dict(document), run_dir, relpath)


# --------------------------------------------------------------------------- gates


def _value(rows: pd.DataFrame, model: str, cohort: str) -> pd.Series | None:
    hit = rows.loc[(rows["model"] == model) & (rows["cohort"] == cohort)]
    return None if hit.empty else hit.iloc[0]


def acceptance_gates(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    *,
    min_lift: float,
    policy_model: str = POLICY_MODEL,
    baselines: Sequence[str] = BASELINE_MODELS,
    cohorts: Sequence[str] = COHORTS,
    metric: str = "recall",
    k: int = TUNING_K,
) -> dict[str, Any]:
    """The acceptance gates (module docstring) from the long metrics table and the paired tests.

    Returns ``{"gates": [{"name", "description", "measured", "threshold", "passed", "details"}],
    "all_passed", "policy_model", "metric", "k", "min_lift"}``.

    >>> m = pd.DataFrame({"model": ["tuned_policy", "cf_full"], "cohort": "all", "metric": "recall",
    ...                   "k": 10, "value": [0.104, 0.100], "ci_low": 0.0, "ci_high": 1.0, "n_users": 9})
    >>> g = acceptance_gates(m, None, min_lift=0.05, baselines=["cf_full"], cohorts=[])
    >>> g["gates"][0]["passed"], round(g["gates"][0]["measured"], 3), g["all_passed"]
    (False, 0.04, False)
    """
    rows = metrics.loc[(metrics["metric"] == metric) & (metrics["k"].astype(int) == int(k))].copy()
    rows["model"] = rows["model"].astype(str)
    rows["cohort"] = rows["cohort"].astype(str)
    label = f"{metric.capitalize() if metric != 'map' else 'MAP'}@{k}"
    gates: list[dict[str, Any]] = []

    def best_baseline(cohort: str) -> pd.Series | None:
        base = rows.loc[(rows["cohort"] == cohort) & rows["model"].isin(list(baselines))]
        if base.empty:
            return None
        return base.sort_values(["value", "model"], ascending=[False, True], kind="stable").iloc[0]

    # 1. lift over the best baseline, all users
    mine, best = _value(rows, policy_model, "all"), best_baseline("all")
    gate: dict[str, Any] = {
        "name": "lift_over_best_baseline",
        "description": f"{policy_model} {label} over all evaluated users is at least (1 + min_lift) "
        f"times the best baseline's",
        "threshold": float(min_lift),
    }
    if mine is None or best is None:
        gate.update(
            measured=None, passed=None, details=f"no {label} rows for the policy or the baselines"
        )
    else:
        value, base_value = float(mine["value"]), float(best["value"])
        if base_value > 0:
            lift = (value - base_value) / base_value
            passed = bool(lift >= min_lift)
        else:
            lift = float("inf") if value > 0 else float("nan")
            passed = bool(value > 0)
        gate.update(
            measured=lift,
            passed=passed,
            details={
                "policy_value": value,
                "best_baseline": str(best["model"]),
                "baseline_value": base_value,
                "n_users": int(mine["n_users"]),
            },
        )
    gates.append(gate)

    # 2. no cohort worse than its best baseline beyond its confidence interval
    for cohort in cohorts:
        gate = {
            "name": f"no_regression_{cohort}",
            "description": f"{policy_model} {label} in cohort {cohort} is not worse than the cohort's "
            "best baseline beyond the paired-bootstrap interval (upper end of the interval of "
            "tuned - baseline >= 0)",
            "threshold": 0.0,
        }
        mine, best = _value(rows, policy_model, cohort), best_baseline(cohort)
        if mine is None or best is None:
            gate.update(measured=None, passed=None, details="no evaluated users in this cohort")
            gates.append(gate)
            continue
        details: dict[str, Any] = {
            "policy_value": float(mine["value"]),
            "best_baseline": str(best["model"]),
            "baseline_value": float(best["value"]),
            "n_users": int(mine["n_users"]),
        }
        pair = None
        if paired is not None and not paired.empty:
            hit = paired.loc[
                (paired["model"].astype(str) == policy_model)
                & (paired["baseline"].astype(str) == str(best["model"]))
                & (paired["cohort"].astype(str) == cohort)
                & (paired["metric"].astype(str) == metric)
                & (paired["k"].astype(int) == int(k))
            ]
            pair = None if hit.empty else hit.iloc[0]
        if pair is not None:
            diff, high = float(pair["mean_diff"]), float(pair["ci_high"])
            details.update(rule="paired", ci_low=float(pair["ci_low"]), ci_high=high)
            if "p_value" in pair.index:
                details["p_value"] = float(pair["p_value"])
            gate.update(measured=diff, passed=bool(high >= 0.0), details=details)
        else:
            diff = float(mine["value"]) - float(best["value"])
            details.update(rule="unpaired", baseline_ci_low=float(best["ci_low"]))
            gate.update(
                measured=diff,
                passed=bool(float(mine["value"]) >= float(best["ci_low"])),
                details=details,
            )
        gates.append(gate)
    return {
        "gates": gates,
        "all_passed": bool(gates) and all(g["passed"] is True for g in gates),
        "policy_model": policy_model,
        "metric": metric,
        "k": int(k),
        "min_lift": float(min_lift),
    }
