"""The ``case_studies`` stage: core and Prefect shell (part of :mod:`tasks.case_studies`).

The core reads the evaluation's per-user table (the evaluated lists), classifies every user
(:mod:`tasks.case_studies._taxonomy`), selects the cases (:mod:`tasks.case_studies._selection`),
recomputes the selected users' lists through the ranking engine with the run's policy
(:func:`tasks.ranking.read_policy`, :func:`tasks.ranking.rank_batch`) to get each score's parts,
counts how many recomputed lists equal the evaluated ones (a fact in the report; a mismatch does
not fail the stage), draws one triptych per case and writes the report.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.case_studies._panels import ScoreParts, case_panels, score_parts
from tasks.case_studies._report import CASE_FILES, case_report, report_facts
from tasks.case_studies._selection import select_cases
from tasks.case_studies._taxonomy import (
    LIST_COLUMN,
    Catalogue,
    category_shares,
    hit_rate_contrast,
    list_matrix,
    taxonomy_table,
    user_positions,
)
from tasks.case_studies._triptych import TriptychPanels, draw_triptych
from tasks.columns import Col
from tasks.io import ArtifactRef, read_table, write_table, write_text
from tasks.profile import CaseStudiesSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = ["case_studies_core", "recompute_lists", "refs_from_run", "study_cases"]

#: Files of a finished run that the case studies (and the edge cases) read, besides the content
#: features (tasks.content.FILES) and the CF models (models/cf/<role>/).
RUN_INPUTS = {
    "per_user": "eval/per_user.parquet",
    "policy": "tuning/policy.json",
    "baselines": "tuning/baselines.json",
    **{n: f"data/{n}.parquet" for n in ("train", "test", "cohorts", "movies", "dropped_history")},
}


def refs_from_run(run_dir: Path | str) -> dict[str, ArtifactRef]:
    """Input refs of a finished run directory (tests, re-runs): the content features, every file
    of ``models/cf/``, the evaluation's per-user table, the tuning documents and the split's
    tables - those that exist."""
    from tasks.content import FILES as CONTENT_FILES

    run_dir = Path(run_dir)
    files = {**CONTENT_FILES, **RUN_INPUTS}
    refs = {
        name: ArtifactRef.of(run_dir, rel)
        for name, rel in files.items()
        if (run_dir / rel).exists()
    }
    cf_root = run_dir / "models" / "cf"
    for path in sorted(cf_root.glob("*/*")) if cf_root.is_dir() else []:  # a few files per role
        if path.is_file():
            rel = path.relative_to(run_dir).as_posix()
            refs[f"cf_{path.parent.name}_{path.stem}"] = ArtifactRef.of(run_dir, rel)
    if (cf_root / "roles.json").exists():
        refs["cf_roles"] = ArtifactRef.of(run_dir, "models/cf/roles.json")
    return refs


def recompute_lists(
    arrays: Any, policy: Any, user_ids: np.ndarray, stored: np.ndarray, k: int
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """The selected users' lists through :func:`tasks.ranking.rank_batch` with the run's policy,
    compared with the evaluated lists ``stored`` (movie ids, one row per user, -1 pad).

    Ranked exactly as the evaluation ranks (``k_final``-long lists or longer, pools sized for
    ``k_final``), so the first items of each list are the evaluated ones. Returns the engine's
    result, whether each user's top ``k`` is identical, and the match facts: ``identical_top_k``
    (first ``k``), ``identical_full`` (the whole stored width), ``mismatched_users``.
    """
    from tasks.ranking import rank_batch

    width = int(stored.shape[1])
    k_list = max(int(policy.k_final), width)
    match: dict[str, Any] = {
        "users": int(len(user_ids)),
        "identical_top_k": 0,
        "identical_full": 0,
        "width": width,
        "k_list": k_list,
        "mismatched_users": [],
    }
    if len(user_ids) == 0:
        return {}, np.zeros(0, bool), match
    result = rank_batch(
        arrays, arrays.user_index(user_ids), policy, k=k_list, min_results=policy.k_final
    )
    items = result["item_idx"]
    got = np.where(items >= 0, arrays.item_ids[np.maximum(items, 0)], -1).astype(np.int64)
    same_k = (got[:, :k] == stored[:, :k]).all(axis=1)
    same_full = (got[:, :width] == stored).all(axis=1)
    match["identical_top_k"] = int(same_k.sum())
    match["identical_full"] = int(same_full.sum())
    match["mismatched_users"] = [int(u) for u in np.asarray(user_ids)[~same_k]]
    return result, same_k, match


def _panels_document(
    panels: TriptychPanels, ids: Mapping[str, list[int]], row: Mapping[str, Any]
) -> dict[str, Any]:
    return {"user_id": int(row[Col.USER]), "panels": asdict(panels), "movie_ids": dict(ids)}


def _rows_of_users(table: pd.DataFrame, user_ids: np.ndarray) -> dict[int, pd.DataFrame]:
    """Rows of ``table`` per user, for a handful of users (sort-based membership, no np.isin)."""
    wanted = np.sort(np.asarray(user_ids, dtype=np.int64))
    _, found = user_positions(wanted, table[Col.USER].to_numpy())
    sub = table[found]
    return {int(u): g for u, g in sub.groupby(Col.USER, sort=True)}


def _validate(df: pd.DataFrame, suite: str, source: str) -> dict[str, Any]:
    from tasks.validation import require_valid

    summary = require_valid(df, suite, source=source)
    return {"suite": suite, "success": summary["success"], "evaluated": summary["evaluated"]}


def _recall_mismatch(per_user: pd.DataFrame, taxonomy: pd.DataFrame, k: int) -> int | None:
    """Users whose recomputed Recall@k differs from the evaluation's (None: column absent)."""
    column = f"tuned_policy_recall@{k}"
    if column not in per_user:
        return None
    ours = taxonomy["recall"].to_numpy(np.float64)
    theirs = per_user[column].to_numpy(np.float64)
    return int((np.abs(theirs - ours) > 1e-4).sum())


