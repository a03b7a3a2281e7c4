"""The alpha grid of one configuration: the tuning table and the per-cohort alpha choice.

Part of :mod:`tasks.tuning`. Inside every policy trial of the search (:mod:`tasks.tuning._search`)
each validation user is ranked at every alpha of ``tuning.alpha_grid`` over the same pools; this
module turns those per-user numbers into the tuning table (:func:`summarise_grid`, written as
``tuning/tuning_results.csv`` for the chosen configuration) and picks one alpha per activity
cohort (:func:`choose_alphas`). Cohorts are disjoint sets of users, so choosing each cohort's
alpha on its own maximises the mean over all users exactly. Pure functions of tables.

Selection rule (per cohort c, over the grid points that evaluated at least one user of c)::

    alpha_c = argmax_alpha  Recall@10_c(alpha),  ties by MAP@10_c(alpha), then the smaller alpha

Values are compared after rounding to 12 decimals, so two alphas that give the same lists tie
instead of being separated by float noise. A cohort with no validation user keeps the seed
policy's alpha, and the provenance says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import COHORTS
from tasks.io import ArtifactRef, write_text

__all__ = [
    "SELECTION_RULE",
    "TUNING_COLUMNS",
    "TUNING_FILE",
    "TUNING_K",
    "choice_text",
    "choose_alphas",
    "summarise_grid",
    "tuning_check_frame",
    "write_tuning_results",
]

#: The cut-off the grid is judged at (Recall@10 / MAP@10).
TUNING_K = 10
#: Columns of ``tuning/tuning_results.csv``, in order.
TUNING_COLUMNS: tuple[str, ...] = (
    "split",
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
SELECTION_RULE = (
    f"per cohort, the alpha of the grid with the highest Recall@{TUNING_K} over the cohort's "
    f"validation users; ties by MAP@{TUNING_K}, then the smaller alpha"
)
_ROUND = 12


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
    split: str = "validation",
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
    >>> print(t.loc[t.cohort == "all", ["split", "alpha", "users_eval", "users_skipped",
    ...                                  "recall@10", "candidate_recall"]].to_string(index=False))
         split  alpha  users_eval  users_skipped  recall@10  candidate_recall
    validation    0.0           2              0       0.25              0.75
    validation    1.0           1              1       1.00              0.50
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
                    "split": split,
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


def choice_text(cohort: str, choice: Mapping[str, Any], metric: str, tie_metric: str) -> str:
    """One sentence: how a cohort's alpha was chosen (for the policy's provenance)."""
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
