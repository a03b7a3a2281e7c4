"""Edge cases: scenarios run against the real code paths, each pass or fail with its evidence.

Place in the pipeline: the ``edge_cases`` stage (DESIGN.md step 10, seed 4.3), after ``evaluation``
and ``case_studies``. It loads the run's models once and runs every :class:`Scenario` of
:func:`default_scenarios` (at least 18, in the six :data:`CATEGORIES`) through the product's own
functions - ingest (:func:`tasks.ingest.ingest_core` on a small MovieLens folder written to a
temporary directory outside the run), candidates (:func:`tasks.candidates.recommend_for_user`,
:func:`~tasks.candidates.recommend_batch`, :func:`~tasks.candidates.recommend_users`), evaluation
(:func:`tasks.evaluation.evaluation_core`, :func:`~tasks.evaluation.top_k_dense`) and the budgets of
:mod:`tasks.budget`.

A scenario's ``expected`` text is written in this module, before it runs, next to its machine check
(``check(observed) -> [unmet expectations]``). Its ``run`` returns the observed outcome (a small
JSON-able dict); it passes when the check finds nothing unmet. Each scenario runs in its own forked
child under :func:`tasks.budget.run_with_budget` with ``edge_cases.scenario_time_limit_seconds``:
an exception inside a scenario, or a scenario stopped at its time limit, is a FAIL with the error
recorded - never a crash of the stage.

Special users are one-user views of the run's arrays (:func:`user_view`): a user that is not in
the trained model (no collaborative factors, as anyone who joined after training), with the given
ratings; their taste profile and seed items come from the same functions the run used
(:func:`tasks.content.user_taste_profiles`, :func:`tasks.candidates.best_recent_items`).

Outputs: ``edge_cases/<id>.json`` per scenario (inputs summary, expected, observed, passed,
seconds), ``edge_cases/<id>.png`` (a triptych, :func:`tasks.case_studies.draw_triptych`) where the
scenario produces a list, the table ``edge_cases/results.parquet`` (validated by
``expectations/edge_cases.json`` through a check frame that also confirms every evidence file and
report link) and ``reports/edge_cases.md``. Gate: pass rate >= ``edge_cases.min_pass_rate``.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.budget import (
    StageMemoryExceeded,
    StageTimeout,
    report_progress,
    rows_within_memory,
    run_with_budget,
)
from tasks.columns import Col
from tasks.io import ArtifactRef, read_table, write_json, write_table, write_text
from tasks.profile import (
    CandidatesSection,
    EdgeCasesSection,
    EvalSection,
    IngestSection,
    PolicySection,
    SplitSection,
)
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = [
    "CATEGORIES",
    "INPUT_KEYS",
    "RESULTS_TABLE",
    "EdgeContext",
    "Scenario",
    "ScenarioResult",
    "default_scenarios",
    "edge_cases_check_frame",
    "edge_cases_core",
    "pass_rates",
    "refs_from_run_dir",
    "rerun_edge_cases",
    "run_edge_cases",
    "run_scenario",
    "run_scenarios",
    "user_view",
]

#: The six scenario categories of the issue, in report order.
CATEGORIES = ("input_data", "user_behaviour", "filters", "sorting_ties", "cpu_time", "memory")
CATEGORY_TITLES = {
    "input_data": "Input data",
    "user_behaviour": "User behaviour",
    "filters": "Filters",
    "sorting_ties": "Sorting and ties",
    "cpu_time": "CPU and time",
    "memory": "Memory",
}
#: Every default scenario is needed for a complete run (the issue asks for at least 18).
MIN_SCENARIOS = 18
EDGE_DIR = "edge_cases"
RESULTS_TABLE = f"{EDGE_DIR}/results.parquet"
REPORT = "reports/edge_cases.md"
#: List length the user-facing scenarios ask for (``movierec recommend`` default).
LIST_K = 10
_RESULT_COLUMNS = [
    "id",
    "category",
    "title",
    "what_is_run",
    "expected",
    "observed",
    "unmet",
    "error",
    "passed",
    "seconds",
    "evidence",
    "png",
]

Observed = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Scenarios and their context
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One edge case: what runs, what must happen (text + check), and the run itself.

    ``run(ctx) -> observed`` returns a small JSON-able dict; ``check(observed) -> unmet`` lists the
    expectations that were not met (empty = pass). Observed keys ``history``, ``recommendations``,
    ``held_out`` (+ ``rec_hits`` / ``held_out_hits``) are drawn as a triptych when present.
    """

    id: str
    category: str
    title: str
    what_is_run: str
    expected: str
    run: Callable[[EdgeContext], Observed]
    check: Callable[[Observed], list[str]]

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(
                f"scenario {self.id!r}: category {self.category!r} not in {CATEGORIES}"
            )
        if not self.id.replace("_", "").isalnum() or self.id != self.id.lower():
            raise ValueError(f"scenario id {self.id!r} must be snake_case")


@dataclass
class ScenarioResult:
    id: str
    category: str
    title: str
    what_is_run: str
    expected: str
    observed: Observed
    unmet: list[str]
    error: str
    passed: bool
    seconds: float

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "title": self.title,
            "what_is_run": self.what_is_run,
            "expected": self.expected,
            "observed": json.dumps(_lean(self.observed), sort_keys=True, default=str),
            "unmet": "; ".join(self.unmet),
            "error": self.error,
            "passed": bool(self.passed),
            "seconds": float(round(self.seconds, 3)),
        }