def case_studies_core(
    run_dir: str, refs: Mapping[str, ArtifactRef], cfg: CaseStudiesSection, seed: int
) -> dict[str, Any]:
    """Taxonomy of every evaluated user, case selection, triptychs and the report.

    ``refs``: the content features (see :func:`tasks.content.load_content_features`), the
    evaluation's ``per_user``, and ``train``, ``test``, ``cohorts`` (``movies``,
    ``dropped_history`` when the run has them). The policy and its CF model come from the run
    directory (``tuning/policy.json``, ``models/cf/policy/``; a run made before the policy format
    2 is refused with a clear :class:`~tasks.errors.UsageError`). ``seed`` is recorded only:
    selection is deterministic (ties by user id).
    """
    from tasks.budget import report_progress
    from tasks.ranking import RecommenderArrays, fork_map, read_policy

    started = time.perf_counter()
    run_path = Path(run_dir)
    for name in ("per_user", "train", "test", "cohorts"):
        if name not in refs:
            raise ValueError(
                f"case studies need the artifact '{name}' (have {sorted(refs)}): pass the evaluation "
                "stage's output and the split's train/test/cohorts refs."
            )
    report_progress(0.02, "loading the evaluation's lists, the policy and its models")
    policy, policy_doc = read_policy(run_path)
    per_user = read_table(refs["per_user"])
    arrays = RecommenderArrays.from_run(run_path, refs=dict(refs))
    catalogue = Catalogue.from_arrays(arrays)
    train = read_table(refs["train"], columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP])
    test = read_table(refs["test"], columns=[Col.USER, Col.ITEM, Col.RATING, Col.RELEVANT])
    cohorts = read_table(refs["cohorts"], columns=[Col.USER, "n_train"])

    report_progress(0.2, f"taxonomy of {len(per_user):,} users")
    t0 = time.perf_counter()
    taxonomy = taxonomy_table(per_user, train, test, catalogue, cfg, n_train=cohorts)
    taxonomy_seconds = time.perf_counter() - t0
    validations = [_validate(taxonomy, "case_studies", CASE_FILES["taxonomy"])]
    artifacts: dict[str, ArtifactRef] = {
        "taxonomy": write_table(taxonomy, run_path, CASE_FILES["taxonomy"])
    }

    selected, notes = select_cases(taxonomy, cfg)
    ids = selected[Col.USER].to_numpy(np.int64)
    report_progress(0.4, f"recomputing {len(ids)} lists for the triptychs")
    width = max((len(v) for v in per_user[LIST_COLUMN]), default=cfg.k)
    stored = list_matrix(per_user, width)
    pos_in_per_user = {int(u): i for i, u in enumerate(per_user[Col.USER].to_numpy())}
    rows = np.array([pos_in_per_user[int(u)] for u in ids], dtype=np.int64)
    result, same_k, match = recompute_lists(arrays, policy, ids, stored[rows], int(cfg.k))
    parts_of: dict[int, dict[int, ScoreParts]] = {}
    alpha_of: dict[int, float] = {}
    identical: dict[int, bool] = {}
    if len(ids):
        user_idx = arrays.user_index(ids)
        alphas = policy.alphas_of(arrays.cohorts[user_idx])
        has_cf = arrays.user_has_factors[user_idx]
        for j, uid in enumerate(ids):  # the selected cases only (n_cases users)
            alpha_of[int(uid)] = float(alphas[j])
            identical[int(uid)] = bool(same_k[j])
            parts_of[int(uid)] = score_parts(
                result, j, float(alphas[j]), policy.boost_total, bool(has_cf[j])
            )

    histories = _rows_of_users(train, ids)
    held_outs = _rows_of_users(test, ids)
    empty_train, empty_test = train.iloc[:0], test.iloc[:0]
    by_user = taxonomy.set_index(Col.USER, drop=False)
    pictures: dict[int, str] = {}
    panel_files: dict[int, str] = {}
    documents: list[tuple[int, str, str, str]] = []  # (user, png, json, json text) per case
    to_draw: list[tuple[TriptychPanels, Path]] = []
    for sel in selected.to_dict("records"):  # one picture per selected case
        uid = int(sel[Col.USER])
        row = by_user.loc[uid].to_dict()
        items = catalogue.index_of(
            stored[pos_in_per_user[uid], : cfg.k], "the tuned policy's lists"
        )
        panels, movie_ids = case_panels(
            row,
            sel,
            histories.get(uid, empty_train),
            held_outs.get(uid, empty_test),
            items,
            parts_of.get(uid, {}),
            catalogue,
            cfg,
            alpha=alpha_of.get(uid),
            lambda_div=policy.lambda_div,
        )
        doc = _panels_document(panels, movie_ids, row)
        png_rel, json_rel = f"case_studies/user_{uid}.png", f"case_studies/user_{uid}.json"
        text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
        # checkpoint: a picture drawn from identical data in this run directory is kept
        old = run_path / json_rel
        if not (
            (run_path / png_rel).exists()
            and old.exists()
            and old.read_text(encoding="utf-8") == text
        ):
            to_draw.append((panels, run_path / png_rel))
        documents.append((uid, png_rel, json_rel, text))
    # the pictures take most of the stage: drawn by one forked process per core when this is the
    # stage's single-threaded child (forking a process with other threads is never safe)
    workers = max(1, min(2, os.cpu_count() or 1, len(to_draw)))
    draw = lambda i: draw_triptych(*to_draw[i])  # noqa: E731
    drawn = (
        fork_map(draw, len(to_draw), workers)
        if workers > 1 and threading.active_count() == 1
        else map(draw, range(len(to_draw)))
    )
    for n_done, _ in enumerate(drawn):
        report_progress(
            0.45 + 0.45 * (n_done + 1) / max(len(to_draw), 1),
            f"triptych {n_done + 1}/{len(to_draw)}",
        )
    redrawn = len(to_draw)
    for uid, png_rel, json_rel, text in documents:  # after its picture: the checkpoint's order
        write_text(text, run_path, json_rel)
        pictures[uid], panel_files[uid] = png_rel, json_rel
        artifacts[f"user_{uid}_png"] = ArtifactRef.of(run_path, png_rel)
        artifacts[f"user_{uid}_panels"] = ArtifactRef.of(run_path, json_rel)

    selected = selected.assign(
        picture=pd.array([pictures.get(int(u), "") for u in ids], dtype="string"),
        panels_file=pd.array([panel_files.get(int(u), "") for u in ids], dtype="string"),
        list_identical=np.array([identical.get(int(u), False) for u in ids], dtype=bool),
    )
    validations.append(_validate(selected, "case_selection", CASE_FILES["selected"]))
    artifacts["selected"] = write_table(selected, run_path, CASE_FILES["selected"])

    facts = _facts(taxonomy, selected, notes, cfg)
    facts.update(
        {
            "triptych_list_match": match,
            "recall_mismatch_users": _recall_mismatch(per_user, taxonomy, int(cfg.k)),
            "policy_alphas": {str(c): float(a) for c, a in policy.alphas.items()},
            "policy_id": policy_doc.get("policy_id"),
            "pictures_drawn": redrawn,
            "seed": int(seed),
            "seconds": {
                "taxonomy": round(taxonomy_seconds, 3),
                "total": round(time.perf_counter() - started, 3),
            },
        }
    )
    report_progress(0.95, "report")
    report = case_report(taxonomy, selected, notes, cfg, facts, pictures)
    artifacts["report"] = write_text(report, run_path, CASE_FILES["report"])
    facts_table = report_facts(run_path / CASE_FILES["report"], run_path, pictures)
    validations.append(_validate(facts_table, "case_studies_report", CASE_FILES["report"]))
    facts["validations"] = validations
    report_progress(1.0, "done")
    return {"artifacts": artifacts, "facts": facts}


