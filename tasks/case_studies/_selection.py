"""Case selection: users spread round-robin over (outcome, cohort) slots (part of
:mod:`tasks.case_studies`).

Outcomes (:data:`OUTCOMES`): best hits (highest Recall@k), total misses (no hit, most held-out
relevant titles), most relaxed filters (relaxation step >= 1, fewest matches) and most redundant
lists (lowest ILD). A slot without an eligible user is skipped and the report says so. Ties go to
the smaller user id, so the selection is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tasks.case_studies._taxonomy import categories_of, cohort_groups
from tasks.columns import Col
from tasks.profile import CaseStudiesSection

__all__ = ["OUTCOMES", "select_cases"]

#: Outcome -> (label, what makes a user eligible and how they are ranked).
OUTCOMES: dict[str, tuple[str, str]] = {
    "best_hits": (
        "best hits",
        "at least one hit; most hits in the top k, then highest Recall@k, then user id",
    ),
    "total_misses": (
        "total misses",
        "no hit; most held-out relevant titles (the most glaring miss), then user id",
    ),
    "most_relaxed": (
        "most relaxed filters",
        "relaxation step >= 1; highest step, then fewest filter matches, then user id",
    ),
    "most_redundant": (
        "most redundant lists",
        "a list of at least 2 items; lowest ILD@k, then largest same-genre-set share, then user id",
    ),
}


def _slot_order(taxonomy: pd.DataFrame, outcome: str, mask: np.ndarray) -> np.ndarray:
    """Row positions of the eligible users of one (outcome, cohort) slot, best first."""
    t = taxonomy
    uid = t[Col.USER].to_numpy(np.int64)
    if outcome == "best_hits":
        ok = mask & (t["n_hits"].to_numpy() > 0)
        keys = (uid, -t["recall"].to_numpy(np.float64), -t["n_hits"].to_numpy())
    elif outcome == "total_misses":
        ok = mask & (t["n_hits"].to_numpy() == 0) & (t["n_relevant"].to_numpy() > 0)
        keys = (uid, -t["n_relevant"].to_numpy())
    elif outcome == "most_relaxed":
        ok = mask & (t[Col.RELAXATION_STEP].to_numpy() >= 1)
        keys = (uid, t["filter_matches"].to_numpy(), -t[Col.RELAXATION_STEP].to_numpy().astype(int))
    elif outcome == "most_redundant":
        ok = mask & (t["list_length"].to_numpy() >= 2)
        keys = (
            uid,
            -np.nan_to_num(t["same_genres_share"].to_numpy(np.float64)),
            np.nan_to_num(t["ild"].to_numpy(np.float64), nan=np.inf),
        )
    else:
        raise ValueError(f"unknown outcome {outcome!r}; known: {list(OUTCOMES)}")
    rows = np.flatnonzero(ok)
    return rows[np.lexsort(tuple(key[rows] for key in keys))]


def _reason(
    row: Mapping[str, Any], outcome: str, cohort: str, rank: int, eligible: int, k: int
) -> str:
    if outcome == "best_hits":
        what = f"Recall@{k} {row['recall']:.2f} ({row['n_hits']} of {row['n_relevant']} held-out relevant titles in the top {k})"
    elif outcome == "total_misses":
        what = f"no hit in the top {k} although {row['n_relevant']} held-out titles were relevant"
    elif outcome == "most_relaxed":
        what = (
            f"only {row['filter_matches']} unseen movies match the filter '{row['filter_genre']}'"
            f" (fewer than {k}): relaxation step {row[Col.RELAXATION_STEP]}"
        )
    else:
        what = f"ILD@{k} {row['ild']:.2f}, same-genre-set share {row['same_genres_share']:.2f}"
    return (
        f"{OUTCOMES[outcome][0]} in cohort {cohort}: {what}; #{rank} of {eligible} eligible users"
    )


def select_cases(taxonomy: pd.DataFrame, cfg: CaseStudiesSection) -> tuple[pd.DataFrame, list[str]]:
    """Pick ``cfg.n_cases`` users round-robin over (outcome, cohort) slots.

    Round r takes, for every outcome of :data:`OUTCOMES` and every cohort, the slot's best user not
    already picked (a user is shown once, under the first slot that reaches them). Returns the
    selection (user_id, cohort, outcome, outcome_label, slot_rank, slot_eligible, reason, recall,
    n_hits, n_relevant, categories) and notes on empty slots. The loop runs over picks (at most
    ``n_cases`` plus skipped duplicates), never over all users.
    """
    k = int(cfg.k)
    groups = [(c, m) for c, m in cohort_groups(taxonomy) if c != "all"]
    slots = [
        (outcome, cohort, _slot_order(taxonomy, outcome, mask))
        for outcome in OUTCOMES
        for cohort, mask in groups
    ]
    notes = [
        f"no eligible user for '{OUTCOMES[o][0]}' in cohort {c} ({OUTCOMES[o][1].split(';')[0]})"
        for o, c, rows in slots
        if len(rows) == 0
    ]
    cursor = [0] * len(slots)
    taken: set[int] = set()
    picks: list[dict[str, Any]] = []
    records = taxonomy.to_dict("records") if len(slots) else []
    while len(picks) < cfg.n_cases and any(cursor[i] < len(s[2]) for i, s in enumerate(slots)):
        for i, (outcome, cohort, rows) in enumerate(slots):
            if len(picks) >= cfg.n_cases:
                break
            while cursor[i] < len(rows) and int(rows[cursor[i]]) in taken:
                cursor[i] += 1
            if cursor[i] >= len(rows):
                continue
            row_pos = int(rows[cursor[i]])
            cursor[i] += 1
            taken.add(row_pos)
            row = records[row_pos]
            picks.append(
                {
                    Col.USER: np.int32(row[Col.USER]),
                    Col.COHORT: cohort,
                    "outcome": outcome,
                    "outcome_label": OUTCOMES[outcome][0],
                    "slot_rank": np.int32(cursor[i]),
                    "slot_eligible": np.int32(len(rows)),
                    "reason": _reason(row, outcome, cohort, cursor[i], len(rows), k),
                    "recall": np.float32(row["recall"]),
                    "n_hits": np.int32(row["n_hits"]),
                    "n_relevant": np.int32(row["n_relevant"]),
                    "categories": ", ".join(categories_of(row)) or "none",
                }
            )
    columns = [
        Col.USER,
        Col.COHORT,
        "outcome",
        "outcome_label",
        "slot_rank",
        "slot_eligible",
        "reason",
        "recall",
        "n_hits",
        "n_relevant",
        "categories",
    ]
    frame = pd.DataFrame(picks, columns=columns)
    for col in (Col.USER, "slot_rank", "slot_eligible", "n_hits", "n_relevant"):
        frame[col] = frame[col].astype(np.int32)
    frame["recall"] = frame["recall"].astype(np.float32)
    for col in (Col.COHORT, "outcome", "outcome_label", "reason", "categories"):
        frame[col] = frame[col].astype("string")
    return frame, notes