@dataclass
class EdgeContext:
    """What scenarios share: the run's files and settings, and its models loaded once (lazily).

    Loaded before the scenarios fork, so every scenario child shares the arrays copy-on-write.
    """

    run_dir: str
    refs: Mapping[str, ArtifactRef]
    cfg: EdgeCasesSection
    ingest_cfg: IngestSection
    candidates_cfg: CandidatesSection
    policy: PolicySection
    split_cfg: SplitSection
    eval_cfg: EvalSection
    seed: int
    work_dir: str  # a temporary folder outside the run directory
    _arrays: Any = field(default=None, repr=False)
    _basis: Any = field(default=None, repr=False)

    @property
    def arrays(self) -> Any:
        if self._arrays is None:
            from tasks.candidates import RecommenderArrays

            self._arrays = RecommenderArrays.from_run(
                self.run_dir,
                refs=dict(self.refs),
                relevance_threshold=self.split_cfg.relevance_threshold,
                m_seed_items=self.candidates_cfg.m_seed_items,
            )
        return self._arrays

    @property
    def basis(self) -> np.ndarray:
        """The principal basis the arrays' reduced content scores were computed with."""
        if self._basis is None:
            from tasks.candidates import principal_basis

            a = self.arrays
            d = a.embeddings.shape[1]
            rank = max(a.content_rank, a.mmr_rank if a.mmr_rank < d else 0)
            self._basis = principal_basis(
                np.where(a.has_metadata[:, None], a.embeddings, 0.0), rank
            )
        return self._basis

    def scratch(self, name: str) -> Path:
        """A fresh folder for one scenario's files (under :attr:`work_dir`, never in the run)."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work_dir))
        return path


# ---------------------------------------------------------------------------------------------
# Helpers shared by scenarios
# ---------------------------------------------------------------------------------------------
def _lean(observed: Observed) -> Observed:
    """Observed without the triptych lines (they go to the evidence file and the picture)."""
    drop = {"history", "recommendations", "held_out", "rec_hits", "held_out_hits"}
    return {k: v for k, v in observed.items() if k not in drop}


def _cohort_of(n_ratings: int, split_cfg: SplitSection) -> str:
    if n_ratings <= split_cfg.cold_max:
        return "cold"
    if n_ratings <= split_cfg.light_max:
        return "light"
    if n_ratings <= split_cfg.medium_max:
        return "medium"
    return "heavy"


def user_view(
    ctx: EdgeContext,
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    user_id: int | None = None,
    timestamps: np.ndarray | None = None,
    arrays: Any = None,
    factors_of: int | None = None,
) -> tuple[Any, int]:
    """A one-user view of the run's arrays for a user with the given training ratings.

    The user is not in the trained model (no collaborative factors), like anyone who joined after
    training - unless ``factors_of`` names a user row whose trained factors it keeps (a real user
    whose history has grown since). The taste profile and seed items are computed by the run's own
    functions. Returns ``(arrays, user_id)``; the user is row 0.
    """
    from tasks.candidates import _with_new_user, best_recent_items
    from tasks.content import ITEM_IDX, USER_IDX, user_taste_profiles

    base = arrays if arrays is not None else ctx.arrays
    uid = int(user_id if user_id is not None else int(base.user_ids.max()) + 1)
    view = _with_new_user(base, uid)
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float32)
    ts = (
        np.asarray(timestamps, dtype=np.int64)
        if timestamps is not None
        else 1_500_000_000 + np.arange(len(items), dtype=np.int64) * 60
    )
    zeros = np.zeros(len(items), np.int64)
    view.seen = sp.csr_matrix((ratings, (zeros, items)), shape=(1, base.n_items), dtype=np.float32)
    view.seen.sum_duplicates()
    view.seen.sort_indices()
    frame = pd.DataFrame({USER_IDX: zeros, ITEM_IDX: items, Col.RATING: ratings, Col.TIMESTAMP: ts})
    threshold = base.relevance_threshold
    profile = user_taste_profiles(frame, base.embeddings, 1, relevance_threshold=threshold)
    view.profiles = profile.astype(np.float32)
    basis = ctx.basis if arrays is None else _basis_of(base)
    view.profiles_reduced = np.ascontiguousarray(view.profiles @ basis[:, : base.content_rank])
    view.seed_items = best_recent_items(
        zeros, items, ratings, ts, 1, base.seed_items.shape[1], threshold
    )
    view.cohorts = np.array([_cohort_of(len(items), ctx.split_cfg)], dtype=object)
    if factors_of is not None:
        view.user_factors = base.user_factors[[factors_of]]
        view.user_has_factors = base.user_has_factors[[factors_of]]
    return view, uid


def _heaviest_with_factors(arrays: Any) -> int:
    """Row of the user with the most training ratings among users with factors."""
    return int(np.argmax(np.where(arrays.user_has_factors, _seen_counts(arrays), -1)))


def _basis_of(arrays: Any) -> np.ndarray:
    from tasks.candidates import principal_basis

    d = arrays.embeddings.shape[1]
    rank = max(arrays.content_rank, arrays.mmr_rank if arrays.mmr_rank < d else 0)
    return principal_basis(np.where(arrays.has_metadata[:, None], arrays.embeddings, 0.0), rank)


def _popular_items(arrays: Any, n: int) -> np.ndarray:
    """The ``n`` most rated safe items (ties: smaller index)."""
    counts = np.bincount(arrays.seen.indices, minlength=arrays.n_items).astype(np.int64)
    counts = np.where(arrays.has_metadata, counts, -1)
    order = np.argsort(-counts, kind="stable")
    return order[: min(n, int(arrays.has_metadata.sum()))]


def _title(arrays: Any, item: int) -> str:
    if arrays.titles is not None and arrays.titles[item]:
        return str(arrays.titles[item])
    return f"movie {int(arrays.item_ids[item])}"


def _genres_text(arrays: Any, item: int) -> str:
    return "|".join(arrays.genre_names[j] for j in np.flatnonzero(arrays.genre_matrix[item]))


def _history_lines(arrays: Any, view: Any, row: int = 0, limit: int = 12) -> list[str]:
    start, end = view.seen.indptr[row], view.seen.indptr[row + 1]
    items, ratings = view.seen.indices[start:end], view.seen.data[start:end]
    lines = [f"{len(items):,} rated movies"] if len(items) > limit else []
    order = np.argsort(-ratings, kind="stable")[:limit]
    lines += [
        f"{_title(arrays, int(items[j]))} - {_genres_text(arrays, int(items[j]))}  * {float(ratings[j]):g}"
        for j in order
    ]
    return lines


def _list_summary(
    arrays: Any, view: Any, result: Mapping[str, np.ndarray], row: int, k: int
) -> Observed:
    """Facts about one served list (row ``row`` of a recommend_batch result)."""
    items = np.asarray(result["item_idx"][row])
    got = items >= 0
    picked = items[got].astype(np.int64)
    scores = np.asarray(result["score"][row])[got]
    start, end = view.seen.indptr[row], view.seen.indptr[row + 1]
    seen = set(view.seen.indices[start:end].tolist())
    return {
        "k": int(k),
        "list_length": int(got.sum()),
        "distinct": int(len(set(picked.tolist()))),
        "seen_in_list": int(sum(int(i) in seen for i in picked)),
        "unsafe_in_list": int((~arrays.has_metadata[picked]).sum()) if len(picked) else 0,
        "scores_finite_in_0_1": bool(
            np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
        ),
        "padding_only_at_end": bool(not got.any() or got[: int(got.sum())].all()),
        "relaxation_step": int(result["relaxation_step"][row]),
        "pool_size": int(result["pool_size"][row]),
        "movie_ids": [int(arrays.item_ids[i]) for i in picked],
        "recommendations": [
            f"{r}. {_title(arrays, int(i))}  {float(s):.3f}"
            for r, (i, s) in enumerate(zip(picked[:24], scores[:24], strict=True), start=1)
        ],
    }


def _frame_summary(frame: pd.DataFrame, k: int, seen_ids: set[int] | None = None) -> Observed:
    """Facts about a ``recommend_for_user`` table."""
    ids = frame[Col.ITEM].astype(int).tolist()
    scores = frame[Col.SCORE].to_numpy(np.float64)
    return {
        "k": int(k),
        "list_length": len(frame),
        "distinct": len(set(ids)),
        "seen_in_list": sum(i in seen_ids for i in ids) if seen_ids is not None else 0,
        "scores_finite_in_0_1": bool(
            np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
        ),
        "relaxation_step": int(frame[Col.RELAXATION_STEP].iloc[0]) if len(frame) else None,
        "modes": sorted(set(frame["mode"].astype(str))) if len(frame) else [],
        "reasons": frame["reason"].astype(str).head(3).tolist(),
        "movie_ids": ids,
        "recommendations": [
            f"{int(r[Col.RANK])}. {r[Col.TITLE]}  {float(r[Col.SCORE]):.3f} - {r['reason']}"
            for _, r in frame.head(24).iterrows()
        ],
    }


def _full_list_unmet(obs: Observed, k: int | None = None) -> list[str]:
    """The checks every served list must meet: K distinct, unseen, safe items with scores in [0, 1]."""
    k = obs.get("k") if k is None else k
    unmet = []
    if obs.get("list_length") != k:
        unmet.append(f"list has {obs.get('list_length')} items, expected {k}")
    if obs.get("distinct") != obs.get("list_length"):
        unmet.append("list repeats an item")
    if obs.get("seen_in_list", 0):
        unmet.append(f"{obs['seen_in_list']} already-rated items in the list")
    if obs.get("unsafe_in_list", 0):
        unmet.append(f"{obs['unsafe_in_list']} items without metadata in the list")
    if obs.get("scores_finite_in_0_1") is False:
        unmet.append("a score is not finite or outside [0, 1]")
    return unmet


def _serve_view(
    ctx: EdgeContext, view: Any, k: int, genres=None, providers=None
) -> dict[str, np.ndarray]:
    from tasks.candidates import recommend_batch
    from tasks.hybrid import policy_alphas

    alphas = policy_alphas(view.cohorts[:1], ctx.policy.as_dict())
    return recommend_batch(view, np.array([0]), alphas, ctx.candidates_cfg, genres, providers, k=k)


def _first_user(arrays: Any, mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else None


def _seen_counts(arrays: Any) -> np.ndarray:
    return np.diff(arrays.seen.indptr).astype(np.int64)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


# ---------------------------------------------------------------------------------------------
# Input data: real ingest on small MovieLens folders
# ---------------------------------------------------------------------------------------------
_MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    "2,Jumanji (1995),Adventure|Children|Fantasy\n"
    "3,Heat (1995),Action|Crime|Thriller\n"
    "4,Sabrina (1995),Comedy|Romance\n"
)
_RATINGS_ROWS = [
    "1,1,4.0,964982703",
    "1,2,3.5,964982704",
    "1,3,5.0,964982705",
    "2,1,2.0,964982706",
    "2,4,4.5,964982707",
    "3,3,3.0,964982708",
]


def _write_movielens(
    folder: Path, rating_rows: Sequence[str], movies_csv: str = _MOVIES_CSV
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.csv").write_text(movies_csv, encoding="utf-8")
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "\n".join(rating_rows) + "\n", encoding="utf-8"
    )
    return folder


def _ingest(
    ctx: EdgeContext, name: str, rating_rows: Sequence[str], movies_csv: str = _MOVIES_CSV
) -> Observed:
    """Run the real ingest core on a small folder; observe success (counts) or the error text."""
    from tasks.ingest import ingest_core
    from tasks.profile import DataSection, RunProfile, RunSection

    root = ctx.scratch(name)
    folder = _write_movielens(root / "movielens", rating_rows, movies_csv)
    profile = RunProfile(
        data=DataSection(source="movielens", data_dir=str(folder)),
        ingest=ctx.ingest_cfg,
        run=RunSection(seed=ctx.seed),
    )
    observed: Observed = {
        "rating_rows": len(rating_rows),
        "ratings_csv_lines": ["userId,movieId,rating,timestamp", *rating_rows],
    }
    try:
        out = ingest_core(profile, str(folder), str(root / "run"))
    except Exception as exc:  # noqa: BLE001 - the error IS the observation here
        message = str(exc).replace(str(folder), "<input folder>")
        observed.update(
            {
                "outcome": "error",
                "error_type": type(exc).__name__,
                "message": message[:2000],
                "failed_expectations": message.count("\n  - "),
            }
        )
        return observed
    observed.update(
        {
            "outcome": "ingested",
            "n_ratings": int(out["facts"]["n_ratings"]),
            "n_movies": int(out["facts"]["n_movies"]),
        }
    )
    observed["_movies_parquet"] = str(root / "run" / "data" / "movies.parquet")
    return observed


def _input_error_unmet(
    obs: Observed, needles: Sequence[str], *, only: int | None = None
) -> list[str]:
    if obs.get("outcome") != "error":
        return [
            f"ingest accepted the file ({obs.get('n_ratings')} ratings kept) instead of stopping"
        ]
    unmet = []
    if obs.get("error_type") != "InputDataError":
        unmet.append(f"error is {obs.get('error_type')}, expected InputDataError")
    message = obs.get("message", "")
    for needle in needles:
        if needle not in message:
            unmet.append(f"message does not mention {needle!r}")
    if only is not None and obs.get("failed_expectations") != only:
        unmet.append(
            f"message lists {obs.get('failed_expectations')} failures, expected only {only} "
            "(each about the bad rows; no failure the user cannot act on)"
        )
    return unmet


def _run_duplicates(ctx: EdgeContext) -> Observed:
    return _ingest(ctx, "duplicates", [*_RATINGS_ROWS, "1,1,4.5,964982800"])


def _run_unknown_movies(ctx: EdgeContext) -> Observed:
    return _ingest(ctx, "unknown-movies", [*_RATINGS_ROWS, "2,99,4.0,964982800"])


def _run_missing_rating(ctx: EdgeContext) -> Observed:
    return _ingest(ctx, "missing-rating", [*_RATINGS_ROWS, "3,2,,964982800", "3,4,NaN,964982801"])


def _run_out_of_range(ctx: EdgeContext) -> Observed:
    return _ingest(ctx, "out-of-range", [*_RATINGS_ROWS, "3,2,7.0,964982800", "3,4,-1,964982801"])


_ODD_TITLES = {
    1: "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    2: "千と千尋の神隠し (Spirited Away) (2001)",
    3: "Ночной дозор (Night Watch) (2004)",
    4: "Big Lebowski, The (1998)",
    5: "Night of the " + "Very " * 400 + "Long Title (1999)",
}
_ODD_YEARS = {1: 2001, 2: 2001, 3: 2004, 4: 1998, 5: 1999}


def _run_odd_titles(ctx: EdgeContext) -> Observed:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    for movie_id, title in _ODD_TITLES.items():
        writer.writerow([movie_id, title, "Drama"])
    rows = [f"{u},{m},4.0,{964982700 + 10 * u + m}" for u in (1, 2) for m in _ODD_TITLES]
    obs = _ingest(ctx, "odd-titles", rows, buf.getvalue())
    obs["movie_titles"] = {str(m): t for m, t in _ODD_TITLES.items()}
    if obs.get("outcome") == "ingested":
        movies = read_table(obs.pop("_movies_parquet"))
        titles = dict(zip(movies[Col.ITEM].astype(int), movies[Col.TITLE].astype(str), strict=True))
        years = dict(zip(movies[Col.ITEM].astype(int), movies[Col.YEAR], strict=True))
        obs["titles_identical"] = {str(m): titles.get(m) == t for m, t in _ODD_TITLES.items()}
        obs["years"] = {
            str(m): None if pd.isna(years.get(m)) else int(years[m]) for m in _ODD_TITLES
        }
        obs["longest_title_chars"] = max(len(t) for t in titles.values())
    return obs


def _check_odd_titles(obs: Observed) -> list[str]:
    if obs.get("outcome") != "ingested":
        return [f"ingest failed: {obs.get('message', '')[:300]}"]
    unmet = [f"title of movie {m} changed" for m, ok in obs["titles_identical"].items() if not ok]
    unmet += [
        f"movie {m}: year {obs['years'].get(str(m))}, expected {y}"
        for m, y in _ODD_YEARS.items()
        if obs["years"].get(str(m)) != y
    ]
    if obs.get("longest_title_chars") != len(_ODD_TITLES[5]):
        unmet.append("the long title was truncated")
    return unmet


# ---------------------------------------------------------------------------------------------
# User behaviour
# ---------------------------------------------------------------------------------------------
def _most_common_genre(arrays: Any) -> str:
    counts = (arrays.genre_matrix & arrays.has_metadata[:, None]).sum(axis=0)
    return arrays.genre_names[int(np.argmax(counts))]


def _run_new_user(ctx: EdgeContext) -> Observed:
    from tasks.candidates import recommend_for_user
    from tasks.errors import UsageError

    arrays = ctx.arrays
    new_id = int(arrays.user_ids.max()) + 1
    genre = _most_common_genre(arrays)
    obs: Observed = {"user_id": new_id, "genre": genre}
    try:
        recommend_for_user(
            ctx.run_dir,
            new_id,
            k=LIST_K,
            arrays=arrays,
            policy=ctx.policy.as_dict(),
            cfg=ctx.candidates_cfg,
        )
        obs["without_genre"] = "served"
    except UsageError as exc:
        obs["without_genre"] = "UsageError"
        obs["without_genre_message"] = str(exc)[:500]
    frame = recommend_for_user(
        ctx.run_dir, new_id, k=LIST_K, genres=[genre], arrays=arrays,
        policy=ctx.policy.as_dict(), cfg=ctx.candidates_cfg,
    )  # fmt: skip
    obs.update(_frame_summary(frame, LIST_K, set()))
    in_genre = [genre in str(g).split(", ") for g in frame[Col.GENRES]]
    obs["in_genre"] = int(sum(in_genre))
    obs["history"] = ["(no ratings: brand-new user)", f"asked for genre {genre}"]
    return obs


def _check_new_user(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs)
    if obs.get("modes") != ["cold-start"]:
        unmet.append(f"mode {obs.get('modes')}, expected cold-start")
    if obs.get("in_genre") != obs.get("list_length"):
        unmet.append(
            f"{obs.get('list_length', 0) - obs.get('in_genre', 0)} items outside the asked genre"
        )
    if not all("no history" in r for r in obs.get("reasons", [])):
        unmet.append("reasons do not say the user has no history")
    if obs.get("without_genre") != "UsageError" or "--genre" not in obs.get(
        "without_genre_message", ""
    ):
        unmet.append("without a genre, no clear error telling to add --genre")
    return unmet


def _custom_user_list(
    ctx: EdgeContext,
    items: np.ndarray,
    ratings: np.ndarray,
    k: int = LIST_K,
    factors_of: int | None = None,
) -> tuple[Observed, Any]:
    from tasks.candidates import recommend_for_user

    view, uid = user_view(ctx, items, ratings, factors_of=factors_of)
    frame = recommend_for_user(
        ctx.run_dir, uid, k=k, arrays=view, policy=ctx.policy.as_dict(), cfg=ctx.candidates_cfg
    )
    obs = _frame_summary(frame, k, {int(ctx.arrays.item_ids[i]) for i in items})
    obs["history"] = _history_lines(ctx.arrays, view)
    obs["n_ratings"] = len(items)
    return obs, view


def _run_single_rating(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    item = int(_popular_items(arrays, 1)[0])
    obs, _ = _custom_user_list(ctx, np.array([item]), np.array([5.0]))
    obs["rated"] = _title(arrays, item)
    return obs


def _check_single_rating(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs)
    if obs.get("modes") != ["personalised"]:
        unmet.append(f"mode {obs.get('modes')}, expected personalised")
    if not all(obs.get("rated", "?") in r and "highly" in r for r in obs.get("reasons", [])):
        unmet.append("reasons do not point to the one movie rated highly")
    return unmet


def _run_almost_everything(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    safe = np.flatnonzero(arrays.has_metadata)
    left = safe[np.linspace(0, len(safe) - 1, 5).astype(np.int64)] if len(safe) >= 5 else safe
    seen = np.setdiff1d(safe, left, assume_unique=True)
    ratings = np.full(len(seen), 3.5, np.float32)
    ratings[::3] = 4.5
    heaviest = _heaviest_with_factors(arrays)
    obs, _ = _custom_user_list(ctx, seen, ratings, factors_of=heaviest)
    obs["factors_of_user"] = int(arrays.user_ids[heaviest])
    left_ids = [int(arrays.item_ids[i]) for i in left]
    obs["unseen_left"] = left_ids
    obs["catalogue_safe_items"] = len(safe)
    obs["held_out"] = [f"{_title(arrays, int(i))} (unseen)" for i in left]
    obs["held_out_hits"] = [i in obs["movie_ids"] for i in left_ids]
    obs["rec_hits"] = [i in set(left_ids) for i in obs["movie_ids"]][: len(obs["recommendations"])]
    return obs


def _check_almost_everything(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs, k=len(obs.get("unseen_left", [])))
    if sorted(obs.get("movie_ids", [])) != sorted(obs.get("unseen_left", [])):
        unmet.append("the list is not exactly the unseen movies")
    return unmet


def _run_only_low(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    items = _popular_items(arrays, 20)
    ratings = np.resize(np.array([0.5, 1.0, 1.5, 2.0], np.float32), len(items))
    obs, view = _custom_user_list(ctx, items, ratings)
    # how close is the list to the disliked movies, against the list a brand-new user gets?
    from tasks.candidates import _with_new_user

    fresh = _with_new_user(arrays, int(arrays.user_ids.max()) + 2)
    fresh.seen = view.seen
    cold = _serve_view(ctx, fresh, LIST_K)
    cold_items = cold["item_idx"][0][cold["item_idx"][0] >= 0]
    listed = np.searchsorted(arrays.item_ids, np.array(obs["movie_ids"], dtype=np.int64))
    disliked = arrays.embeddings[items]
    obs["mean_cos_list_to_disliked"] = round(
        float((arrays.embeddings[listed] @ disliked.T).mean()), 4
    )
    obs["mean_cos_no_history_list_to_disliked"] = round(
        float((arrays.embeddings[cold_items] @ disliked.T).mean()), 4
    )
    obs["max_rating"] = float(ratings.max())
    return obs


def _check_only_low(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs)
    if any("highly" in r for r in obs.get("reasons", [])):
        unmet.append("a reason claims the user rated a movie highly")
    a, b = obs.get("mean_cos_list_to_disliked"), obs.get("mean_cos_no_history_list_to_disliked")
    if a is None or b is None or a > b:
        unmet.append(
            f"the list is pulled towards the disliked movies (mean cosine {a} vs {b} for the "
            "list a user with no usable taste gets): low ratings are treated as taste"
        )
    return unmet


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------
def _smallest_column(matrix: np.ndarray, safe: np.ndarray) -> int:
    counts = (matrix & safe[:, None]).sum(axis=0)
    counts = np.where(counts > 0, counts, np.iinfo(np.int64).max)
    return int(np.argmin(counts))


def _with_providers(arrays: Any) -> tuple[Any, str]:
    """The arrays, or (a catalogue without provider data, e.g. ml-latest-small) a copy whose one
    provider carries the titles of the most common genre - so provider filters can be exercised."""
    if arrays.provider_matrix.shape[1] and arrays.provider_matrix.any():
        return arrays, "the run's providers"
    view = copy.copy(arrays)
    g = arrays.genre_names.index(_most_common_genre(arrays))
    view.provider_names = ["edge-case-provider"]
    view.provider_matrix = arrays.genre_matrix[:, [g]].copy()
    return view, (
        "this catalogue has no provider data: a copy with one provider 'edge-case-provider' that "
        f"carries every {arrays.genre_names[g]} title"
    )


def _run_genre_nothing(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    g = _smallest_column(arrays.genre_matrix, arrays.has_metadata)
    genre = arrays.genre_names[g]
    items = np.flatnonzero(arrays.genre_matrix[:, g] & arrays.has_metadata)
    view, _ = user_view(ctx, items, np.full(len(items), 3.5, np.float32))
    result = _serve_view(ctx, view, LIST_K, genres=[genre])
    obs = _list_summary(arrays, view, result, 0, LIST_K)
    got = result["item_idx"][0][result["item_idx"][0] >= 0]
    obs.update(
        {
            "genre": genre,
            "genre_items_all_seen": len(items),
            "in_genre": int(arrays.genre_matrix[got, g].sum()),
        }
    )
    obs["history"] = [
        f"has rated all {len(items):,} {genre} movies",
        *_history_lines(arrays, view, limit=8),
    ]
    return obs


def _check_relaxed(step: int) -> Callable[[Observed], list[str]]:
    def check(obs: Observed) -> list[str]:
        unmet = _full_list_unmet(obs)
        if obs.get("relaxation_step") != step:
            unmet.append(f"relaxation step {obs.get('relaxation_step')}, expected {step}")
        return unmet

    return check


def _run_provider_nothing(ctx: EdgeContext) -> Observed:
    arrays, how = _with_providers(ctx.arrays)
    p = _smallest_column(arrays.provider_matrix, arrays.has_metadata)
    provider = arrays.provider_names[p]
    items = np.flatnonzero(arrays.provider_matrix[:, p] & arrays.has_metadata)
    view, _ = user_view(ctx, items, np.full(len(items), 3.5, np.float32), arrays=arrays)
    result = _serve_view(ctx, view, LIST_K, providers=[provider])
    obs = _list_summary(arrays, view, result, 0, LIST_K)
    obs.update({"provider": provider, "provider_items_all_seen": len(items), "providers_from": how})
    obs["history"] = [
        f"has rated all {len(items):,} titles of {provider}",
        *_history_lines(arrays, view, limit=8),
    ]
    return obs


def _run_contradictory(ctx: EdgeContext) -> Observed:
    arrays, how = _with_providers(ctx.arrays)
    safe = arrays.has_metadata
    both = (arrays.genre_matrix & safe[:, None]).T.astype(np.int64) @ arrays.provider_matrix.astype(
        np.int64
    )
    genre_sizes = (arrays.genre_matrix & safe[:, None]).sum(axis=0)
    # the genre with most titles among the (genre, provider) pairs that share the fewest titles
    g, p = min(
        (
            (gi, pi)
            for gi in range(both.shape[0])
            for pi in range(both.shape[1])
            if genre_sizes[gi] > 0
        ),
        key=lambda gp: (both[gp], -genre_sizes[gp[0]], gp),
    )  # genres x providers: a few hundred pairs at most
    genre, provider = arrays.genre_names[g], arrays.provider_names[p]
    shared = np.flatnonzero(arrays.genre_matrix[:, g] & arrays.provider_matrix[:, p] & safe)
    if len(shared):  # the user has rated every title the two share: none left for them
        view, _ = user_view(ctx, shared, np.full(len(shared), 3.0, np.float32), arrays=arrays)
    else:  # the catalogue has none: any user will do
        liked = _popular_items(arrays, 3)
        view, _ = user_view(ctx, liked, np.full(len(liked), 4.0, np.float32), arrays=arrays)
    result = _serve_view(ctx, view, LIST_K, genres=[genre], providers=[provider])
    obs = _list_summary(arrays, view, result, 0, LIST_K)
    got = result["item_idx"][0][result["item_idx"][0] >= 0]
    obs.update(
        {
            "genre": genre,
            "provider": provider,
            "titles_with_both": int(len(shared)),
            "titles_with_both_note": "all rated by the user"
            if len(shared)
            else "none in the catalogue",
            "in_genre": int(arrays.genre_matrix[got, g].sum()),
            "providers_from": how,
        }
    )
    obs["history"] = _history_lines(arrays, view, limit=10)
    return obs


def _check_contradictory(obs: Observed) -> list[str]:
    unmet = _check_relaxed(1)(obs)
    if obs.get("in_genre") != obs.get("list_length"):
        unmet.append("after dropping providers, items outside the asked genre were served")
    return unmet


def _run_unknown_names(ctx: EdgeContext) -> Observed:
    from tasks.candidates import recommend_for_user
    from tasks.errors import UsageError

    arrays = ctx.arrays
    user = int(arrays.user_ids[int(np.argmax(_seen_counts(arrays)))])
    obs: Observed = {"user_id": user}
    kw = {"arrays": arrays, "policy": ctx.policy.as_dict(), "cfg": ctx.candidates_cfg, "k": LIST_K}
    for name, args in {
        "genre": {"genres": ["Sci-Fy"]},
        "provider": {"providers": ["Netflixx"]},
    }.items():
        try:
            recommend_for_user(ctx.run_dir, user, **args, **kw)
            obs[f"unknown_{name}"] = "served"
        except UsageError as exc:
            obs[f"unknown_{name}"] = "UsageError"
            obs[f"unknown_{name}_message"] = str(exc)[:600]
    genre = _most_common_genre(arrays)
    frame = recommend_for_user(ctx.run_dir, user, genres=[genre.upper()], **kw)
    obs["case_insensitive_genre"] = genre.upper()
    obs["case_insensitive_served"] = len(frame)
    obs["valid_genre_example"] = genre
    return obs


def _check_unknown_names(obs: Observed) -> list[str]:
    unmet = []
    for name, bad in (("genre", "Sci-Fy"), ("provider", "Netflixx")):
        message = obs.get(f"unknown_{name}_message", "")
        if obs.get(f"unknown_{name}") != "UsageError":
            unmet.append(
                f"unknown {name} {bad!r} was {obs.get(f'unknown_{name}')}, expected UsageError"
            )
        elif bad not in message or "valid" not in message:
            unmet.append(f"the unknown-{name} message does not name {bad!r} and the valid names")
    if obs.get("valid_genre_example", "") not in obs.get("unknown_genre_message", ""):
        unmet.append("the unknown-genre message does not list the valid genres")
    if obs.get("case_insensitive_served") != LIST_K:
        unmet.append(f"genre {obs.get('case_insensitive_genre')!r} (other case) not served")
    return unmet


def _run_relaxation_ends(ctx: EdgeContext) -> Observed:
    arrays, how = _with_providers(ctx.arrays)
    safe = np.flatnonzero(arrays.has_metadata)
    g = _smallest_column(arrays.genre_matrix, arrays.has_metadata)
    outside = safe[~arrays.genre_matrix[safe, g]]
    left = (
        outside[np.linspace(0, len(outside) - 1, 3).astype(np.int64)]
        if len(outside) >= 3
        else outside
    )
    seen = np.setdiff1d(safe, left, assume_unique=True)
    view, _ = user_view(
        ctx,
        seen,
        np.full(len(seen), 3.5, np.float32),
        arrays=arrays,
        factors_of=_heaviest_with_factors(arrays),
    )
    provider = arrays.provider_names[_smallest_column(arrays.provider_matrix, arrays.has_metadata)]
    start = time.perf_counter()
    result = _serve_view(ctx, view, LIST_K, genres=[arrays.genre_names[g]], providers=[provider])
    obs = _list_summary(arrays, view, result, 0, LIST_K)
    obs["serve_seconds"] = round(time.perf_counter() - start, 3)
    obs.update({"genre": arrays.genre_names[g], "provider": provider, "providers_from": how})
    obs["unseen_left"] = [int(arrays.item_ids[i]) for i in left]
    obs["held_out"] = [
        f"{_title(arrays, int(i))} (unseen, not {arrays.genre_names[g]})" for i in left
    ]
    obs["held_out_hits"] = [i in obs["movie_ids"] for i in obs["unseen_left"]]
    obs["rec_hits"] = [i in set(obs["unseen_left"]) for i in obs["movie_ids"]]
    obs["history"] = [f"has rated {len(seen):,} of {len(safe):,} movies"]
    return obs


def _check_relaxation_ends(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs, k=len(obs.get("unseen_left", [])))
    if obs.get("relaxation_step") != 2:
        unmet.append(f"relaxation step {obs.get('relaxation_step')}, expected 2 (the last step)")
    if sorted(obs.get("movie_ids", [])) != sorted(obs.get("unseen_left", [])):
        unmet.append("the list is not exactly the unseen movies")
    if obs.get("serve_seconds", 1e9) > 5.0:
        unmet.append(f"serving took {obs.get('serve_seconds')} s (> 5 s)")
    return unmet


# ---------------------------------------------------------------------------------------------
# Sorting and ties
# ---------------------------------------------------------------------------------------------
def tied_arrays(n_items: int = 200, n_users: int = 3, dim: int = 8) -> Any:
    """A hand-built catalogue where every item scores the same for every user (one embedding,
    one factor vector, equal quality and recency): only the tie-break decides the order."""
    from tasks.candidates import RecommenderArrays

    emb = np.zeros((n_items, dim), np.float32)
    emb[:, 0] = 1.0
    seen = sp.csr_matrix(
        (np.full(3, 4.0, np.float32), (np.zeros(3, np.int64), np.array([0, 5, 7]))),
        shape=(n_users, n_items),
    )
    return RecommenderArrays(
        item_ids=np.arange(n_items, dtype=np.int32) * 3 + 10,
        user_ids=np.arange(1, n_users + 1, dtype=np.int32),
        embeddings=emb,
        neighbor_idx=np.tile(np.arange(1, 7, dtype=np.int32), (n_items, 1)),
        user_factors=np.ones((n_users, 4), np.float32),
        item_factors=np.ones((n_items, 4), np.float32),
        user_has_factors=np.ones(n_users, bool),
        item_has_factors=np.ones(n_items, bool),
        profiles=np.tile(emb[:1], (n_users, 1)),
        quality=np.full(n_items, 0.5, np.float32),
        recency=np.full(n_items, 0.5, np.float32),
        genre_names=["Drama"],
        genre_matrix=np.ones((n_items, 1), bool),
        provider_names=[],
        provider_matrix=np.zeros((n_items, 0), bool),
        seen=seen,
        seed_items=np.array([[0, 5, 7]] + [[-1, -1, -1]] * (n_users - 1), np.int32),
        cohorts=np.array(["light"] * n_users, dtype=object),
    )


def _run_ties(ctx: EdgeContext) -> Observed:
    from tasks.candidates import recommend_batch, recommend_users

    arrays = tied_arrays()
    alphas = np.full(arrays.n_users, 0.5, np.float32)
    cfg = ctx.candidates_cfg
    one = recommend_batch(arrays, np.array([0]), alphas[:1], cfg, k=LIST_K)
    again = recommend_batch(arrays, np.array([0]), alphas[:1], cfg, k=LIST_K)
    in_batch = recommend_users(arrays, np.array([2, 1, 0]), alphas, cfg, k=LIST_K, workers=1)
    seen = set(arrays.seen[0].indices.tolist())
    unseen = [int(arrays.item_ids[i]) for i in range(arrays.n_items) if i not in seen]
    obs = _list_summary(arrays, arrays, one, 0, LIST_K)
    scores = one["score"][0][one["item_idx"][0] >= 0]
    obs.update(
        {
            "distinct_scores": int(len(np.unique(scores))),
            "expected_ids": unseen[:LIST_K],
            "same_on_second_call": bool(np.array_equal(one["item_idx"], again["item_idx"])),
            "same_inside_a_batch": bool(
                np.array_equal(one["item_idx"][0], in_batch["item_idx"][2])
            ),
            "history": ["user 1 rated 3 of 200 identical movies * 4"],
        }
    )
    return obs


def _check_ties(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs)
    if obs.get("distinct_scores") != 1:
        unmet.append(f"{obs.get('distinct_scores')} distinct scores: the scenario did not tie")
    if obs.get("movie_ids") != obs.get("expected_ids"):
        unmet.append("tied items are not in ascending movie id order")
    if not obs.get("same_on_second_call"):
        unmet.append("a second call gave another order")
    if not obs.get("same_inside_a_batch"):
        unmet.append("the order changes when the user is served inside a batch")
    return unmet


def _run_same_seed(ctx: EdgeContext) -> Observed:
    from tasks.candidates import _sample_users, recommend_users
    from tasks.hybrid import policy_alphas
    from tasks.metrics import bootstrap_ci

    arrays = ctx.arrays
    n = min(arrays.n_users, max(ctx.candidates_cfg.sample_users, 20))

    def once(seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float, float]]:
        users = _sample_users(arrays, n, seed)
        cohorts = arrays.cohorts[users] if arrays.cohorts is not None else ["cold"] * len(users)
        res = recommend_users(
            arrays,
            users,
            policy_alphas(cohorts, ctx.policy.as_dict()),
            ctx.candidates_cfg,
            k=LIST_K,
        )
        ci = bootstrap_ci(res["score"][:, 0].astype(np.float64), n_boot=200, seed=seed)
        return users, res, ci

    u1, r1, c1 = once(ctx.seed)
    u2, r2, c2 = once(ctx.seed)
    u3, _, _ = once(ctx.seed + 1)
    same_scores = all(
        np.array_equal(r1[name], r2[name], equal_nan=True)
        for name in ("item_idx", "score", "collab", "content")
    )
    return {
        "seed": ctx.seed,
        "sample_users": int(n),
        "same_sample": bool(np.array_equal(u1, u2)),
        "same_lists_and_scores": bool(same_scores),
        "same_bootstrap_interval": bool(c1 == c2),
        "bootstrap_interval": [round(v, 6) for v in c1],
        "other_seed_other_sample": bool(not np.array_equal(u1, u3)) if n < arrays.n_users else None,
    }


def _check_same_seed(obs: Observed) -> list[str]:
    unmet = [
        f"{key.replace('_', ' ')} differs"
        for key in ("same_sample", "same_lists_and_scores", "same_bootstrap_interval")
        if not obs.get(key)
    ]
    if obs.get("other_seed_other_sample") is False:
        unmet.append("another seed drew the same sample: the seed is not used")
    return unmet


def _run_k_too_large(ctx: EdgeContext) -> Observed:
    from tasks.candidates import recommend_batch
    from tasks.hybrid import policy_alphas

    arrays = ctx.arrays
    user = _heaviest_with_factors(arrays)
    k = ctx.candidates_cfg.c_max + 50
    cohort = arrays.cohorts[user] if arrays.cohorts is not None else "cold"
    result = recommend_batch(
        arrays,
        np.array([user]),
        policy_alphas([cohort], ctx.policy.as_dict()),
        ctx.candidates_cfg,
        k=k,
    )
    view = copy.copy(arrays)
    view.seen = arrays.seen[user]
    obs = _list_summary(arrays, view, result, 0, k)
    obs.pop("movie_ids")
    obs.update({"user_id": int(arrays.user_ids[user]), "c_max": ctx.candidates_cfg.c_max})
    obs["history"] = _history_lines(arrays, view, limit=10)
    return obs


def _check_k_too_large(obs: Observed) -> list[str]:
    unmet = _full_list_unmet(obs, k=obs.get("pool_size"))
    if obs.get("pool_size", 0) >= obs.get("k", 0):
        unmet.append("the pool was not smaller than K: the scenario did not test K > candidates")
    if not obs.get("padding_only_at_end"):
        unmet.append("empty slots are not all at the end of the list")
    return unmet


# ---------------------------------------------------------------------------------------------
# CPU and time
# ---------------------------------------------------------------------------------------------
def _run_tiny_budget(ctx: EdgeContext) -> Observed:
    from tasks.evaluation import evaluation_core

    budget = ctx.cfg.tiny_budget_seconds
    root = ctx.scratch("tiny-budget")
    start = time.monotonic()
    obs: Observed = {"stage": "evaluation", "budget_seconds": budget}
    try:
        run_with_budget(
            "evaluation",
            budget,
            evaluation_core,
            str(root / "run"),
            dict(ctx.refs),
            ctx.eval_cfg,
            ctx.candidates_cfg,
            ctx.policy,
            ctx.split_cfg,
            ctx.seed,
            parts_root=str(root / "parts"),
            reports=False,
        )
        obs["outcome"] = "finished"
    except StageTimeout as exc:
        obs.update({"outcome": "StageTimeout", "message": str(exc)})
    obs["elapsed_seconds"] = round(time.monotonic() - start, 3)
    return obs


def _check_tiny_budget(obs: Observed) -> list[str]:
    unmet = []
    if obs.get("outcome") != "StageTimeout":
        unmet.append(f"the stage {obs.get('outcome')} instead of being stopped")
    limit = 2 * obs.get("budget_seconds", 0)
    if obs.get("elapsed_seconds", 1e9) > limit:
        unmet.append(
            f"stopped after {obs.get('elapsed_seconds')} s, more than 2x the budget ({limit:g} s)"
        )
    if "budgets.evaluation" not in obs.get("message", "budgets.evaluation"):
        unmet.append("the timeout message does not say which budget to raise")
    return unmet


def heavy_catalogue(n_items: int, dim: int = 32, seed: int = 0) -> Any:
    """A synthetic catalogue of ``n_items`` (for a heavy user when the run's is too small):
    random unit embeddings, exact 10 nearest neighbours, random factors, five genres."""
    from tasks.candidates import RecommenderArrays

    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_items, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    neighbors = np.empty((n_items, 10), np.int32)
    for lo in range(0, n_items, 1024):  # blocks of 1024 x n_items similarities, not n_items^2
        sims = emb[lo : lo + 1024] @ emb.T
        sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        neighbors[lo : lo + len(sims)] = np.take_along_axis(top, order, axis=1)
    return RecommenderArrays(
        item_ids=np.arange(1, n_items + 1, dtype=np.int32),
        user_ids=np.array([1], np.int32),
        embeddings=emb,
        neighbor_idx=neighbors,
        user_factors=rng.standard_normal((1, 16)).astype(np.float32),
        item_factors=rng.standard_normal((n_items, 16)).astype(np.float32),
        user_has_factors=np.ones(1, bool),
        item_has_factors=np.ones(n_items, bool),
        profiles=np.zeros((1, dim), np.float32),
        quality=rng.random(n_items).astype(np.float32),
        recency=rng.random(n_items).astype(np.float32),
        genre_names=["Action", "Comedy", "Drama", "Horror", "Romance"],
        genre_matrix=rng.random((n_items, 5)) < 0.3,
        provider_names=[],
        provider_matrix=np.zeros((n_items, 0), bool),
        seen=sp.csr_matrix((1, n_items), dtype=np.float32),
        seed_items=np.full((1, 20), -1, np.int32),
        cohorts=np.array(["heavy"], dtype=object),
        titles=np.array([f"Synthetic movie {i}" for i in range(1, n_items + 1)], dtype=object),
    )


def _heavy_job(ctx: EdgeContext, n: int) -> Observed:
    arrays = ctx.arrays
    need = n + 3 * ctx.candidates_cfg.k_final
    source = "the run's catalogue"
    if int(arrays.has_metadata.sum()) < need:
        arrays = heavy_catalogue(need + 2_000, seed=ctx.seed)
        source = f"a synthetic catalogue of {arrays.n_items:,} items (the run's has {int(ctx.arrays.has_metadata.sum()):,} servable items, fewer than {n:,} + a list)"
    rng = np.random.default_rng(ctx.seed)
    safe = np.flatnonzero(arrays.has_metadata)
    items = np.sort(rng.choice(safe, size=n, replace=False))
    ratings = rng.choice(np.arange(1, 11, dtype=np.float32) / 2, size=n)
    start = time.perf_counter()
    view, _ = user_view(ctx, items, ratings, arrays=arrays)
    if source != "the run's catalogue":  # the synthetic catalogue's one user has factors
        view.user_factors = arrays.user_factors
        view.user_has_factors = arrays.user_has_factors
    result = _serve_view(ctx, view, ctx.candidates_cfg.k_final)
    obs = _list_summary(arrays, view, result, 0, ctx.candidates_cfg.k_final)
    obs.pop("movie_ids")
    obs.update(
        {
            "n_ratings": n,
            "catalogue": source,
            "serve_seconds": round(time.perf_counter() - start, 3),
        }
    )
    obs["history"] = _history_lines(arrays, view, limit=10)
    return obs


def _run_heavy_user(ctx: EdgeContext) -> Observed:
    budget = ctx.cfg.heavy_user_budget_seconds
    obs: Observed = {"budget_seconds": budget}
    try:
        result = run_with_budget("heavy_user", budget, _heavy_job, ctx, ctx.cfg.heavy_user_ratings)
        obs.update(result.value)
        obs["wall_seconds"] = round(result.wall_seconds, 3)
    except StageTimeout as exc:
        obs.update({"outcome": "StageTimeout", "message": str(exc)})
    return obs


def _check_heavy_user(obs: Observed) -> list[str]:
    if obs.get("outcome") == "StageTimeout":
        return [f"not served within its budget of {obs.get('budget_seconds')} s"]
    unmet = _full_list_unmet(obs)
    if obs.get("n_ratings", 0) < 10_000:
        unmet.append(f"the user has {obs.get('n_ratings')} ratings, fewer than 10,000")
    if obs.get("wall_seconds", 1e9) > obs.get("budget_seconds", 0):
        unmet.append("served after its budget")
    return unmet


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------
def _run_batch_sizes(ctx: EdgeContext) -> Observed:
    from tasks.candidates import _sample_users, recommend_batch, recommend_users
    from tasks.hybrid import policy_alphas

    arrays = ctx.arrays
    users = _sample_users(arrays, min(arrays.n_users, 64), ctx.seed)
    cohorts = arrays.cohorts[users] if arrays.cohorts is not None else ["cold"] * len(users)
    alphas = policy_alphas(cohorts, ctx.policy.as_dict())
    cfg = ctx.candidates_cfg
    singles = [
        recommend_batch(arrays, users[i : i + 1], alphas[i : i + 1], cfg, k=LIST_K)
        for i in range(len(users))
    ]
    one = {name: np.concatenate([s[name] for s in singles]) for name in singles[0]}
    big = recommend_users(arrays, users, alphas, cfg, k=LIST_K, batch_size=len(users))
    fields = ("item_idx", "score", "collab", "content", "boosts", "relaxation_step")
    # exact for lists and steps; scores may differ in the last float32 bits, because BLAS sums a
    # (1 x f) @ (f x n) product in another order than a (64 x f) one - the gap is recorded
    differing = [
        name
        for name in fields
        if not (
            np.array_equal(one[name], big[name], equal_nan=True)
            or (
                name in SCORE_FIELDS
                and np.allclose(
                    one[name], big[name], rtol=0.0, atol=SCORE_TOLERANCE, equal_nan=True
                )
            )
        )
    ]
    max_abs_diff = {
        name: float(
            np.nanmax(
                np.abs(one[name].astype(np.float64) - big[name].astype(np.float64)), initial=0.0
            )
        )
        for name in SCORE_FIELDS
    }
    return {
        "users": int(len(users)),
        "batch_sizes": [1, int(len(users))],
        "largest_batch_path": "recommend_users (forked workers, every user in one call)",
        "fields_compared": list(fields),
        "fields_differing": differing,
        "score_tolerance": SCORE_TOLERANCE,
        "max_abs_diff": max_abs_diff,
        "rows_differing": int((one["item_idx"] != big["item_idx"]).any(axis=1).sum()),
    }


#: Score fields compared with a tolerance (float32 rounding of BLAS products of different shapes).
SCORE_FIELDS = ("score", "collab", "content", "boosts")
SCORE_TOLERANCE = 1e-5


def _check_batch_sizes(obs: Observed) -> list[str]:
    unmet = []
    if obs.get("fields_differing"):
        unmet.append(
            f"results differ in {obs['fields_differing']} ({obs.get('rows_differing')} users' lists; "
            f"largest score gaps {obs.get('max_abs_diff')})"
        )
    if obs.get("users", 0) < 2:
        unmet.append("fewer than two users compared")
    return unmet


#: Bytes a dense scoring row holds per catalogue item: the float32 scores plus the top-k
#: selection's mask and temporaries (measured on ml-latest-small: about 5 bytes per cell).
DENSE_BYTES_PER_CELL = 6


def cf_top_k_batched(arrays: Any, users: np.ndarray, k: int, batch_rows: int) -> np.ndarray:
    """Exact collaborative top-k over the whole catalogue (seen and unsafe items excluded), scored
    in batches of ``batch_rows`` users: the evaluation's ``cf_full`` ranking
    (:func:`tasks.evaluation.top_k_dense` on ``x_u . y_i``). Memory grows with ``batch_rows``."""
    from tasks.candidates import _seen_coords
    from tasks.evaluation import top_k_dense

    out = np.full((len(users), k), -1, np.int32)
    blocked = ~(arrays.item_has_factors & arrays.has_metadata)
    for lo in range(0, len(users), batch_rows):  # one dense block per batch: that is the point
        batch = np.asarray(users[lo : lo + batch_rows], dtype=np.int64)
        scores = arrays.user_factors[batch] @ arrays.item_factors_t
        rows, items, _ = _seen_coords(arrays.seen, batch)
        scores.reshape(-1)[rows * arrays.n_items + items] = -np.inf
        scores[:, blocked] = -np.inf
        out[lo : lo + len(batch)] = top_k_dense(scores, k)
        del scores
    return out


def _run_memory_budget(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    budget = ctx.cfg.memory_budget_mb
    per_row = DENSE_BYTES_PER_CELL * arrays.n_items
    batch = rows_within_memory(budget, per_row)
    # enough user rows that scoring them at once would need about twice the budget
    n_rows = max(2 * rows_within_memory(budget, per_row, share=1.0), 2)
    users = np.resize(np.arange(arrays.n_users), n_rows)
    k = LIST_K
    obs: Observed = {
        "memory_budget_mb": budget,
        "rows": int(n_rows),
        "batch_rows_from_budget": int(batch),
        "estimated_unbatched_mb": round(n_rows * per_row / 2**20, 1),
    }
    budgeted = run_with_budget(
        "memory_budget", ctx.cfg.scenario_time_limit_seconds, cf_top_k_batched, arrays, users, k, batch,
        memory_budget_mb=budget,
    )  # fmt: skip
    obs["budgeted_peak_growth_mb"] = round(budgeted.peak_growth_bytes / 2**20, 1)
    obs["budgeted_completed"] = True
    try:
        unbatched = run_with_budget(
            "memory_unbatched", ctx.cfg.scenario_time_limit_seconds, cf_top_k_batched, arrays, users, k, n_rows,
            memory_budget_mb=budget,
        )  # fmt: skip
        obs["unbatched_outcome"] = "completed"
        obs["unbatched_peak_growth_mb"] = round(unbatched.peak_growth_bytes / 2**20, 1)
        obs["same_lists"] = bool(np.array_equal(budgeted.value, unbatched.value))
    except StageMemoryExceeded as exc:
        obs["unbatched_outcome"] = "StageMemoryExceeded"
        obs["unbatched_observed_mb"] = round(exc.observed_mb, 1)
        obs["unbatched_stopped_by"] = exc.when
    return obs


def _check_memory_budget(obs: Observed) -> list[str]:
    unmet = []
    if not obs.get("budgeted_completed"):
        unmet.append("the budgeted job did not complete")
    if obs.get("budgeted_peak_growth_mb", 1e9) > obs.get("memory_budget_mb", 0):
        unmet.append(
            f"peak growth {obs.get('budgeted_peak_growth_mb')} MB is over the budget of "
            f"{obs.get('memory_budget_mb')} MB"
        )
    if obs.get("unbatched_outcome") != "StageMemoryExceeded":
        unmet.append(
            "the same job without the budget's batch size was not stopped by the memory watchdog "
            f"({obs.get('unbatched_outcome')}, peak growth {obs.get('unbatched_peak_growth_mb')} MB)"
        )
    return unmet


# ---------------------------------------------------------------------------------------------
# The scenario list
# ---------------------------------------------------------------------------------------------
def default_scenarios() -> list[Scenario]:
    """Every edge case of the stage, in report order (at least 18, in the six categories)."""
    ingest_run = "tasks.ingest.ingest_core on a small MovieLens folder (ratings.csv, movies.csv) in a temporary directory"
    user_run = "tasks.candidates.recommend_for_user on the run's models, for a user built from the given ratings (not in the trained model: content and popularity)"
    filter_run = (
        "tasks.candidates.recommend_batch (filters and the relaxation ladder) on the run's models"
    )
    return [
        Scenario(
            "duplicate_ratings", "input_data", "Duplicate ratings",
            f"{ingest_run}; user 1 rates movie 1 twice (4.0, then 4.5).",
            "Ingest stops with an InputDataError that names ratings.csv, the (user_id, movie_id) pair and "
            "both lines, and says to keep one rating per user and movie.",
            _run_duplicates,
            lambda o: _input_error_unmet(o, ["ratings.csv", "user_id, movie_id", "line 2", "line 8", "Keep one rating"]),
        ),
        Scenario(
            "unknown_movie_ratings", "input_data", "Ratings for unknown movies",
            f"{ingest_run}; one rating for movieId 99, which movies.csv does not list.",
            "Ingest stops with an InputDataError naming ratings.csv, the movie_id column (file column movieId), "
            "line 8 and the fix (add the movie or drop its ratings).",
            _run_unknown_movies,
            lambda o: _input_error_unmet(o, ["ratings.csv", "movie_id", "movieId", "line 8", "movie_id=99", "Add those movies"]),
        ),
        Scenario(
            "missing_ratings", "input_data", "NaN ratings",
            f"{ingest_run}; one rating cell is empty, another reads NaN.",
            "Ingest stops with an InputDataError naming ratings.csv, the rating column and lines 8 and 9, and "
            "only that problem (one failed expectation - no failure the user cannot act on).",
            _run_missing_rating,
            lambda o: _input_error_unmet(o, ["ratings.csv", "'rating'", "line 8", "line 9"], only=1),
        ),
        Scenario(
            "out_of_range_ratings", "input_data", "Out-of-range ratings",
            f"{ingest_run}; ratings 7.0 and -1 on the 0.5-5 half-star scale.",
            "Ingest stops with an InputDataError naming ratings.csv, the rating column, lines 8 and 9, and the "
            "scale [0.5, 5.0].",
            _run_out_of_range,
            lambda o: _input_error_unmet(o, ["ratings.csv", "'rating'", "line 8", "line 9", "[0.5, 5.0]"]),
        ),
        Scenario(
            "non_ascii_long_titles", "input_data", "Non-ASCII and very long titles",
            f"{ingest_run}; titles in French, Japanese and Russian, a quoted title with a comma, and a "
            f"{len(_ODD_TITLES[5]):,}-character title.",
            "Ingest succeeds; every title is stored exactly as written (byte for byte, not truncated) and its "
            "year is read from the trailing (YYYY).",
            _run_odd_titles,
            _check_odd_titles,
        ),
        Scenario(
            "new_user_no_history", "user_behaviour", "Brand-new user with no history",
            "tasks.candidates.recommend_for_user for a user id the run has never seen: once without a "
            "genre, once with the catalogue's most common genre.",
            f"Without a genre: a UsageError that says to add --genre. With it: {LIST_K} distinct movies of "
            "that genre, mode cold-start, finite scores in [0, 1], reasons saying there is no history yet.",
            _run_new_user,
            _check_new_user,
        ),
        Scenario(
            "single_rating_user", "user_behaviour", "User with a single rating",
            f"{user_run}; one rating: 5 stars for the most rated movie.",
            f"{LIST_K} distinct unseen movies (not the rated one), finite scores in [0, 1], mode "
            "personalised, every reason pointing to the one movie rated highly.",
            _run_single_rating,
            _check_single_rating,
        ),
        Scenario(
            "almost_whole_catalog_user", "user_behaviour", "User who has seen almost the whole catalogue",
            "tasks.candidates.recommend_for_user on the run's models for the heaviest user (its trained "
            "factors kept) whose history has grown to every servable movie but 5.",
            f"Exactly the 5 unseen movies (fewer than K={LIST_K}), no rated movie repeated and no padding "
            "with seen ones; no error.",
            _run_almost_everything,
            _check_almost_everything,
        ),
        Scenario(
            "only_low_ratings_user", "user_behaviour", "User with only low ratings (no positives)",
            f"{user_run}; 20 of the most rated movies, all rated 0.5-2 stars.",
            f"{LIST_K} distinct unseen movies with finite scores; no reason claims a movie was rated highly; "
            "the list is not pulled towards the disliked movies (mean content cosine to them no higher than "
            "for the list of a user without usable taste).",
            _run_only_low,
            _check_only_low,
        ),
        Scenario(
            "genre_filter_matches_nothing", "filters", "Genre filter that matches nothing",
            f"{filter_run}; the smallest genre, for a user who has rated every movie of it.",
            f"The ladder widens genres (relaxation step 2) and serves {LIST_K} distinct unseen movies; "
            "the step is recorded.",
            _run_genre_nothing,
            _check_relaxed(2),
        ),
        Scenario(
            "provider_filter_matches_nothing", "filters", "Provider filter that matches nothing",
            f"{filter_run}; the smallest provider, for a user who has rated every title it carries.",
            f"The ladder drops providers (relaxation step 1) and serves {LIST_K} distinct unseen movies.",
            _run_provider_nothing,
            _check_relaxed(1),
        ),
        Scenario(
            "contradictory_genre_provider", "filters", "Contradictory genre and provider filters",
            f"{filter_run}; a genre and a provider that share no unseen title.",
            f"The ladder drops providers first (relaxation step 1) and serves {LIST_K} movies, all of the "
            "asked genre.",
            _run_contradictory,
            _check_contradictory,
        ),
        Scenario(
            "unknown_genre_or_provider", "filters", "Unknown genre or provider names",
            "tasks.candidates.recommend_for_user for the heaviest user with genre 'Sci-Fy', then provider "
            "'Netflixx', then a real genre in upper case.",
            "Each unknown name: a UsageError that names it and lists the valid names; the real genre in "
            f"another case is accepted ({LIST_K} movies).",
            _run_unknown_names,
            _check_unknown_names,
        ),
        Scenario(
            "relaxation_ladder_ends", "filters", "Every relaxation step still short of K",
            f"{filter_run}; genre + provider filters for the heaviest user (trained factors kept) grown to "
            "every movie but 3 (none of the genre): the old system looped forever here.",
            "The ladder stops at its last step (2) and serves exactly the 3 unseen movies within 5 s.",
            _run_relaxation_ends,
            _check_relaxation_ends,
        ),
        Scenario(
            "identical_scores_order", "sorting_ties", "Many identical scores",
            "tasks.candidates.recommend_batch / recommend_users on a hand-built catalogue of 200 movies "
            "that all score the same (one embedding, one factor vector, equal boosts).",
            f"All {LIST_K} scores tie; the order is the documented tie-break (ascending movie id), the same "
            "on a second call and inside a batch of users.",
            _run_ties,
            _check_ties,
        ),
        Scenario(
            "same_seed_twice", "sorting_ties", "The same seed twice",
            "tasks.candidates._sample_users + recommend_users + tasks.metrics.bootstrap_ci with the run's "
            "seed, twice, then with seed + 1.",
            "Identical sample, lists, scores and bootstrap interval for the same seed; another seed draws "
            "another sample.",
            _run_same_seed,
            _check_same_seed,
        ),
        Scenario(
            "k_larger_than_candidates", "sorting_ties", "K larger than the available candidates",
            "tasks.candidates.recommend_batch for the heaviest user with factors, K = candidates.c_max + 50.",
            "No error; every candidate of the pool is listed once (list length = pool size < K), none "
            "seen, empty slots only at the end.",
            _run_k_too_large,
            _check_k_too_large,
        ),
        Scenario(
            "tiny_time_budget", "cpu_time", "A stage given a tiny time budget",
            "tasks.evaluation.evaluation_core on the run's models under tasks.budget.run_with_budget with "
            "edge_cases.tiny_budget_seconds.",
            "StageTimeout naming the budget to raise (budgets.evaluation), raised within 2x the budget: "
            "the stage is stopped and reported, not hung.",
            _run_tiny_budget,
            _check_tiny_budget,
        ),
        Scenario(
            "heavy_user_within_budget", "cpu_time", "A heavy user (10,000+ ratings)",
            "tasks.candidates.recommend_batch for a user with edge_cases.heavy_user_ratings ratings "
            "(a synthetic catalogue when the run's is too small), under edge_cases.heavy_user_budget_seconds.",
            "A full list of k_final distinct unseen movies with finite scores, served within the budget.",
            _run_heavy_user,
            _check_heavy_user,
        ),
        Scenario(
            "batch_size_one_vs_largest", "memory", "Batch size 1 and the largest batch",
            "tasks.candidates.recommend_batch one user at a time vs recommend_users with every sampled user "
            "in one batch (forked workers), for 64 seeded users.",
            "Identical lists (movie ids in order) and relaxation steps; scores, collab, content and "
            "boosts equal within 1e-5 (float32 rounding of BLAS products of different shapes).",
            _run_batch_sizes,
            _check_batch_sizes,
        ),
        Scenario(
            "memory_budget_respected", "memory", "A memory budget keeps peak memory under it",
            "Collaborative top-10 over the whole catalogue (tasks.evaluation.top_k_dense) for enough users "
            "that one dense batch would need about twice edge_cases.memory_budget_mb, in batches sized from "
            "the budget (tasks.budget.rows_within_memory), in a child watched by the memory budget "
            "(tasks.budget.run_with_budget memory_budget_mb); then the same job in one batch.",
            "The budgeted job completes with a measured peak RSS growth under the budget; the one-batch job "
            "is stopped by the watchdog (StageMemoryExceeded).",
            _run_memory_budget,
            _check_memory_budget,
        ),
    ]  # fmt: skip


#: Observed keys that describe a scenario's input (the evidence file's ``inputs`` summary).
INPUT_KEYS: dict[str, tuple[str, ...]] = {
    "duplicate_ratings": ("ratings_csv_lines",),
    "unknown_movie_ratings": ("ratings_csv_lines",),
    "missing_ratings": ("ratings_csv_lines",),
    "out_of_range_ratings": ("ratings_csv_lines",),
    "non_ascii_long_titles": ("movie_titles", "ratings_csv_lines"),
    "new_user_no_history": ("user_id", "genre"),
    "single_rating_user": ("n_ratings", "rated"),
    "almost_whole_catalog_user": (
        "n_ratings",
        "catalogue_safe_items",
        "unseen_left",
        "factors_of_user",
    ),
    "only_low_ratings_user": ("n_ratings", "max_rating"),
    "genre_filter_matches_nothing": ("genre", "genre_items_all_seen"),
    "provider_filter_matches_nothing": ("provider", "provider_items_all_seen", "providers_from"),
    "contradictory_genre_provider": ("genre", "provider", "titles_with_both", "providers_from"),
    "unknown_genre_or_provider": ("user_id", "case_insensitive_genre"),
    "relaxation_ladder_ends": ("genre", "provider", "unseen_left", "providers_from"),
    "same_seed_twice": ("seed", "sample_users"),
    "k_larger_than_candidates": ("user_id", "k", "c_max"),
    "tiny_time_budget": ("stage", "budget_seconds"),
    "heavy_user_within_budget": ("n_ratings", "catalogue", "budget_seconds"),
    "batch_size_one_vs_largest": ("users", "batch_sizes"),
    "memory_budget_respected": (
        "memory_budget_mb",
        "rows",
        "batch_rows_from_budget",
        "estimated_unbatched_mb",
    ),
}


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------
def _execute(scenario: Scenario, ctx: EdgeContext) -> Observed:
    """In the scenario's child: run it; an exception is returned as the observation."""
    try:
        return {"observed": scenario.run(ctx)}
    except Exception as exc:  # noqa: BLE001 - a failing scenario is a result, not a crash
        import traceback

        return {"error": _error_text(exc), "traceback": traceback.format_exc()[-4000:]}


def run_scenario(scenario: Scenario, ctx: EdgeContext, time_limit: float) -> ScenarioResult:
    """Run one scenario in its own child, stopped at ``time_limit``; never raises for its failures."""
    start = time.monotonic()
    observed: Observed = {}
    error = ""
    if time_limit < 1.0:
        error = "not run: the stage's time budget was used up by the scenarios before it"
    else:
        try:
            value = run_with_budget(
                f"edge_cases:{scenario.id}", time_limit, _execute, scenario, ctx
            ).value
            observed = value.get("observed", {})
            if "error" in value:
                error = value["error"]
                observed = {"traceback": value.get("traceback", "")}
        except StageTimeout:
            error = (
                f"stopped at its time limit of {time_limit:.3g} s "
                "(edge_cases.scenario_time_limit_seconds, or what was left of the stage budget)"
            )
        except Exception as exc:  # noqa: BLE001 - the child died (e.g. killed for memory): a failure
            error = _error_text(exc)
    seconds = time.monotonic() - start
    if error:
        unmet = [f"the scenario did not finish: {error}"]
    else:
        try:
            unmet = list(scenario.check(observed))
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check
            unmet = [f"the check raised {_error_text(exc)}"]
    return ScenarioResult(
        id=scenario.id,
        category=scenario.category,
        title=scenario.title,
        what_is_run=scenario.what_is_run,
        expected=scenario.expected,
        observed=observed,
        unmet=unmet,
        error=error,
        passed=not unmet,
        seconds=seconds,
    )


def run_scenarios(
    scenarios: Sequence[Scenario],
    ctx: EdgeContext,
    time_limit: float,
    progress: Callable[[float, str], None] | None = None,
    deadline: float | None = None,
) -> list[ScenarioResult]:
    """Every scenario, one after the other, each in its own child with its own time limit.

    ``deadline`` (``time.monotonic()`` value): no scenario runs past it - a hanging scenario then
    fails at the deadline and the ones after it fail unrun, but the stage still reports them all.
    """
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"scenario ids must be unique: {sorted(i for i in ids if ids.count(i) > 1)}"
        )
    results = []
    for n, scenario in enumerate(scenarios):  # scenarios are independent; one child each
        if progress is not None:
            progress(n / max(len(scenarios), 1), f"{scenario.id}")
        limit = time_limit if deadline is None else min(time_limit, deadline - time.monotonic())
        results.append(run_scenario(scenario, ctx, limit))
    return results