def _facts(
    taxonomy: pd.DataFrame, selected: pd.DataFrame, notes: list[str], cfg: CaseStudiesSection
) -> dict[str, Any]:
    """The taxonomy's and the selection's headline facts (shares, hit rates, outcomes)."""

    def rounded(value: float) -> float | None:
        return None if value != value else round(float(value), 6)

    shares = category_shares(taxonomy)
    contrast = hit_rate_contrast(taxonomy)
    all_shares = shares[shares.cohort == "all"]
    return {
        "n_users": len(taxonomy),
        "n_cases": len(selected),
        "k": int(cfg.k),
        "category_share": {r.category: round(float(r.share), 6) for r in all_shares.itertuples()},
        "category_count": {r.category: int(r.n_flagged) for r in all_shares.itertuples()},
        "category_share_by_cohort": {
            c: {r.category: round(float(r.share), 6) for r in g.itertuples()}
            for c, g in shares[shares.cohort != "all"].groupby("cohort", sort=False)
        },
        "hit_rate_in_out": {
            r.category: {
                "in": rounded(r.hit_rate_in),
                "out": rounded(r.hit_rate_out),
                "n_in": int(r.n_in),
            }
            for r in contrast[contrast.cohort == "all"].itertuples()
        },
        "hit_rate": round(float(taxonomy["hit"].mean()), 6) if len(taxonomy) else None,
        "outcomes": {str(k): int(v) for k, v in selected["outcome"].value_counts().items()},
        "empty_slots": list(notes),
    }


