"""Input-data scenarios: the real ingest on small MovieLens folders (part of
:mod:`tasks.edge_cases`).

Each scenario writes a tiny ``ratings.csv`` / ``movies.csv`` into a temporary folder outside the
run and runs :func:`tasks.ingest.ingest_core` on it: bad rows must stop the ingest with one clear
:class:`~tasks.errors.InputDataError` naming the file, the column, the lines and the fix; odd but
valid titles must be stored exactly as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tasks.columns import Col
from tasks.edge_cases._context import EdgeContext, Observed, Scenario
from tasks.io import read_table

__all__ = ["scenarios"]

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
        # a folder of a few rows: these scenarios are about bad rows, not the minimum of users
        ingest=ctx.ingest_cfg.model_copy(update={"min_users": 0}),
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


_INGEST_RUN = (
    "tasks.ingest.ingest_core on a small MovieLens folder (ratings.csv, movies.csv) in a temporary "
    "directory"
)
_CSV_LINES = ("ratings_csv_lines",)


def scenarios() -> list[Scenario]:
    """The input-data scenarios, in report order."""
    return [
        Scenario(
            "duplicate_ratings", "input_data", "Duplicate ratings",
            f"{_INGEST_RUN}; user 1 rates movie 1 twice (4.0, then 4.5).",
            "Ingest stops with an InputDataError that names ratings.csv, the (user_id, movie_id) pair and "
            "both lines, and says to keep one rating per user and movie.",
            _run_duplicates,
            lambda o: _input_error_unmet(o, ["ratings.csv", "user_id, movie_id", "line 2", "line 8", "Keep one rating"]),
            inputs=_CSV_LINES,
        ),
        Scenario(
            "unknown_movie_ratings", "input_data", "Ratings for unknown movies",
            f"{_INGEST_RUN}; one rating for movieId 99, which movies.csv does not list.",
            "Ingest stops with an InputDataError naming ratings.csv, the movie_id column (file column movieId), "
            "line 8 and the fix (add the movie or drop its ratings).",
            _run_unknown_movies,
            lambda o: _input_error_unmet(o, ["ratings.csv", "movie_id", "movieId", "line 8", "movie_id=99", "Add those movies"]),
            inputs=_CSV_LINES,
        ),
        Scenario(
            "missing_ratings", "input_data", "NaN ratings",
            f"{_INGEST_RUN}; one rating cell is empty, another reads NaN.",
            "Ingest stops with an InputDataError naming ratings.csv, the rating column and lines 8 and 9, and "
            "only that problem (one failed expectation - no failure the user cannot act on).",
            _run_missing_rating,
            lambda o: _input_error_unmet(o, ["ratings.csv", "'rating'", "line 8", "line 9"], only=1),
            inputs=_CSV_LINES,
        ),
        Scenario(
            "out_of_range_ratings", "input_data", "Out-of-range ratings",
            f"{_INGEST_RUN}; ratings 7.0 and -1 on the 0.5-5 half-star scale.",
            "Ingest stops with an InputDataError naming ratings.csv, the rating column, lines 8 and 9, and the "
            "scale [0.5, 5.0].",
            _run_out_of_range,
            lambda o: _input_error_unmet(o, ["ratings.csv", "'rating'", "line 8", "line 9", "[0.5, 5.0]"]),
            inputs=_CSV_LINES,
        ),
        Scenario(
            "non_ascii_long_titles", "input_data", "Non-ASCII and very long titles",
            f"{_INGEST_RUN}; titles in French, Japanese and Russian, a quoted title with a comma, and a "
            f"{len(_ODD_TITLES[5]):,}-character title.",
            "Ingest succeeds; every title is stored exactly as written (byte for byte, not truncated) and its "
            "year is read from the trailing (YYYY).",
            _run_odd_titles,
            _check_odd_titles,
            inputs=("movie_titles", "ratings_csv_lines"),
        ),
    ]  # fmt: skip