def pass_rates(results: Sequence[ScenarioResult]) -> tuple[float, dict[str, float]]:
    """Overall pass rate and the pass rate per category (categories with scenarios only)."""
    overall = sum(r.passed for r in results) / len(results) if results else 0.0
    per: dict[str, float] = {}
    for cat in CATEGORIES:
        mine = [r for r in results if r.category == cat]
        if mine:
            per[cat] = round(sum(r.passed for r in mine) / len(mine), 4)
    return round(overall, 4), per


# ---------------------------------------------------------------------------------------------
# Evidence, table, report
# ---------------------------------------------------------------------------------------------
def _png_ok(path: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            return img.width > 0 and img.height > 0
    except Exception:  # noqa: BLE001 - any failure to decode means "not ok"
        return False


def _draw(result: ScenarioResult, run_dir: Path) -> str:
    obs = result.observed
    if not obs.get("recommendations") and not obs.get("held_out"):
        return ""
    import textwrap

    from tasks.case_studies import TriptychPanels, draw_triptych

    recs = list(obs.get("recommendations", []))
    rec_hits = [bool(h) for h in obs.get("rec_hits", [])][: len(recs)]
    rec_hits += [False] * (len(recs) - len(rec_hits))
    # right panel: the items the list should hold (if any), then the expectation and the verdict
    held: list[str] = []
    held_hits: list[bool] = []
    if obs.get("held_out"):
        held += ["# expected in the list", *obs["held_out"]]
        held_hits += [False, *(bool(h) for h in obs.get("held_out_hits", []))]
        held_hits += [False] * (len(held) - len(held_hits))
    verdict = [f"- {u}" for u in result.unmet] if result.unmet else ["every expectation met"]
    held += ["# expected outcome", *textwrap.wrap(result.expected, 72)]
    held += [
        "# result: " + ("PASS" if result.passed else "FAIL"),
        *(w for v in verdict for w in textwrap.wrap(v, 72)),
    ]
    held_hits += [False] * (len(held) - len(held_hits))
    panels = TriptychPanels(
        title=f"{result.id} - {'PASS' if result.passed else 'FAIL'} - {result.title}",
        history=list(obs.get("history", [])),
        recommendations=recs,
        held_out=held,
        rec_hits=rec_hits,
        held_out_hits=held_hits,
    )
    rel = f"{EDGE_DIR}/{result.id}.png"
    draw_triptych(panels, run_dir / rel)
    return rel


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _observed_text(result: ScenarioResult, limit: int = 400) -> str:
    if result.error:
        return f"error: {result.error}"
    lean = {k: v for k, v in _lean(result.observed).items() if k not in ("movie_ids", "traceback")}
    text = json.dumps(lean, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def render_report(
    results: Sequence[ScenarioResult], rows: pd.DataFrame, facts: Mapping[str, Any]
) -> str:
    """``reports/edge_cases.md``: every scenario with its result and evidence, pass rates per
    category and overall, and the gate."""
    lines = [
        "# Edge cases",
        "",
        f"{facts['n_scenarios']} scenarios in {len(facts['per_category'])} categories, each run against the "
        "real code path with its own small input, an expected outcome written before it ran (in "
        "`tasks/edge_cases.py`), the observed outcome, and an evidence file.",
        "",
        f"**Pass rate: {facts['n_passed']} of {facts['n_scenarios']} = {100 * facts['pass_rate']:.1f}%** "
        f"(gate: at least {100 * facts['min_pass_rate']:.0f}%, `edge_cases.min_pass_rate`) - "
        f"gate **{'passed' if facts['gate_passed'] else 'FAILED'}**.",
        "",
        "| category | scenarios | passed | pass rate |",
        "|---|---:|---:|---:|",
    ]
    for cat, rate in facts["per_category"].items():
        mine = [r for r in results if r.category == cat]
        lines.append(
            f"| {CATEGORY_TITLES[cat]} | {len(mine)} | {sum(r.passed for r in mine)} | {100 * rate:.0f}% |"
        )
    lines.append(
        f"| **overall** | {facts['n_scenarios']} | {facts['n_passed']} | {100 * facts['pass_rate']:.1f}% |"
    )
    if facts["failed"]:
        lines += ["", "Failing scenarios: " + ", ".join(f"`{f}`" for f in facts["failed"]) + "."]
    lines += ["", "| id | category | result | seconds | evidence |", "|---|---|---|---:|---|"]
    for r, row in zip(results, rows.to_dict("records"), strict=True):
        links = f"[json](../{row['evidence']})" + (
            f", [png](../{row['png']})" if row["png"] else ""
        )
        lines.append(
            f"| [{r.id}](#{r.id}) | {r.category} | {'PASS' if r.passed else '**FAIL**'} | {r.seconds:.2f} | {links} |"
        )
    for cat in CATEGORIES:
        mine = [
            (r, row)
            for r, row in zip(results, rows.to_dict("records"), strict=True)
            if r.category == cat
        ]
        if not mine:
            continue
        lines += ["", f"## {CATEGORY_TITLES[cat]}"]
        for r, row in mine:
            lines += [
                "",
                f"### {r.id}",
                "",
                f"**{_md(r.title)}** - {'PASS' if r.passed else '**FAIL**'} ({r.seconds:.2f} s)",
                "",
                f"- what was run: {_md(r.what_is_run)}",
                f"- expected: {_md(r.expected)}",
                f"- observed: `{_md(_observed_text(r))}`",
            ]
            if r.unmet:
                lines.append(f"- not met: {_md('; '.join(r.unmet))}")
            lines.append(f"- evidence: [{row['evidence']}](../{row['evidence']})")
            if row["png"]:
                lines += ["", f"![{r.id}](../{row['png']})"]
    return "\n".join(lines) + "\n"


def _report_links(report: str) -> set[str]:
    import re

    return set(re.findall(r"\]\(\.\./([^)#]+)\)", report))


def edge_cases_check_frame(
    rows: pd.DataFrame, run_dir: Path | str, report_relpath: str = REPORT
) -> pd.DataFrame:
    """``rows`` plus derived flags the suite checks: ``evidence_ok`` (the JSON parses and holds
    id, expected, observed, passed, seconds), ``png_ok`` (no picture, or one that decodes with a
    non-zero size) and ``report_ok`` (the report links the evidence and every link resolves)."""
    run_dir = Path(run_dir)
    report_path = run_dir / report_relpath
    report = report_path.read_text(encoding="utf-8") if report_path.exists() else ""
    links = _report_links(report)
    links_resolve = all((report_path.parent / ".." / link).resolve().exists() for link in links)
    evidence_ok, png_ok, report_ok = [], [], []
    for row in rows.to_dict("records"):
        try:
            data = json.loads((run_dir / row["evidence"]).read_text(encoding="utf-8"))
            evidence_ok.append(
                all(key in data for key in ("id", "expected", "observed", "passed", "seconds"))
            )
        except (OSError, ValueError):
            evidence_ok.append(False)
        png_ok.append(not row["png"] or _png_ok(run_dir / row["png"]))
        report_ok.append(
            bool(
                links_resolve
                and row["evidence"] in links
                and (not row["png"] or row["png"] in links)
            )
        )
    out = rows.copy()
    out["evidence_ok"], out["png_ok"], out["report_ok"] = evidence_ok, png_ok, report_ok
    return out


def write_outputs(
    results: Sequence[ScenarioResult], run_dir: Path | str, cfg: EdgeCasesSection, *, full_run: bool
) -> dict[str, Any]:
    """Evidence files, the results table, the report; validate them; return artifacts and facts."""
    import os

    from tasks.candidates import _fork_map
    from tasks.validation import require_valid

    run_dir = Path(run_dir)
    artifacts: dict[str, ArtifactRef] = {}
    rows = []
    # the pictures take most of this step: drawn by one forked process per core
    workers = max(1, min(2, os.cpu_count() or 1))
    pngs = list(_fork_map(lambda i: _draw(results[i], run_dir), len(results), workers))
    for r, png in zip(results, pngs, strict=True):
        evidence_rel = f"{EDGE_DIR}/{r.id}.json"
        artifacts[f"evidence_{r.id}"] = write_json(
            {
                "id": r.id,
                "category": r.category,
                "title": r.title,
                "what_is_run": r.what_is_run,
                "inputs": {
                    "what_is_run": r.what_is_run,
                    **{k: r.observed[k] for k in INPUT_KEYS.get(r.id, ()) if k in r.observed},
                },
                "expected": r.expected,
                "observed": r.observed,
                "unmet": r.unmet,
                "error": r.error,
                "passed": r.passed,
                "seconds": round(r.seconds, 3),
                "png": png or None,
            },
            run_dir,
            evidence_rel,
        )
        if png:
            artifacts[f"png_{r.id}"] = ArtifactRef.of(run_dir, png)
        rows.append({**r.row(), "evidence": evidence_rel, "png": png})
    table = pd.DataFrame(rows, columns=_RESULT_COLUMNS)
    table["passed"] = table["passed"].astype(bool)
    table["seconds"] = table["seconds"].astype(np.float64)
    overall, per = pass_rates(results)
    facts = {
        "n_scenarios": len(results),
        "n_passed": int(sum(r.passed for r in results)),
        "pass_rate": overall,
        "min_pass_rate": cfg.min_pass_rate,
        "gate_passed": bool(overall >= cfg.min_pass_rate),
        "per_category": per,
        "failed": [r.id for r in results if not r.passed],
        "seconds": round(sum(r.seconds for r in results), 3),
    }
    artifacts["report"] = write_text(render_report(results, table, facts), run_dir, REPORT)
    parameters = {
        "min_scenarios": MIN_SCENARIOS if full_run else max(len(results), 1),
        "categories": list(CATEGORIES) if full_run else sorted({r.category for r in results}),
    }
    facts["validation_parameters"] = parameters  # the inventory re-validates with the same ones
    require_valid(
        edge_cases_check_frame(table, run_dir),
        "edge_cases",
        source=str(run_dir / RESULTS_TABLE),
        parameters=parameters,
    )
    artifacts["results"] = write_table(table, run_dir, RESULTS_TABLE)
    return {"artifacts": artifacts, "facts": facts}


# ---------------------------------------------------------------------------------------------
# Core and stage
# ---------------------------------------------------------------------------------------------
def _warm_up(scenarios: Sequence[Scenario], ctx: EdgeContext) -> None:
    """Load what the scenario children share once, before they fork (arrays, GX, matplotlib)."""
    if any(s.category != "input_data" for s in scenarios):
        _ = ctx.arrays, ctx.basis
    if any(s.category == "input_data" for s in scenarios):
        from tasks.validation import _gx_batch_definition, load_suite

        _gx_batch_definition()
        load_suite("ratings"), load_suite("movies")


def edge_cases_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    cfg: EdgeCasesSection,
    ingest_cfg: IngestSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    eval_cfg: EvalSection,
    seed: int,
    *,
    scenarios: Sequence[Scenario] | None = None,
    stage_budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Pure core of the ``edge_cases`` stage: run the scenarios, write evidence, table and report.

    ``scenarios`` defaults to :func:`default_scenarios` (``cfg.only`` narrows it to those ids);
    tests pass their own list (e.g. one that must fail). ``refs``: the features and collaborative
    stages' artifacts plus ``train``, ``test``, ``cohorts`` and ``movies``. ``stage_budget_seconds``
    (the stage's time budget): scenarios stop at 85% of it minus 15 s, which leaves the rest for
    the evidence and the report, so a hanging scenario fails instead of timing out the stage.
    """
    started = time.monotonic()
    deadline = (
        None
        if stage_budget_seconds is None
        else started + 0.85 * float(stage_budget_seconds) - 15.0
    )
    full_run = scenarios is None and not cfg.only
    chosen = list(default_scenarios() if scenarios is None else scenarios)
    if cfg.only:
        known = {s.id for s in chosen}
        unknown = sorted(set(cfg.only) - known)
        if unknown:
            from tasks.errors import UsageError

            raise UsageError(
                f"edge_cases.only names unknown scenarios {unknown}; known ids: {sorted(known)}."
            )
        chosen = [s for s in chosen if s.id in set(cfg.only)]
    work = tempfile.mkdtemp(prefix="movierec-edge-cases-")
    try:
        ctx = EdgeContext(
            run_dir=str(run_dir),
            refs=dict(refs),
            cfg=cfg,
            ingest_cfg=ingest_cfg,
            candidates_cfg=candidates_cfg,
            policy=policy,
            split_cfg=split_cfg,
            eval_cfg=eval_cfg,
            seed=seed,
            work_dir=work,
        )
        report_progress(0.0, "loading the run's models")
        _warm_up(chosen, ctx)
        results = run_scenarios(
            chosen,
            ctx,
            cfg.scenario_time_limit_seconds,
            progress=lambda f, m: report_progress(0.05 + 0.85 * f, m),
            deadline=deadline,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_progress(0.92, "evidence, table and report")
    out = write_outputs(results, run_dir, cfg, full_run=full_run)
    report_progress(
        1.0, f"{out['facts']['n_passed']} of {out['facts']['n_scenarios']} scenarios passed"
    )
    return out


def refs_from_run_dir(run_dir: Path | str) -> dict[str, ArtifactRef]:
    """The artifact references the core needs, read from a finished run directory."""
    from tasks.collaborative import FILES as COLLAB_FILES
    from tasks.content import FILES as CONTENT_FILES

    run_dir = Path(run_dir)
    files = {
        **CONTENT_FILES,
        **COLLAB_FILES,
        **{n: f"data/{n}.parquet" for n in ("train", "test", "cohorts", "movies")},
    }
    return {
        name: ArtifactRef.of(run_dir, rel)
        for name, rel in files.items()
        if (run_dir / rel).exists()
    }


def rerun_edge_cases(run_dir: Path | str, only: Sequence[str] = ()) -> dict[str, Any]:
    """Re-run the scenarios (all, or ``only`` these ids) on a finished run, with its own profile;
    rewrites ``edge_cases/`` and ``reports/edge_cases.md`` of that run (copy it first to keep it)."""
    from tasks.profile import load_profile

    run_dir = Path(run_dir)
    prof = load_profile(str(run_dir / "profile.toml"), environ={})
    cfg = prof.edge_cases.model_copy(update={"only": tuple(only)}) if only else prof.edge_cases
    return edge_cases_core(
        str(run_dir), refs_from_run_dir(run_dir), cfg, prof.ingest, prof.candidates, prof.policy,
        prof.split, prof.eval, prof.run.seed,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tasks.edge_cases RUN_DIR [--only ID ...]``: re-run scenarios by hand."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tasks.edge_cases", description=main.__doc__)
    parser.add_argument("run_dir", help="a finished run directory (artifacts/<profile>/<run-id>)")
    parser.add_argument("--only", nargs="*", default=[], help="scenario ids (default: all)")
    args = parser.parse_args(argv)
    from tasks.errors import UsageError

    try:
        out = rerun_edge_cases(args.run_dir, args.only)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    facts = out["facts"]
    print(
        f"{facts['n_passed']} of {facts['n_scenarios']} passed ({100 * facts['pass_rate']:.1f}%); failed: {facts['failed']}"
    )
    print(f"report: {Path(args.run_dir) / REPORT}")
    return 0 if facts["gate_passed"] else 1


@stage_task("edge_cases")
def run_edge_cases(
    features: StageOutput,
    collab: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    cfg: EdgeCasesSection,
    ingest_cfg: IngestSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    eval_cfg: EvalSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``edge_cases``: every scenario against the run's models; evidence, table, report.

    Facts: ``pass_rate``, ``min_pass_rate``, ``gate_passed``, ``per_category``, ``failed``,
    ``n_scenarios``, ``n_passed``, ``seconds``. A failing scenario does not fail the stage: it
    lowers the pass rate, which feeds the sign-off gates.
    """
    refs: dict[str, ArtifactRef] = {
        **features.artifacts,
        **collab.artifacts,
        "train": train,
        "test": test,
        "cohorts": cohorts,
        "movies": movies,
    }
    result = run_stage_core(
        "edge_cases",
        budget_seconds,
        edge_cases_core,
        run_dir,
        refs,
        cfg,
        ingest_cfg,
        candidates_cfg,
        policy,
        split_cfg,
        eval_cfg,
        seed,
        stage_budget_seconds=budget_seconds,
    )
    return StageOutput.from_result("edge_cases", result)


if __name__ == "__main__":
    raise SystemExit(main())
