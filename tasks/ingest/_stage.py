"""The ``ingest`` stage: load (synthetic or MovieLens), validate, write ``data/*.parquet`` (part
of :mod:`tasks.ingest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tasks.budget import report_progress
from tasks.columns import Col
from tasks.errors import InputDataError
from tasks.ingest._checks import validate_canonical
from tasks.ingest._layouts import SYNTHETIC_SCALE
from tasks.ingest._movielens import load_movielens
from tasks.ingest._tables import MOVIES_SCHEMA, RATINGS_SCHEMA, canonical_from_synthetic
from tasks.io import write_table
from tasks.profile import DataSection, IngestSection, RunProfile, RunSection, SyntheticSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = ["ingest_core", "ingest_data"]


def ingest_core(profile: RunProfile, data_dir: str | None, run_dir: str) -> dict[str, Any]:
    """Load (synthetic or MovieLens), validate both tables (blocking), write ``data/*.parquet``.

    Returns ``{"artifacts": {"ratings": ref, "movies": ref}, "facts": {...}}`` with n_ratings,
    n_users, n_movies, format, rating_scale [min, max], source files and the validation summaries.
    """
    seed = profile.run.seed
    if profile.data.source == "synthetic":
        from tasks.synthetic import generate_synthetic

        report_progress(0.0, "generating synthetic data")
        data = generate_synthetic(
            profile.synthetic,
            seed,
            progress=lambda f, m: report_progress(0.4 * f, f"synthetic: {m}"),
        )
        ratings, movies = canonical_from_synthetic(data)
        del data
        fmt, scale, files = "synthetic", SYNTHETIC_SCALE, {}
        sources = {
            "ratings": "synthetic ratings (tasks.synthetic)",
            "movies": "synthetic movies (tasks.synthetic)",
        }
        line_offset: dict[str, int] = {}
        aliases: dict[str, dict[str, str]] = {}
    else:
        folder = data_dir or profile.data.data_dir
        if not folder:
            raise InputDataError(
                "data.source is 'movielens' but no folder was given. Fix: pass --data-dir DIR or set "
                "data.data_dir in the profile."
            )
        report_progress(0.0, f"reading {folder}")
        loaded = load_movielens(Path(folder), profile.data.format)
        ratings, movies, fmt, scale, files = (
            loaded.ratings,
            loaded.movies,
            loaded.fmt,
            loaded.spec,
            loaded.files,
        )
        sources = {"ratings": str(files["ratings"]), "movies": str(files["movies"])}
        line_offset, aliases = loaded.line_offset, loaded.column_aliases
        del loaded

    report_progress(0.45, f"validating {len(ratings):,} ratings and {len(movies):,} movies")
    summaries = validate_canonical(
        ratings,
        movies,
        scale=scale,
        ingest=profile.ingest,
        sources=sources,
        line_offset=line_offset,
        column_aliases=aliases,
        seed=seed,
    )
    _check_enough(ratings, profile.ingest, sources["ratings"])
    report_progress(0.75, "writing data/ratings.parquet and data/movies.parquet")
    artifacts = {
        "ratings": write_table(
            pa.Table.from_pandas(ratings, schema=RATINGS_SCHEMA, preserve_index=False),
            run_dir,
            "data/ratings.parquet",
        ),
        "movies": write_table(
            pa.Table.from_pandas(movies, schema=MOVIES_SCHEMA, preserve_index=False),
            run_dir,
            "data/movies.parquet",
        ),
    }
    facts = {
        "format": fmt,
        "source_files": {role: str(path) for role, path in files.items()},
        "n_ratings": len(ratings),
        "n_users": int(ratings[Col.USER].nunique()),
        "n_movies": len(movies),
        "n_rated_movies": int(ratings[Col.ITEM].nunique()),
        "n_movies_with_tags": int((movies[Col.TAGS] != "").sum()),
        "n_movies_with_providers": int(sum(1 for p in movies[Col.PROVIDERS] if len(p))),
        "rating_scale": [scale.rating_scale[0], scale.rating_scale[1]],
        "validation": summaries,
    }
    report_progress(1.0, f"ingested {len(ratings):,} ratings ({fmt})")
    return {"artifacts": artifacts, "facts": facts}


def _check_enough(ratings: pd.DataFrame, ingest: IngestSection, source: str) -> None:
    """The minimum to evaluate anything: ``ingest.min_users`` users with at least two ratings (one
    to train on, one to test; two ratings of one user are two movies, so two movies follow)."""
    per_user = ratings[Col.USER].value_counts()
    n_users = int((per_user >= 2).sum())
    if n_users < ingest.min_users:
        raise InputDataError(
            f"{source}: {n_users:,} user(s) have 2 or more ratings ({len(per_user):,} users, "
            f"{ratings[Col.ITEM].nunique():,} movies in all); a run needs at least "
            f"{ingest.min_users:,} (ingest.min_users) to train and test on. Fix: use a larger "
            "dataset, or lower the minimum with --set ingest.min_users=N."
        )


@stage_task("ingest")
def ingest_data(
    profile_data: DataSection,
    synthetic: SyntheticSection | None,
    ingest: IngestSection,
    seed: int,
    source_fingerprint: str,
    data_dir: str | None,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Prefect task: the ingest stage under its time budget (no retries: bad input stays bad).

    Cache key = data / synthetic / ingest sections + seed + ``source_fingerprint`` + ``data_dir``.
    For a MovieLens source pass ``synthetic=None`` and ``seed=0`` (they do not change what is read)
    and ``source_fingerprint=source_fingerprint(folder)``; for the synthetic source pass
    ``data_dir=None`` and ``source_fingerprint="synthetic"``.
    """
    profile = RunProfile(
        data=profile_data,
        synthetic=synthetic if synthetic is not None else SyntheticSection(),
        ingest=ingest,
        run=RunSection(seed=seed),
    )
    result = run_stage_core("ingest", budget_seconds, ingest_core, profile, data_dir, run_dir)
    return StageOutput.from_result("ingest", result)
