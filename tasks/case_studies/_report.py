"""``reports/case_studies.md`` and its facts table (part of :mod:`tasks.case_studies`).

Every number in the report comes from the taxonomy table, the selection or the stage's facts;
the facts table (suite ``expectations/case_studies_report.json``) checks that the report has its
sections, that every relative link resolves and that every picture decodes at the fixed size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.case_studies._selection import OUTCOMES
from tasks.case_studies._taxonomy import (
    CATEGORIES,
    LIST_COLUMN,
    category_shares,
    cohort_groups,
    hit_rate_contrast,
)
from tasks.case_studies._triptych import triptych_pixel_size
from tasks.columns import Col
from tasks.profile import CaseStudiesSection

__all__ = ["CASE_FILES", "case_report", "report_facts"]

#: Files of the stage inside the run directory.
CASE_FILES: dict[str, str] = {
    "taxonomy": "case_studies/taxonomy.parquet",
    "selected": "case_studies/selected.parquet",
    "report": "reports/case_studies.md",
}
_REPORT_SECTIONS = (
    "## Rules",
    "## Share of users per category",
    "## Hit rate inside vs outside",
    "## Selected cases",
)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def _thresholds(cfg: CaseStudiesSection) -> dict[str, str]:
    return {
        "redundancy": f"redundancy_max_ild = {cfg.redundancy_max_ild:g}, "
        f"redundancy_max_same_genres_share = {cfg.redundancy_max_same_genres_share:g}",
        "temporal_drift": f"temporal_drift_years = {cfg.temporal_drift_years:g}, "
        f"temporal_recent_n = {cfg.temporal_recent_n}",
        "popularity_bias": f"popularity_bias_ratio = {cfg.popularity_bias_ratio:g}",
        "genre_mismatch": f"genre_mismatch_max_overlap = {cfg.genre_mismatch_max_overlap:g}",
        "cold_start_miss": f"k = {cfg.k}",
        "filter_over_constraint": f"k = {cfg.k}, filter_providers = {list(cfg.filter_providers)}",
    }


def case_report(
    taxonomy: pd.DataFrame,
    selected: pd.DataFrame,
    notes: Sequence[str],
    cfg: CaseStudiesSection,
    facts: Mapping[str, Any],
    pictures: Mapping[int, str],
) -> str:
    """reports/case_studies.md: rules, shares per cohort, hit rate in vs out, the cases with pictures.

    ``pictures`` maps user id -> the picture's path relative to the run directory; links are
    written relative to ``reports/``. Every number comes from ``taxonomy`` / ``selected`` /
    ``facts``.
    """
    k = cfg.k
    shares = category_shares(taxonomy)
    contrast = hit_rate_contrast(taxonomy)
    cohorts = [c for c, _ in cohort_groups(taxonomy)]
    match = facts.get("triptych_list_match", {})
    lines = [
        "# Case studies and error taxonomy",
        "",
        f"Every evaluated user ({len(taxonomy):,}) is classified on the tuned policy's top-{k} list as "
        "the evaluation scored it (`eval/per_user.parquet`, column "
        f"`{LIST_COLUMN}`); the per-user table is `case_studies/taxonomy.parquet` (one row per user: "
        "the measures below and one boolean column per category), validated by "
        "`expectations/case_studies.json`. A hit is a held-out relevant title in the top "
        f"{k}; HitRate@{k} is the share of users with at least one hit. Policy (content weight alpha "
        "per cohort, from `tuning/policy.json`"
        + (f", policy id `{facts['policy_id']}`" if facts.get("policy_id") else "")
        + "): "
        + (", ".join(f"{c} {a:g}" for c, a in facts.get("policy_alphas", {}).items()) or "n/a")
        + ".",
        "",
        "## Rules",
        "",
        "Thresholds are fields of `[case_studies]` in the run profile. A rule whose inputs are missing "
        "(no training history, no known release years, no genres) does not flag the user.",
        "",
        "| category | rule | thresholds |",
        "|---|---|---|",
    ]
    thresholds = _thresholds(cfg)
    for category, rule in CATEGORIES.items():
        cells = (category, rule, thresholds[category])
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Measures (columns of the table): `ild` = 1 - mean pairwise cosine of the list's content "
        "embeddings; `same_genres_share` = largest group of list items with one identical non-empty "
        "genre set / list length; `list_year`, `recent_year` = mean release years; `list_popularity`, "
        "`history_popularity` = mean number of training ratings per movie; `genre_overlap` = "
        "sum over genres of min(h_g, r_g), each title spreading weight 1 over its genres; "
        "`filter_genre` = the genre on most of the user's training titles, `filter_matches` = unseen "
        "movies with metadata that pass the filter, `relaxation_step` = what "
        "`tasks.ranking.relaxation_steps` returns for it (0 = none needed).",
        "",
        "## Share of users per category",
        "",
        "Share of each cohort's evaluated users flagged (count in brackets); a user can be in "
        "several categories.",
        "",
        "| category | "
        + " | ".join(
            f"{c} (n={int((taxonomy[Col.COHORT] == c).sum()) if c != 'all' else len(taxonomy)})"
            for c in cohorts
        )
        + " |",
        "|---|" + "---:|" * len(cohorts),
    ]
    for category in CATEGORIES:
        cells = []
        for cohort in cohorts:
            r = shares[(shares.category == category) & (shares.cohort == cohort)].iloc[0]
            cells.append(f"{_pct(r.share)} ({r.n_flagged})")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    none = taxonomy["n_categories"].to_numpy() == 0
    if len(taxonomy):
        fewest = taxonomy.loc[taxonomy["filter_matches"].idxmin()]
        lines += [
            "",
            f"Filter over-constraint context: the fewest unseen movies matching a user's case-study "
            f"filter is {int(fewest.filter_matches):,} (user {int(fewest[Col.USER])}, genre "
            f"'{fewest.filter_genre}'); the rule needs fewer than {k}.",
        ]
    lines += [
        "",
        f"Users in no category: {int(none.sum()):,} of {len(taxonomy):,} ({_pct(none.mean() if len(none) else float('nan'))}).",
        "",
    ]
    lines += [
        f"## Hit rate inside vs outside each category (HitRate@{k})",
        "",
        f"All users. `difference` = HitRate@{k} inside - outside (n/a when a side has no user).",
        "",
        "| category | users in | hit rate in | users out | hit rate out | difference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for category in CATEGORIES:
        r = contrast[(contrast.category == category) & (contrast.cohort == "all")].iloc[0]
        diff = "n/a" if r.difference != r.difference else f"{100 * r.difference:+.1f} pts"
        lines.append(
            f"| {category} | {r.n_in} | {_pct(r.hit_rate_in)} | {r.n_out} | {_pct(r.hit_rate_out)} | {diff} |"
        )
    per_cohort = [c for c in cohorts if c != "all"]
    lines += [
        "",
        "Per cohort, hit rate inside / outside (users inside):",
        "",
        "| category | " + " | ".join(per_cohort) + " |",
        "|---|" + "---|" * len(per_cohort),
    ]
    for category in CATEGORIES:
        cells = []
        for cohort in per_cohort:
            r = contrast[(contrast.category == category) & (contrast.cohort == cohort)].iloc[0]
            cells.append(f"{_pct(r.hit_rate_in)} / {_pct(r.hit_rate_out)} ({r.n_in})")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Selected cases ({len(selected)} of n_cases = {cfg.n_cases})",
        "",
        "Users are picked round-robin over (outcome, cohort) slots, one user at most once:",
        "",
    ]
    lines += [f"- **{label}**: {rule}." for label, rule in OUTCOMES.values()]
    if notes:
        lines += ["", "Empty slots:", ""] + [f"- {n}" for n in notes]
    users = match.get("users", 0)
    lines += [
        "",
        "Each picture: left the user's training history (most recent, then top rated; star = "
        "rating), middle the evaluated top-"
        f"{k} with the score recomputed by the ranking engine (`tasks.ranking.rank_batch` with the "
        "run's policy from `tuning/policy.json`: the cohort's tuned alpha, boosts, MMR) split into "
        "its weighted collab / content / boost parts, right the held-out ratings (green check = "
        "hit). The parts are per-user z-scores over the user's candidate pool (0 = the pool's "
        "average, negative = below it), not [0, 1] shares. Where the engine has no CF score, the "
        "collab part is labelled with what it used instead: popularity (a user without CF "
        "evidence) or the pool minimum (an item without CF evidence).",
        "",
        f"Recomputed lists identical to the evaluated ones: top {k} for "
        f"{match.get('identical_top_k', 0)} of {users} cases, the full stored list "
        f"(length {match.get('width', 'n/a')}) for {match.get('identical_full', 0)} of {users}.",
    ]
    if users and match.get("identical_top_k", 0) < users:
        lines.append(
            f"**Mismatch:** {users - match.get('identical_top_k', 0)} recomputed top-{k} lists differ "
            "from the evaluated ones (users "
            f"{match.get('mismatched_users', [])}); the pictures show the evaluated list, and a "
            "title the recomputation did not return reads 'score n/a'."
        )
    if len(selected):
        counts = {c: 0 for c in CATEGORIES}
        for cats in selected["categories"].astype(str):
            for c in cats.split(", "):
                if c in counts:
                    counts[c] += 1
        lines += [
            "",
            "Categories among the selected cases:",
            "",
            "| category | cases |",
            "|---|---:|",
        ]
        lines += [f"| {c} | {n} |" for c, n in counts.items()]
    by_user = taxonomy.set_index(Col.USER)
    for cohort in per_cohort:
        part = selected[selected[Col.COHORT] == cohort]
        if not len(part):
            continue
        lines += ["", f"### Cohort {cohort}"]
        for r in part.itertuples(index=False):  # the selected cases only
            uid = int(getattr(r, Col.USER))
            t = by_user.loc[uid]
            lines += [
                "",
                f"#### User {uid} - {r.outcome_label}",
                "",
                f"- Why: {r.reason}.",
                f"- Categories: {r.categories}.",
                f"- Measures: ILD@{k} {t.ild:.2f}, same-genre-set share {t.same_genres_share:.2f}, "
                f"year gap {t.year_gap:.1f}, popularity ratio {t.popularity_ratio:.2f}, genre overlap "
                f"{t.genre_overlap:.2f}, filter '{t.filter_genre}' matches {t.filter_matches} "
                f"(step {t.relaxation_step}).",
                "",
                f"![user {uid}](../{pictures[uid]})" if uid in pictures else "(no picture)",
            ]
    return "\n".join(lines) + "\n"


def report_facts(report_path: Path, run_dir: Path, pictures: Mapping[int, str]) -> pd.DataFrame:
    """The derived facts table of reports/case_studies.md: one row per check (check, ok).

    Checks: the report parses as UTF-8 and has its sections; every relative link resolves; every
    picture decodes (PIL when installed, else matplotlib) at :func:`triptych_pixel_size`.
    """
    import re

    rows: list[dict[str, Any]] = []
    text = report_path.read_text(encoding="utf-8")
    for section in _REPORT_SECTIONS:
        rows.append({"check": f"section '{section}'", "ok": section in text})
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if "://" in target:
            continue
        rows.append(
            {"check": f"link {target}", "ok": (report_path.parent / target).resolve().is_file()}
        )
    expected = triptych_pixel_size()
    for uid, rel in sorted(pictures.items()):
        size = _png_size(run_dir / rel)
        rows.append(
            {"check": f"picture of user {uid} decodes at {expected}", "ok": size == expected}
        )
    return pd.DataFrame(rows, columns=["check", "ok"]).astype({"check": "string", "ok": bool})


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a decoded PNG, or None when it does not decode."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            return img.size
    except ImportError:
        pass
    except (OSError, ValueError, SyntaxError):
        return None
    try:
        import matplotlib.image as mpimg

        arr = mpimg.imread(path)
        return (int(arr.shape[1]), int(arr.shape[0]))
    except (OSError, ValueError, SyntaxError):
        return None
