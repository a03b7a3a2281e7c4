"""Which suites a file gets besides its facts suite (:data:`SUITE_CHECKS`, suites' own claims).

Files that have their own suite are validated by it as well, with derived check frames
(:mod:`tasks.inventory._frames`): the canonical tables and the split outputs (train, test,
validation, train_fit, dropped_history, cohorts), candidates, ``eval/metrics.parquet``,
``eval/paired_tests.parquet``, ``eval/per_user.parquet``, ``tuning/tuning_results.csv``,
``tuning/validation_metrics.csv``, ``tuning/trials.csv``, the content embeddings and neighbours,
every saved CF model (``models/cf/<role>/cf_meta.json`` through ``cf_model``: files, config, index
sizes and array shapes; the index tables through ``cf_index``; factor arrays through ``factors``),
the hybrid manifests, case studies, edge cases and ``signoff/signoff.json`` (its decision
recomputed from its gates, :func:`tasks.decision.signoff_check_frame`). A suite can also claim
files itself: ``meta.artifacts`` (a list of glob patterns relative to the run) plus optional
``meta.check_frame`` (``"module:function"``, called with the loaded table / array / JSON). A
parquet table no rule claims is validated by a suite of the same name as its stem when one exists.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.inventory._facts import FACTS_SUITE
from tasks.inventory._frames import (
    CheckContext,
    call_spec,
    cf_factors_reads,
    cf_model_reads,
    edge_cases_reads,
    frame_cf_factors,
    frame_cf_index,
    frame_cf_model,
    frame_csv,
    frame_edge_cases,
    frame_embeddings,
    frame_manifest,
    frame_neighbors,
    frame_plain,
    frame_signoff,
    frame_tuning,
    frame_with,
    frame_with_fn,
    neighbors_reads,
    paired_tests_check_frame,
    per_user_check_frame,
    trials_check_frame,
    validation_metrics_check_frame,
)
from tasks.manifest import classify


def _reads_nothing(relpath: str) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class SuiteCheck:
    """A suite that validates the files matching ``pattern`` (glob on the relative path).

    ``frame(ctx, relpath)`` builds the table the suite sees (the stage's own check frame);
    ``references`` maps a reference name to a table of the run (for the derived in-reference
    columns); ``parameters`` names an entry of the context's ``table_parameters``; ``sample``
    validates big tables on a seeded row sample; ``group`` validates every matching file in one GX
    run (their frames concatenated; on failure each file again alone, for attribution);
    ``reads(relpath)`` names the other files of the run the frame reads (glob patterns relative
    to the run), so the validation cache keys the check on their sha256 too.
    """

    pattern: str
    suite: str
    frame: Callable[[CheckContext, str], pd.DataFrame] = frame_plain
    references: Mapping[str, tuple[str, list[str] | None]] = field(default_factory=dict)
    parameters: str | None = None
    sample: bool = False
    group: bool = False
    reads: Callable[[str], tuple[str, ...]] = _reads_nothing
    check_frame: str | None = None  # "module:function" of a suite that claims files itself


_MOVIES_REF = {"movies": ("data/movies.parquet", ["movie_id"])}
#: Built-in suite checks (the suites of the stages before the inventory), first match per suite.
SUITE_CHECKS: tuple[SuiteCheck, ...] = (
    SuiteCheck(
        "data/ratings.parquet", "ratings", references=_MOVIES_REF, parameters="ratings", sample=True
    ),
    SuiteCheck("data/movies.parquet", "movies", sample=True),
    SuiteCheck(
        "data/train.parquet", "train", references=_MOVIES_REF, parameters="ratings", sample=True
    ),
    SuiteCheck(
        "data/test.parquet",
        "test",
        references={**_MOVIES_REF, "train": ("data/train.parquet", ["user_id", "movie_id"])},
        parameters="ratings",
        sample=True,
    ),
    SuiteCheck("data/cohorts.parquet", "cohorts", sample=True),
    SuiteCheck(
        "data/train_fit.parquet", "train", references=_MOVIES_REF, parameters="ratings", sample=True
    ),
    SuiteCheck(
        "data/validation.parquet",
        "validation",
        references={
            **_MOVIES_REF,
            "train_fit": ("data/train_fit.parquet", ["user_id", "movie_id"]),
        },
        parameters="ratings",
        sample=True,
    ),
    SuiteCheck("data/dropped_history.parquet", "dropped_history", sample=True),
    SuiteCheck(
        "hybrid/candidates/*.parquet",
        "candidates",
        frame_with("tasks.candidates:candidates_check_frame"),
        group=True,
    ),
    SuiteCheck(
        "eval/metrics.parquet", "metrics", frame_with("tasks.evaluation:metrics_check_frame")
    ),
    SuiteCheck(
        "eval/paired_tests.parquet", "paired_tests", frame_with_fn(paired_tests_check_frame)
    ),
    SuiteCheck(
        "eval/per_user.parquet", "per_user", frame_with_fn(per_user_check_frame), sample=True
    ),
    SuiteCheck("tuning/tuning_results.csv", "tuning_results", frame_tuning),
    SuiteCheck(
        "tuning/validation_metrics.csv",
        "validation_metrics",
        frame_csv(validation_metrics_check_frame),
    ),
    SuiteCheck("tuning/trials.csv", "trials", frame_csv(trials_check_frame)),
    SuiteCheck("models/content_embeddings.npy", "embeddings", frame_embeddings),
    SuiteCheck("models/cf/*/cf_meta.json", "cf_model", frame_cf_model, reads=cf_model_reads),
    SuiteCheck("models/cf/*/user_index.parquet", "cf_index", frame_cf_index, sample=True),
    SuiteCheck("models/cf/*/item_index.parquet", "cf_index", frame_cf_index, sample=True),
    SuiteCheck("models/cf/*/user_factors.npy", "factors", frame_cf_factors, reads=cf_factors_reads),
    SuiteCheck("models/cf/*/item_factors.npy", "factors", frame_cf_factors, reads=cf_factors_reads),
    SuiteCheck(
        "models/item_neighbors.npy", "item_neighbors", frame_neighbors, reads=neighbors_reads
    ),
    SuiteCheck(
        "hybrid/assembly_manifest.json", "assembly_manifest", frame_manifest("assembly_manifest")
    ),
    SuiteCheck("hybrid/rerank_manifest.json", "rerank_manifest", frame_manifest("rerank_manifest")),
    SuiteCheck("case_studies/taxonomy.parquet", "case_studies", sample=True),
    SuiteCheck("case_studies/selected.parquet", "case_selection"),
    SuiteCheck(
        "edge_cases/results.parquet",
        "edge_cases",
        frame_edge_cases,
        parameters="edge_cases",
        reads=edge_cases_reads,
    ),
    SuiteCheck("signoff/signoff.json", "signoff", frame_signoff),
)
_OWN_SUITES = frozenset({*FACTS_SUITE.values(), "artifact_manifest"})


def _loader_for(kind: str, spec: str | None) -> Callable[[CheckContext, str], pd.DataFrame]:
    """A frame builder for a suite that claims files through ``meta.artifacts``."""

    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        path = ctx.run_dir / relpath
        if kind == "table":
            data: Any = ctx.table(relpath)
        elif kind == "csv":
            data = pd.read_csv(path)
        elif kind == "array":
            from tasks.io import load_array

            data = load_array(path, mmap=True)
        elif kind == "json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ValueError(
                f"{relpath}: a suite's meta.artifacts can only claim tables, CSV, arrays or JSON"
            )
        return call_spec(spec)(data) if spec else data

    return build


def declared_checks() -> list[SuiteCheck]:
    """Checks declared by suites themselves: ``meta.artifacts`` globs (+ ``meta.check_frame``)."""
    from tasks.validation import EXPECTATIONS_DIR

    checks = []
    for path in sorted(EXPECTATIONS_DIR.glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {}) or {}
        for pattern in meta.get("artifacts", []) or []:
            checks.append(
                SuiteCheck(
                    pattern,
                    path.stem,
                    _loader_for(classify(pattern), meta.get("check_frame")),
                    sample=classify(pattern) == "table" and not meta.get("check_frame"),
                    check_frame=meta.get("check_frame"),
                )
            )
    return checks


def checks_for(
    relpath: str, kind: str, declared: list[SuiteCheck], suites: set[str]
) -> list[SuiteCheck]:
    """The suite checks of one file besides its facts suite."""
    found = [c for c in (*SUITE_CHECKS, *declared) if fnmatch.fnmatch(relpath, c.pattern)]
    if not found and kind == "table":
        stem = Path(relpath).stem
        if stem in suites and stem not in _OWN_SUITES:
            found = [SuiteCheck(relpath, stem, sample=True)]
    seen: set[str] = set()
    unique = []
    for check in found:
        if check.suite not in seen:
            seen.add(check.suite)
            unique.append(check)
    return unique