@stage_task("case_studies")
def study_cases(
    evaluation: StageOutput,
    features: StageOutput,
    collab: StageOutput,
    tuning: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef | None,
    dropped_history: ArtifactRef | None,
    cfg: CaseStudiesSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``case_studies``: taxonomy of every evaluated user, selected cases, triptychs,
    ``reports/case_studies.md`` (see :mod:`tasks.case_studies`).

    ``evaluation`` gives ``per_user`` (the evaluated lists), ``tuning`` the chosen policy
    (``policy``), ``collab`` the CF models, ``features`` the content features; the tables come
    from the split and ingest. Their fingerprints and ``[case_studies]`` are the cache key; the
    work runs under ``budget_seconds`` in a child process.
    """
    refs: dict[str, ArtifactRef] = {
        **features.artifacts,
        **collab.artifacts,
        "per_user": evaluation.ref("per_user"),
        "policy": tuning.ref("policy"),
        "train": train,
        "test": test,
        "cohorts": cohorts,
    }
    if movies is not None:
        refs["movies"] = movies
    if dropped_history is not None:
        refs["dropped_history"] = dropped_history
    result = run_stage_core(
        "case_studies", budget_seconds, case_studies_core, run_dir, refs, cfg, seed
    )
    return StageOutput.from_result("case_studies", result)
