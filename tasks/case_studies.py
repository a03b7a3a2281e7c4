"""Case studies: an error taxonomy of every evaluated user, selected cases, triptych pictures.

Place in the pipeline: the ``case_studies`` stage (DESIGN.md step 9, seed 4.2), after
``evaluation`` (it reads ``eval/per_user.parquet``, the tuned policy's lists, and
``tuning/policy.json``) and before ``edge_cases`` (which reuses :func:`draw_triptych`).

**Taxonomy** (:func:`taxonomy_table`), vectorised over every evaluated user on the tuned policy's
top-``k`` list exactly as the evaluation scored it (no per-user Python loop; the only loop is over
the catalogue's genres for the filter rule). The six rules and their thresholds
(:class:`tasks.profile.CaseStudiesSection`):

- **redundancy**: ``ILD@k < redundancy_max_ild`` or ``same_genres_share >
  redundancy_max_same_genres_share``; ILD = 1 - mean pairwise cosine of the content embeddings
  (:func:`tasks.metrics.intra_list_diversity`), ``same_genres_share`` = size of the largest group of
  list items with one identical non-empty genre set / list length. Lists shorter than 2: never.
- **temporal drift**: ``|list_year - recent_year| > temporal_drift_years``, ``list_year`` = mean
  release year of the list, ``recent_year`` = mean release year of the user's
  ``temporal_recent_n`` most recent training ratings (unknown years ignored).
- **popularity bias**: ``popularity_ratio = list_popularity / history_popularity >
  popularity_bias_ratio``; popularity of a movie = its number of training ratings, averaged over
  the list / over the user's training items.
- **genre mismatch**: ``genre_overlap = sum_g min(h_g, r_g) < genre_mismatch_max_overlap``; ``h`` /
  ``r`` = genre distributions of the user's training items / of the list, each item spreading
  weight 1 evenly over its genres (histogram intersection: 0 disjoint, 1 identical).
- **cold-start miss**: cohort ``cold`` and ``n_hits == 0`` (no held-out relevant title in the top k).
- **filter over-constraint**: the evaluated lists are unfiltered, so the rule asks what the real
  filter ladder would do with the case-study filter = the user's most-watched training genre
  (``filter_genre``: the genre on most of their training titles, ties to the first in catalogue
  order) plus ``filter_providers`` when given: ``filter_matches`` = unseen movies with metadata
  that pass it; fewer than ``k`` -> :func:`tasks.candidates.relaxation_steps` gives
  ``relaxation_step >= 1`` (1 = drop providers, 2 = drop the genre too).

A rule whose inputs are missing (no training history, no known years, no genres) does not flag.

**Selection** (:func:`select_cases`): ``n_cases`` users spread round-robin over (outcome, cohort)
slots; outcomes are best hits (highest Recall@k), total misses (no hit, most held-out relevant
titles), most relaxed filters (relaxation step >= 1, fewest matches) and most redundant lists
(lowest ILD). A slot without an eligible user is skipped and the report says so.

**Triptychs**: for each case the list is recomputed with the real candidate path
(:func:`tasks.candidates.recommend_batch`, the tuned alpha of the user's cohort, MMR) to get the
score and its collab/content parts; the count of recomputed lists identical to the evaluated ones
is a fact and is stated in the report (a mismatch does not fail the stage). ``case_studies/
user_<id>.png`` is drawn by :func:`draw_triptych` from ``case_studies/user_<id>.json`` (the lines
drawn and their movie ids). Outputs: ``case_studies/taxonomy.parquet`` (suite
``expectations/case_studies.json``), ``case_studies/selected.parquet`` (``case_selection.json``),
the pictures and ``reports/case_studies.md`` (its links and pictures are checked through a facts
table, ``case_studies_report.json``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import COHORTS, Col
from tasks.io import ArtifactRef, atomic_path, read_table, write_table, write_text
from tasks.profile import CandidatesSection, CaseStudiesSection, SplitSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = [
    "CASE_FILES",
    "CATEGORIES",
    "LIST_COLUMN",
    "OUTCOMES",
    "TAXONOMY_COLUMNS",
    "TRIPTYCH_DPI",
    "TRIPTYCH_MAX_LINES",
    "TRIPTYCH_SIZE_INCHES",
    "Catalogue",
    "ScoreParts",
    "TriptychPanels",
    "case_panels",
    "case_report",
    "case_studies_core",
    "category_shares",
    "draw_triptych",
    "hit_rate_contrast",
    "list_matrix",
    "refs_from_run",
    "report_facts",
    "score_parts",
    "select_cases",
    "study_cases",
    "taxonomy_table",
    "triptych_pixel_size",
]

#: Fixed figure size (width, height) in inches and resolution: every triptych is the same size.
TRIPTYCH_SIZE_INCHES = (19.2, 8.4)
TRIPTYCH_DPI = 100
#: Lines a panel shows; more lines end with "... and N more".
TRIPTYCH_MAX_LINES = 24
_FONT_SIZE = 10.0
_HIT_COLOUR = "#1a7f37"
_HIT_FILL = "#dafbe1"
_TEXT_COLOUR = "#24292f"
_MUTED = "#57606a"
_ELLIPSIS = "\u2026"
_CHECK = "\u2713"
_STAR = "\u2605"
_HOLLOW_STAR = "\u2606"


@dataclass(frozen=True)
class TriptychPanels:
    """What one triptych shows; every string is drawn as given (truncated only to fit).

    A line that starts with ``"# "`` is drawn as a bold sub-heading (without the marker), e.g.
    ``"# recent"`` / ``"# top rated"`` in the history panel. A line may hold one ``"\\n"``: its
    second part is drawn as an indented, muted row under the first (e.g. a recommendation's
    score breakdown). ``note`` is printed in the footer, after the legend.
    """

    title: str
    history: list[str]
    recommendations: list[str]
    held_out: list[str]
    rec_hits: list[bool] = field(default_factory=list)
    held_out_hits: list[bool] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.rec_hits) != len(self.recommendations):
            raise ValueError(
                f"TriptychPanels: rec_hits has {len(self.rec_hits)} flags for "
                f"{len(self.recommendations)} recommendations; give one flag per recommendation."
            )
        if len(self.held_out_hits) != len(self.held_out):
            raise ValueError(
                f"TriptychPanels: held_out_hits has {len(self.held_out_hits)} flags for "
                f"{len(self.held_out)} held-out lines; give one flag per held-out line."
            )


def triptych_pixel_size() -> tuple[int, int]:
    """(width, height) in pixels of every PNG that :func:`draw_triptych` writes."""
    return (
        round(TRIPTYCH_SIZE_INCHES[0] * TRIPTYCH_DPI),
        round(TRIPTYCH_SIZE_INCHES[1] * TRIPTYCH_DPI),
    )


def _drawable(text: str, charmap: dict[int, Any] | None) -> str:
    """Replace characters the font has no glyph for (they would draw as empty boxes) by '?'."""
    text = text.replace("\n", " ").replace("\t", " ")
    if charmap is None:
        return text
    return "".join(c if ord(c) in charmap or c == " " else "?" for c in text)


def _fit(text_artist: Any, text: str, max_width: float, renderer: Any) -> None:
    """Shorten ``text`` (ellipsis at the end) until the artist is at most ``max_width`` pixels wide.

    Binary search over the kept prefix length, measuring with the real renderer, so titles never
    run into the next panel whatever their characters.
    """
    text_artist.set_text(text)
    if text_artist.get_window_extent(renderer).width <= max_width:
        return
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        text_artist.set_text(text[:mid].rstrip() + _ELLIPSIS)
        if text_artist.get_window_extent(renderer).width <= max_width:
            lo = mid
        else:
            hi = mid - 1
    text_artist.set_text(text[:lo].rstrip() + _ELLIPSIS)


def _panel_rows(
    lines: Sequence[str], hits: Sequence[bool] | None
) -> tuple[list[tuple[str, bool, bool, bool]], int]:
    """Expand entries into drawn rows (text, hit, heading, continuation); cut to the panel.

    An entry may hold one line break: its second row is drawn indented under the first (same hit
    styling). Entries that do not fit leave the last row for "... and N more"; returns the rows
    and N.
    """
    flags = list(hits) if hits is not None else [False] * len(lines)
    entries = []
    for line, hit in zip(lines, flags, strict=True):
        heading = line.startswith("# ")
        parts = (line[2:] if heading else line).split("\n")
        entries.append(
            [(part, bool(hit), heading, j > 0) for j, part in enumerate(parts) if j == 0 or part]
        )
    total = sum(len(e) for e in entries)
    if total <= TRIPTYCH_MAX_LINES:
        return [r for e in entries for r in e], 0
    rows: list[tuple[str, bool, bool, bool]] = []
    for used, entry in enumerate(entries):
        if len(rows) + len(entry) > TRIPTYCH_MAX_LINES - 1:
            return rows, len(entries) - used
        rows.extend(entry)
    return rows, 0


def _panel(
    fig: Any,
    rect: tuple[float, float, float, float],
    heading: str,
    lines: Sequence[str],
    hits: Sequence[bool] | None,
    empty_text: str,
    renderer: Any,
    charmap: dict[int, Any] | None,
) -> None:
    ax = fig.add_axes(rect)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#d0d7de")
    ax.set_facecolor("#f6f8fa")
    title = fig.text(
        rect[0] + 0.005,
        rect[1] + rect[3] + 0.012,
        "",
        fontsize=_FONT_SIZE + 3,
        fontweight="bold",
        color=_TEXT_COLOUR,
        parse_math=False,
    )
    _fit(title, _drawable(heading, charmap), ax.get_window_extent(renderer).width, renderer)
    if not lines:
        ax.text(
            0.5,
            0.5,
            empty_text,
            ha="center",
            va="center",
            fontsize=_FONT_SIZE + 1,
            color=_MUTED,
            style="italic",
            parse_math=False,
        )
        return
    rows, overflow = _panel_rows(lines, hits)
    row = 1.0 / TRIPTYCH_MAX_LINES
    axes_px = ax.get_window_extent(renderer)
    max_width = axes_px.width - 0.03 * axes_px.width
    for i, (text, hit, heading_line, continuation) in enumerate(rows):
        y = 1.0 - (i + 0.5) * row
        body = _drawable(text, charmap)
        if continuation:
            body = f"        {body}"
        elif hits is not None and not heading_line:
            body = f"{_CHECK} {body}" if hit else f"   {body}"
        if hit:
            ax.axhspan(y - 0.5 * row, y + 0.5 * row, xmin=0.004, xmax=0.996, color=_HIT_FILL, lw=0)
        artist = ax.text(
            0.015,
            y,
            "",
            ha="left",
            va="center",
            fontsize=_FONT_SIZE - (0.5 if continuation else 0.0),
            fontweight="bold" if ((hit and not continuation) or heading_line) else "normal",
            color=_HIT_COLOUR
            if hit
            else (_MUTED if heading_line or continuation else _TEXT_COLOUR),
            parse_math=False,
            clip_on=True,
        )
        _fit(artist, body, max_width, renderer)
    if overflow:
        ax.text(
            0.015,
            1.0 - (TRIPTYCH_MAX_LINES - 0.5) * row,
            f"{_ELLIPSIS} and {overflow} more",
            ha="left",
            va="center",
            fontsize=_FONT_SIZE,
            color=_MUTED,
            style="italic",
            parse_math=False,
        )


def draw_triptych(panels: TriptychPanels, path: Path | str) -> Path:
    """Draw history | recommendations | held-out side by side and write one PNG atomically.

    The picture is always :func:`triptych_pixel_size` pixels (fixed figure size, no tight bbox).
    Each panel shows at most :data:`TRIPTYCH_MAX_LINES` lines, one per row at fixed positions, so
    lines never overlap; a line too wide for its panel is cut with an ellipsis (measured with the
    renderer). Hits (recommendations in the held-out relevant set, held-out items we recommended)
    are bold green on a green band with a check mark. Text is never parsed as mathtext (titles
    such as "$9.99 (2008)" draw as written); characters the font lacks become "?". Empty panels
    say so ("no held-out ratings", ...).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    try:
        charmap = FT2Font(findfont(FontProperties())).get_charmap()
    except (OSError, RuntimeError, ValueError):  # no font file readable: draw unfiltered
        charmap = None
    fig = Figure(figsize=TRIPTYCH_SIZE_INCHES, dpi=TRIPTYCH_DPI)
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    fig.patch.set_facecolor("white")
    title = fig.text(
        0.01,
        0.965,
        "",
        fontsize=_FONT_SIZE + 5,
        fontweight="bold",
        color=_TEXT_COLOUR,
        va="center",
        parse_math=False,
    )
    _fit(title, _drawable(panels.title, charmap), fig.bbox.width * 0.98, renderer)
    top, bottom, gap, left = 0.88, 0.075, 0.015, 0.01
    width = (1.0 - 2 * left - 2 * gap) / 3
    height = top - bottom
    n_hits = sum(panels.rec_hits)
    specs = [
        ("What they watched (training)", panels.history, None, "no training history"),
        (
            f"What we recommend (top {len(panels.recommendations)})",
            panels.recommendations,
            panels.rec_hits,
            "no recommendations",
        ),
        (
            f"What they watched next (held out; {n_hits} hit{'s' if n_hits != 1 else ''})",
            panels.held_out,
            panels.held_out_hits,
            "no held-out ratings",
        ),
    ]
    for i, (heading, lines, hits, empty) in enumerate(specs):
        rect = (left + i * (width + gap), bottom, width, height)
        _panel(fig, rect, heading, lines, hits, empty, renderer, charmap)
    legend = (
        f"{_CHECK} green = a hit: a recommended title among the user's held-out relevant ratings "
        "(on the right: a held-out relevant title we recommended)."
    )
    for y, text in ((0.042, legend), (0.014, panels.note)):
        if text:
            footer = fig.text(0.01, y, "", fontsize=_FONT_SIZE, color=_MUTED, parse_math=False)
            _fit(footer, _drawable(text, charmap), fig.bbox.width * 0.98, renderer)
    path = Path(path)
    with atomic_path(path) as tmp:
        # the temporary name ends in ".tmp-...", so the format must be named
        fig.savefig(tmp, format="png", dpi=TRIPTYCH_DPI)
    fig.clear()
    return path


# ---------------------------------------------------------------------------------------------
# The error taxonomy
# ---------------------------------------------------------------------------------------------
#: The evaluation's per-user column with the tuned policy's list (movie ids, best first, -1 pad);
#: written by tasks.evaluation._per_user_frame.
LIST_COLUMN = "tuned_policy_movie_ids"

#: Category -> (flag column, one-line rule with the profile fields it uses).
CATEGORIES: dict[str, str] = {
    "redundancy": "ILD@k < redundancy_max_ild, or same_genres_share > redundancy_max_same_genres_share "
    "(lists of at least 2 items)",
    "temporal_drift": "|list_year - recent_year| > temporal_drift_years (mean release years; recent = "
    "the user's temporal_recent_n most recent training ratings)",
    "popularity_bias": "list_popularity / history_popularity > popularity_bias_ratio (popularity = "
    "number of training ratings of a movie, averaged)",
    "genre_mismatch": "sum_g min(h_g, r_g) < genre_mismatch_max_overlap (genre distributions of the "
    "history h and the list r; histogram intersection)",
    "cold_start_miss": "cohort is cold and no held-out relevant title is in the top k",
    "filter_over_constraint": "fewer than k unseen movies match the case-study filter (most-watched "
    "training genre + filter_providers), so the relaxation ladder needs step >= 1",
}

#: Columns of case_studies/taxonomy.parquet, in order.
TAXONOMY_COLUMNS: tuple[str, ...] = (
    Col.USER,
    Col.COHORT,
    "n_train",
    "n_relevant",
    "list_length",
    "n_hits",
    "hit",
    "recall",
    "ild",
    "same_genres_share",
    "recent_year",
    "list_year",
    "year_gap",
    "history_popularity",
    "list_popularity",
    "popularity_ratio",
    "genre_overlap",
    "filter_genre",
    "filter_matches",
    Col.RELAXATION_STEP,
    *CATEGORIES,
    "n_categories",
)


@dataclass(frozen=True)
class Catalogue:
    """The catalogue arrays the taxonomy and the triptychs need (row ``i`` = item_idx ``i``).

    Built from a run's :class:`tasks.candidates.RecommenderArrays` (:meth:`from_arrays`), or
    directly in tests. It has the attributes :func:`tasks.candidates.filter_levels` reads.
    """

    item_ids: np.ndarray  # int (n_items,), sorted movie ids
    titles: np.ndarray  # object (n_items,)
    years: np.ndarray  # float (n_items,), NaN unknown
    embeddings: np.ndarray  # float32 (n_items, d)
    genre_names: list[str]
    genre_matrix: np.ndarray  # bool (n_items, n_genres)
    provider_names: list[str] = field(default_factory=list)
    provider_matrix: np.ndarray | None = None  # bool (n_items, n_providers)
    has_metadata: np.ndarray | None = None  # bool (n_items,); default all True

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        object.__setattr__(self, "item_ids", np.asarray(self.item_ids, dtype=np.int64))
        if n and np.any(np.diff(self.item_ids) <= 0):
            raise ValueError("Catalogue.item_ids must be sorted and unique (item_idx order).")
        object.__setattr__(self, "years", np.asarray(self.years, dtype=np.float64))
        object.__setattr__(self, "genre_matrix", np.asarray(self.genre_matrix, bool).reshape(n, -1))
        if self.provider_matrix is None:
            object.__setattr__(self, "provider_matrix", np.zeros((n, 0), bool))
        if self.has_metadata is None:
            object.__setattr__(self, "has_metadata", np.ones(n, bool))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_arrays(cls, arrays: Any) -> Catalogue:
        """From a :class:`tasks.candidates.RecommenderArrays` (titles / years may be absent)."""
        n = arrays.n_items
        titles = arrays.titles if arrays.titles is not None else np.array([""] * n, dtype=object)
        years = arrays.years if arrays.years is not None else np.full(n, np.nan)
        return cls(
            item_ids=arrays.item_ids,
            titles=titles,
            years=years,
            embeddings=arrays.embeddings,
            genre_names=list(arrays.genre_names),
            genre_matrix=arrays.genre_matrix,
            provider_names=list(arrays.provider_names),
            provider_matrix=arrays.provider_matrix,
            has_metadata=arrays.has_metadata,
        )

    def index_of(self, movie_ids: np.ndarray, what: str) -> np.ndarray:
        """item_idx of movie ids; ``-1`` stays ``-1``; an unknown id raises naming ``what``."""
        ids = np.asarray(movie_ids, dtype=np.int64)
        pos = np.searchsorted(self.item_ids, ids)
        clipped = np.minimum(pos, max(self.n_items - 1, 0))
        known = (pos < self.n_items) & (self.item_ids[clipped] == ids) if self.n_items else ids < 0
        bad = ~known & (ids >= 0)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} movie ids in {what} are not in the catalogue (models/item_index), "
                f"e.g. {ids[bad][:5].tolist()}; the evaluation and the features stage disagree - "
                "re-run them on the same data."
            )
        return np.where(known, pos, -1).astype(np.int64)


def _positions(sorted_users: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``sorted_users``, found) of each value (sort-based, no np.isin)."""
    values = np.asarray(values, dtype=np.int64)
    n = len(sorted_users)
    if n == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    pos = np.searchsorted(sorted_users, values)
    found = (pos < n) & (sorted_users[np.minimum(pos, n - 1)] == values)
    return np.where(found, pos, 0).astype(np.int64), found


def list_matrix(per_user: pd.DataFrame, k: int, column: str = LIST_COLUMN) -> np.ndarray:
    """The per-user list column as an int64 (n_users, k) matrix of movie ids, ``-1`` padded/cut."""
    if column not in per_user:
        raise ValueError(
            f"eval/per_user.parquet has no column '{column}' (columns: {list(per_user.columns)}); "
            "re-run the evaluation stage, which writes the tuned policy's lists there."
        )
    out = np.full((len(per_user), k), -1, dtype=np.int64)
    values = per_user[column].to_numpy()
    if len(values) == 0:
        return out
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    width = int(lengths.max())
    if width and (lengths == width).all():  # the evaluation's fixed-width lists: one stack
        stacked = np.stack(values).astype(np.int64)
    else:  # ragged lists (hand-made tables): pad row by row
        stacked = np.full((len(values), width), -1, dtype=np.int64)
        for row, v in enumerate(values):
            stacked[row, : len(v)] = v
    take = min(k, stacked.shape[1])
    out[:, :take] = stacked[:, :take]
    return out


def _genre_set_codes(genre_matrix: np.ndarray) -> np.ndarray:
    """One int64 code per item for its exact genre set; ``-1`` for an empty set."""
    g = np.asarray(genre_matrix, bool)
    if g.shape[1] == 0:
        return np.full(g.shape[0], -1, np.int64)
    if g.shape[1] <= 62:
        codes = (g.astype(np.int64) << np.arange(g.shape[1], dtype=np.int64)).sum(axis=1)
    else:  # too many genres for a bit code: rank of the row among the distinct rows
        _, codes = np.unique(g, axis=0, return_inverse=True)
        codes = codes.astype(np.int64)
    return np.where(g.any(axis=1), codes, -1)


def _largest_same_set(codes: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """Per row of an (n, k) code matrix: size of the largest group of equal codes >= 0."""
    n = codes.shape[0]
    out = np.zeros(n, np.int64)
    for lo in range(0, n, chunk):  # chunks bound the (rows, k, k) comparison array
        c = codes[lo : lo + chunk]
        eq = (c[:, :, None] == c[:, None, :]) & (c[:, :, None] >= 0)
        out[lo : lo + chunk] = eq.sum(axis=2).max(axis=1, initial=0)
    return out


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN; NaN for a row without a finite value."""
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    total = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def taxonomy_table(
    per_user: pd.DataFrame,
    train: pd.DataFrame,
    test: pd.DataFrame,
    catalogue: Catalogue,
    cfg: CaseStudiesSection,
    *,
    n_train: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The error taxonomy of every user of ``per_user`` (one row each, :data:`TAXONOMY_COLUMNS`).

    ``per_user``: user_id, cohort and :data:`LIST_COLUMN` (movie ids best first, ``-1`` pad), as
    the evaluation writes it. ``train``: user_id, movie_id, rating, timestamp; ``test``: user_id,
    movie_id, relevant. Hits are recomputed here: ``n_hits = |top-k ∩ R_u|``, ``recall = n_hits /
    |R_u|`` (0 when ``R_u`` is empty). The rules are in the module docstring; every step is an
    array operation over all users (sort/searchsorted joins, one sparse product), and the only
    Python loop runs over the catalogue's genres (one filter per genre).
    """
    k = int(cfg.k)
    users = per_user[Col.USER].to_numpy(np.int64)
    n = len(users)
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    if n and np.any(np.diff(sorted_users) == 0):
        raise ValueError("eval/per_user.parquet lists a user twice; re-run the evaluation stage.")
    rank_of_sorted = np.empty(n, np.int64)
    rank_of_sorted[order] = np.arange(n)

    def row_of(user_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, found = _positions(sorted_users, user_values)
        return order[pos] if n else pos, found

    n_items = catalogue.n_items
    recs = catalogue.index_of(list_matrix(per_user, k), "the tuned policy's lists")
    valid = recs >= 0
    safe = np.maximum(recs, 0)
    list_length = valid.sum(axis=1)

    # training rows of the evaluated users (row = position in per_user)
    t_row, t_found = row_of(train[Col.USER].to_numpy())
    t_item_all = catalogue.index_of(train[Col.ITEM].to_numpy(), "data/train.parquet")
    popularity = np.bincount(t_item_all[t_item_all >= 0], minlength=n_items).astype(np.float64)
    keep = t_found & (t_item_all >= 0)
    t_row, t_item = t_row[keep], t_item_all[keep]
    t_time = train[Col.TIMESTAMP].to_numpy(np.int64)[keep] if Col.TIMESTAMP in train else None
    history_n = np.bincount(t_row, minlength=n)
    seen = sp.csr_matrix(
        (np.ones(len(t_row), np.float32), (t_row, t_item)), shape=(n, n_items), dtype=np.float32
    )
    seen.sum_duplicates()
    seen.data[:] = 1.0  # a title rated twice still counts once

    # hits against the held-out relevant items
    rel = test[test[Col.RELEVANT].to_numpy(bool)] if Col.RELEVANT in test else test.iloc[:0]
    r_row, r_found = row_of(rel[Col.USER].to_numpy())
    r_item = catalogue.index_of(rel[Col.ITEM].to_numpy(), "data/test.parquet")
    r_keep = r_found & (r_item >= 0)
    rel_keys = np.sort(r_row[r_keep] * n_items + r_item[r_keep])
    n_relevant = np.bincount(r_row[r_keep], minlength=n)
    rec_keys = np.arange(n)[:, None] * n_items + safe
    if len(rel_keys):
        at = np.minimum(np.searchsorted(rel_keys, rec_keys), len(rel_keys) - 1)
        hit_mask = valid & (rel_keys[at] == rec_keys)
    else:
        hit_mask = np.zeros_like(valid)
    n_hits = hit_mask.sum(axis=1)
    recall = np.where(n_relevant > 0, n_hits / np.maximum(n_relevant, 1), 0.0)

    # redundancy
    from tasks.metrics import intra_list_diversity

    ild = (
        intra_list_diversity(recs, k, np.asarray(catalogue.embeddings, np.float32))
        if n
        else np.zeros(0)
    )
    codes = np.where(valid, _genre_set_codes(catalogue.genre_matrix)[safe], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        same_share = np.where(
            list_length > 0, _largest_same_set(codes) / np.maximum(list_length, 1), np.nan
        )
    long_enough = list_length >= 2
    ild = np.where(long_enough, ild, np.nan)
    redundancy = long_enough & (
        (ild < cfg.redundancy_max_ild) | (same_share > cfg.redundancy_max_same_genres_share)
    )

    # temporal drift: mean year of the list vs of the user's most recent training ratings
    years = catalogue.years
    list_year = _nanmean_rows(np.where(valid, years[safe], np.nan))
    if t_time is not None and len(t_row):
        newest = np.lexsort((t_item, -t_time, t_row))  # per user: newest first (ties: item asc)
        rows_sorted = t_row[newest]
        first = np.searchsorted(rows_sorted, np.arange(n))
        rank = np.arange(len(rows_sorted)) - first[rows_sorted]
        recent = newest[rank < cfg.temporal_recent_n]
    else:
        recent = np.arange(len(t_row))[:0]
    y = years[t_item[recent]]
    y_ok = np.isfinite(y)
    y_count = np.bincount(t_row[recent][y_ok], minlength=n)
    y_sum = np.bincount(t_row[recent][y_ok], weights=y[y_ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        recent_year = np.where(y_count > 0, y_sum / np.maximum(y_count, 1), np.nan)
    year_gap = np.abs(list_year - recent_year)
    temporal_drift = np.nan_to_num(year_gap, nan=-1.0) > cfg.temporal_drift_years

    # popularity bias
    with np.errstate(invalid="ignore", divide="ignore"):
        hist_pop = np.where(
            history_n > 0,
            np.bincount(t_row, weights=popularity[t_item], minlength=n) / np.maximum(history_n, 1),
            np.nan,
        )
        list_pop = np.where(
            list_length > 0,
            np.where(valid, popularity[safe], 0.0).sum(axis=1) / np.maximum(list_length, 1),
            np.nan,
        )
        pop_ratio = np.where(hist_pop > 0, list_pop / hist_pop, np.nan)
    popularity_bias = np.nan_to_num(pop_ratio, nan=-1.0) > cfg.popularity_bias_ratio

    # genre mismatch: histogram intersection of the genre distributions
    genre = catalogue.genre_matrix.astype(np.float64)
    spread = genre / np.maximum(genre.sum(axis=1, keepdims=True), 1.0)
    hist_genres = np.asarray(seen @ spread) if genre.shape[1] else np.zeros((n, 0))
    list_genres = np.where(valid[:, :, None], spread[safe], 0.0).sum(axis=1)
    h_total = hist_genres.sum(axis=1)
    r_total = list_genres.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.minimum(
            hist_genres / np.maximum(h_total, 1e-12)[:, None],
            list_genres / np.maximum(r_total, 1e-12)[:, None],
        ).sum(axis=1)
    overlap = np.where((h_total > 0) & (r_total > 0), overlap, np.nan)
    genre_mismatch = np.nan_to_num(overlap, nan=2.0) < cfg.genre_mismatch_max_overlap

    # cold-start miss
    cohort = per_user[Col.COHORT].astype(str).to_numpy()
    cold_start_miss = (cohort == "cold") & (n_hits == 0)

    # filter over-constraint
    filter_genre, matches, steps = _filter_ladder(seen, catalogue, cfg)
    over_constraint = steps >= 1

    if n_train is not None:
        nt_row, nt_found = row_of(n_train[Col.USER].to_numpy())
        train_counts = np.zeros(n, np.int64)
        train_counts[nt_row[nt_found]] = n_train["n_train"].to_numpy(np.int64)[nt_found]
    else:
        train_counts = np.bincount(t_row, minlength=n)
    flags = {
        "redundancy": redundancy,
        "temporal_drift": temporal_drift,
        "popularity_bias": popularity_bias,
        "genre_mismatch": genre_mismatch,
        "cold_start_miss": cold_start_miss,
        "filter_over_constraint": over_constraint,
    }
    frame = pd.DataFrame(
        {
            Col.USER: users.astype(np.int32),
            Col.COHORT: pd.array(cohort, dtype="string"),
            "n_train": train_counts.astype(np.int32),
            "n_relevant": n_relevant.astype(np.int32),
            "list_length": list_length.astype(np.int32),
            "n_hits": n_hits.astype(np.int32),
            "hit": n_hits > 0,
            "recall": recall.astype(np.float32),
            "ild": ild.astype(np.float32),
            "same_genres_share": same_share.astype(np.float32),
            "recent_year": recent_year.astype(np.float32),
            "list_year": list_year.astype(np.float32),
            "year_gap": year_gap.astype(np.float32),
            "history_popularity": hist_pop.astype(np.float32),
            "list_popularity": list_pop.astype(np.float32),
            "popularity_ratio": pop_ratio.astype(np.float32),
            "genre_overlap": overlap.astype(np.float32),
            "filter_genre": pd.array(filter_genre, dtype="string"),
            "filter_matches": matches.astype(np.int32),
            Col.RELAXATION_STEP: steps.astype(np.int8),
            **{name: np.asarray(flag, bool) for name, flag in flags.items()},
        }
    )
    frame["n_categories"] = frame[list(CATEGORIES)].sum(axis=1).astype(np.int8)
    return frame[list(TAXONOMY_COLUMNS)]


def _filter_ladder(
    seen: sp.csr_matrix, catalogue: Catalogue, cfg: CaseStudiesSection
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: (filter genre name or "", unseen matches at the full filter, relaxation step).

    The filter genre is the genre on most of the user's training titles (argmax of ``seen @
    genre_matrix``; ties to the first genre). For each genre, the users whose filter it is go
    through :func:`tasks.candidates.relaxation_steps` with the real filter levels
    (:func:`tasks.candidates.filter_levels`) and ``min_results = k``. A user without a genre on
    any training title has no filter: "" and step 0 (matches = every unseen movie with metadata).
    """
    from tasks.candidates import filter_levels, relaxation_steps

    n = seen.shape[0]
    names = list(catalogue.genre_names)
    providers = list(cfg.filter_providers)
    steps = np.zeros(n, np.int8)
    counts = (seen @ catalogue.genre_matrix.astype(np.float32)) if names else None
    if counts is not None:
        counts = np.asarray(counts)
        top = np.where(counts.max(axis=1, initial=0) > 0, counts.argmax(axis=1), -1)
    else:
        top = np.full(n, -1)
    genre_of_user = np.full(n, "", dtype=object)
    safe_total = int(np.asarray(catalogue.has_metadata, bool).sum())
    matches = safe_total - np.asarray(
        seen @ np.asarray(catalogue.has_metadata, np.float32)
    ).ravel().astype(np.int64)
    by_genre = np.argsort(top, kind="stable")
    bounds = np.searchsorted(top[by_genre], np.arange(-1, len(names) + 1))
    for g in range(len(names)):  # one fixed filter per genre; each step vectorised over its users
        rows = by_genre[bounds[g + 1] : bounds[g + 2]]
        if len(rows) == 0:
            continue
        genre_of_user[rows] = names[g]
        allowed = filter_levels(catalogue, genres=[names[g]], providers=providers or None)
        sub = seen[rows].tocoo()
        step, unseen = relaxation_steps(
            allowed,
            sub.row.astype(np.int64),
            sub.col.astype(np.int64),
            len(rows),
            int(cfg.k),
            genres_active=True,
            providers_active=bool(providers),
        )
        steps[rows] = step
        matches[rows] = unseen[:, 0]
    if providers and len(bounds) > 1:  # users without a genre: the provider filter alone
        rows = by_genre[bounds[0] : bounds[1]]
        if len(rows):
            allowed = filter_levels(catalogue, genres=None, providers=providers)
            sub = seen[rows].tocoo()
            step, unseen = relaxation_steps(
                allowed,
                sub.row.astype(np.int64),
                sub.col.astype(np.int64),
                len(rows),
                int(cfg.k),
                genres_active=False,
                providers_active=True,
            )
            steps[rows] = step
            matches[rows] = unseen[:, 0]
    return genre_of_user, matches, steps


# ---------------------------------------------------------------------------------------------
# Summaries of the taxonomy
# ---------------------------------------------------------------------------------------------
def _cohort_groups(taxonomy: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """("all", every row) then each cohort present, in COHORTS order (others after, sorted)."""
    cohort = taxonomy[Col.COHORT].astype(str).to_numpy()
    present = set(cohort.tolist())
    names = [c for c in COHORTS if c in present] + sorted(present - set(COHORTS))
    return [("all", np.ones(len(taxonomy), bool))] + [(c, cohort == c) for c in names]


def category_shares(taxonomy: pd.DataFrame) -> pd.DataFrame:
    """Share of users flagged per category and cohort: columns category, cohort, n_users,
    n_flagged, share (``n_flagged / n_users``)."""
    rows = []
    for cohort, mask in _cohort_groups(taxonomy):
        n_users = int(mask.sum())
        for category in CATEGORIES:
            flagged = int(taxonomy[category].to_numpy(bool)[mask].sum())
            rows.append(
                {
                    "category": category,
                    "cohort": cohort,
                    "n_users": n_users,
                    "n_flagged": flagged,
                    "share": flagged / n_users if n_users else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def hit_rate_contrast(taxonomy: pd.DataFrame) -> pd.DataFrame:
    """HitRate@k (share of users with at least one hit) inside vs outside each category, per
    cohort: columns category, cohort, n_in, hit_rate_in, n_out, hit_rate_out, difference
    (in - out; NaN when a side is empty)."""
    hit = taxonomy["hit"].to_numpy(bool)
    rows = []
    for cohort, mask in _cohort_groups(taxonomy):
        for category in CATEGORIES:
            flag = taxonomy[category].to_numpy(bool)
            inside, outside = mask & flag, mask & ~flag
            rate_in = float(hit[inside].mean()) if inside.any() else float("nan")
            rate_out = float(hit[outside].mean()) if outside.any() else float("nan")
            rows.append(
                {
                    "category": category,
                    "cohort": cohort,
                    "n_in": int(inside.sum()),
                    "hit_rate_in": rate_in,
                    "n_out": int(outside.sum()),
                    "hit_rate_out": rate_out,
                    "difference": rate_in - rate_out,
                }
            )
    return pd.DataFrame(rows)


def _categories_of(row: Mapping[str, Any]) -> list[str]:
    return [c for c in CATEGORIES if bool(row[c])]


# ---------------------------------------------------------------------------------------------
# Case selection
# ---------------------------------------------------------------------------------------------
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
    groups = [(c, m) for c, m in _cohort_groups(taxonomy) if c != "all"]
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
                    "categories": ", ".join(_categories_of(row)) or "none",
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


# ---------------------------------------------------------------------------------------------
# Triptych content of one case
# ---------------------------------------------------------------------------------------------
def _movie_label(catalogue: Catalogue, item: int, genres: bool = True) -> str:
    """'Title (year) - Genre|Genre' (the year added only when the title does not carry it)."""
    title = str(catalogue.titles[item]) if catalogue.titles[item] == catalogue.titles[item] else ""
    title = title or f"movie {int(catalogue.item_ids[item])}"
    year = catalogue.years[item]
    if np.isfinite(year) and f"({int(year)})" not in title:
        title = f"{title} ({int(year)})"
    if not genres:
        return title
    names = [catalogue.genre_names[g] for g in np.flatnonzero(catalogue.genre_matrix[item])]
    return f"{title} - {'|'.join(names) if names else 'no genres'}"


@dataclass(frozen=True)
class ScoreParts:
    """The recomputed score of one recommended item and its parts (NaN when unknown)."""

    score: float
    collab: float  # the weighted collaborative part: keep * (1 - alpha) * collab
    content: float  # the weighted content part: keep * alpha * content (keep * content if no CF)
    boosts: float


def score_parts(
    result: Mapping[str, np.ndarray], row: int, alpha: float, cfg: CandidatesSection
) -> dict[int, ScoreParts]:
    """item_idx -> :class:`ScoreParts` for row ``row`` of a :func:`recommend_batch` result.

    ``score = keep * blend + boosts`` with ``keep = 1 - (w_q + w_r + w_p)`` and ``blend = alpha *
    content + (1 - alpha) * collab`` (content only where the collab part is NaN, i.e. the user or
    the item has no factors), as in :func:`tasks.candidates._score_and_rerank`; the parts shown
    are the weighted terms, so ``collab + content + boosts`` = score (up to the [0, 1] clip).
    """
    keep = 1.0 - (cfg.w_q + cfg.w_r + cfg.w_p)
    out: dict[int, ScoreParts] = {}
    for j, item in enumerate(result["item_idx"][row]):  # one user's k_final items
        if item < 0:
            continue
        collab = float(result["collab"][row, j])
        content = float(result["content"][row, j])
        if math.isnan(collab):
            parts = (float("nan"), keep * content)
        else:
            parts = (keep * (1.0 - alpha) * collab, keep * alpha * content)
        out[int(item)] = ScoreParts(
            float(result["score"][row, j]), parts[0], parts[1], float(result["boosts"][row, j])
        )
    return out


def case_panels(
    row: Mapping[str, Any],
    selection: Mapping[str, Any],
    history: pd.DataFrame,
    held_out: pd.DataFrame,
    list_items: np.ndarray,
    parts: Mapping[int, ScoreParts],
    catalogue: Catalogue,
    cfg: CaseStudiesSection,
    *,
    alpha: float | None = None,
) -> tuple[TriptychPanels, dict[str, list[int]]]:
    """The triptych of one case and the movie ids behind each panel's lines.

    ``row`` is the user's taxonomy row, ``selection`` its selection row; ``history`` the user's
    training rows (movie_id, rating, timestamp), ``held_out`` their test rows (movie_id, rating,
    relevant); ``list_items`` the evaluated top-k (item_idx, -1 pad); ``parts`` the recomputed
    scores (:func:`score_parts`). History: the ``triptych_history_n // 2`` most recent ratings,
    then the top-rated others up to ``triptych_history_n`` lines. Held out: hits first, then
    relevant, then the rest (rating desc), at most ``triptych_held_out_n`` lines; a filled star
    marks a relevant held-out rating, a hollow one a rating below the relevance threshold.
    ``alpha`` (the content weight used) is named in the footer note.
    """
    k = int(cfg.k)
    hist = history.assign(item=catalogue.index_of(history[Col.ITEM].to_numpy(), "the history"))
    n_recent = cfg.triptych_history_n // 2
    recent = hist.sort_values([Col.TIMESTAMP, Col.ITEM], ascending=[False, True]).head(n_recent)
    rest = hist[~hist[Col.ITEM].isin(recent[Col.ITEM])]
    top = rest.sort_values([Col.RATING, Col.TIMESTAMP, Col.ITEM], ascending=[False, False, True])
    top = top.head(cfg.triptych_history_n - len(recent))
    lines: list[str] = []
    history_ids: list[int] = []
    for heading, part in (("most recent", recent), ("top rated", top)):
        if len(part):
            lines.append(f"# {heading}")
            history_ids.append(-1)
        for r in part.itertuples(index=False):  # at most triptych_history_n rows of one user
            lines.append(f"\u2605 {r.rating:.1f}  {_movie_label(catalogue, r.item)}")
            history_ids.append(int(getattr(r, Col.ITEM)))
    if len(hist) > len(recent) + len(top):
        lines.append(f"# {len(hist) - len(recent) - len(top)} more training ratings not shown")
        history_ids.append(-1)

    relevant_items = set(
        catalogue.index_of(
            held_out.loc[held_out[Col.RELEVANT].to_numpy(bool), Col.ITEM].to_numpy(),
            "the held-out ratings",
        ).tolist()
    )
    items = [int(i) for i in list_items[:k] if i >= 0]
    rec_lines, rec_hits = [], []
    for rank, item in enumerate(items, start=1):  # the k items of one list
        p = parts.get(item)
        label = _movie_label(catalogue, item)
        if p is None or not math.isfinite(p.score):
            score = "score n/a (not in the recomputed list)"
        elif math.isnan(p.collab):
            score = f"{p.score:.2f} = content {p.content:.2f} + boosts {p.boosts:.2f} (no CF)"
        else:
            score = f"{p.score:.2f} = collab {p.collab:.2f} + content {p.content:.2f} + boosts {p.boosts:.2f}"
        rec_lines.append(f"{rank}. {label}\n{score}")
        rec_hits.append(item in relevant_items)

    held = held_out.assign(
        item=catalogue.index_of(held_out[Col.ITEM].to_numpy(), "the held-out ratings")
    )
    in_list = set(items)
    held = held.assign(
        hit=[
            bool(rel) and int(i) in in_list
            for i, rel in zip(held["item"], held[Col.RELEVANT], strict=True)
        ]
    )
    held = held.sort_values(
        ["hit", Col.RELEVANT, Col.RATING, Col.ITEM], ascending=[False, False, False, True]
    )
    shown = held.head(cfg.triptych_held_out_n)
    held_lines = [
        f"{_STAR if r.relevant else _HOLLOW_STAR} {r.rating:.1f}  {_movie_label(catalogue, r.item)}"
        for r in shown.itertuples(index=False)
    ]
    held_hits = shown["hit"].astype(bool).tolist()
    if len(held) > len(shown):
        held_lines.append(
            f"\u2026 and {len(held) - len(shown)} more held-out ratings (no hits among them)"
        )
        held_hits.append(False)
    cats = ", ".join(c.replace("_", " ") for c in _categories_of(row)) or "none"
    title = (
        f"user {int(row[Col.USER])} - {row[Col.COHORT]} - Recall@{k} {float(row['recall']):.2f} "
        f"({int(row['n_hits'])}/{int(row['n_relevant'])}) - {selection['outcome_label']} - "
        f"categories: {cats}"
    )
    panels = TriptychPanels(
        title=title,
        history=lines,
        recommendations=rec_lines,
        held_out=held_lines,
        rec_hits=rec_hits,
        held_out_hits=held_hits,
        note=(
            "\u2605 rating (held out: relevant), \u2606 held out below the relevance threshold. "
            "Middle: list order after MMR diversification; score = weighted collab part + content "
            "part + boosts" + (f", content weight alpha {alpha:.2f}." if alpha is not None else ".")
        ),
    )
    ids = {
        "history": history_ids,
        "recommendations": [int(catalogue.item_ids[i]) for i in items],
        "held_out": [int(m) for m in shown[Col.ITEM]],
    }
    return panels, ids


# ---------------------------------------------------------------------------------------------
# Report and its facts table
# ---------------------------------------------------------------------------------------------
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
    cohorts = [c for c, _ in _cohort_groups(taxonomy)]
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
        "per cohort, from `tuning/policy.json`): "
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
        "`tasks.candidates.relaxation_steps` returns for it (0 = none needed).",
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
        f"{k} with the score recomputed by the real candidate path "
        "(`tasks.candidates.recommend_batch`, the cohort's tuned alpha, MMR) split into its weighted "
        "collab / content / boost parts, right the held-out ratings (green check = hit).",
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


# ---------------------------------------------------------------------------------------------
# Stage core and shell
# ---------------------------------------------------------------------------------------------
def _panels_document(
    panels: TriptychPanels, ids: Mapping[str, list[int]], row: Mapping[str, Any]
) -> dict[str, Any]:
    return {"user_id": int(row[Col.USER]), "panels": asdict(panels), "movie_ids": dict(ids)}


def _rows_of_users(table: pd.DataFrame, user_ids: np.ndarray) -> dict[int, pd.DataFrame]:
    """Rows of ``table`` per user, for a handful of users (sort-based membership, no np.isin)."""
    wanted = np.sort(np.asarray(user_ids, dtype=np.int64))
    _, found = _positions(wanted, table[Col.USER].to_numpy())
    sub = table[found]
    return {int(u): g for u, g in sub.groupby(Col.USER, sort=True)}


def _validate(df: pd.DataFrame, suite: str, source: str) -> dict[str, Any]:
    from tasks.validation import require_valid

    summary = require_valid(df, suite, source=source)
    return {"suite": suite, "success": summary["success"], "evaluated": summary["evaluated"]}


#: The evaluation's files this stage reads (tasks.evaluation.EVAL_FILES; not imported, so a change
#: in the evaluation's code alone does not invalidate this stage's cache - its outputs' fingerprints do).
_EVAL_INPUTS = {
    "per_user": "eval/per_user.parquet",
    "policy": "tuning/policy.json",
    "eval_manifest": "eval/eval_manifest.json",
}


def refs_from_run(run_dir: Path | str) -> dict[str, ArtifactRef]:
    """The input refs of :func:`case_studies_core` from a finished run directory (tests, re-runs)."""
    from tasks.collaborative import FILES as COLLAB_FILES
    from tasks.content import FILES as CONTENT_FILES

    run_dir = Path(run_dir)
    files = {
        **CONTENT_FILES,
        **COLLAB_FILES,
        **_EVAL_INPUTS,
        **{n: f"data/{n}.parquet" for n in ("train", "test", "cohorts", "movies")},
    }
    return {
        name: ArtifactRef.of(run_dir, rel)
        for name, rel in files.items()
        if (run_dir / rel).exists()
    }


def case_studies_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    cfg: CaseStudiesSection,
    candidates_cfg: CandidatesSection,
    split_cfg: SplitSection,
    seed: int,
) -> dict[str, Any]:
    """Taxonomy of every evaluated user, case selection, triptychs and the report (see module doc).

    ``refs`` holds the features / collaborative artifacts (see
    :meth:`tasks.candidates.RecommenderArrays.from_run`), ``per_user`` and ``policy`` (and
    optionally ``eval_manifest``) of the evaluation, and ``train``, ``test``, ``cohorts``,
    ``movies``. ``seed`` is recorded only: selection is deterministic (ties by user id).
    """
    from tasks.budget import report_progress
    from tasks.candidates import RecommenderArrays, recommend_batch
    from tasks.hybrid import policy_alphas

    started = time.perf_counter()
    run_path = Path(run_dir)
    for name in ("per_user", "policy", "train", "test", "cohorts"):
        if name not in refs:
            raise ValueError(
                f"case studies need the artifact '{name}' (have {sorted(refs)}): pass the evaluation "
                "stage's output and the split's train/test/cohorts refs."
            )
    report_progress(0.02, "loading the evaluation's lists and the models")
    per_user = read_table(refs["per_user"])
    policy = json.loads(refs["policy"].path.read_text(encoding="utf-8"))
    alphas_by_cohort = {str(c): float(a) for c, a in policy.get("alphas", {}).items()}
    manifest = (
        json.loads(refs["eval_manifest"].path.read_text(encoding="utf-8"))
        if "eval_manifest" in refs
        else {}
    )
    eval_ks = manifest.get("settings", {}).get("ks", [])
    arrays = RecommenderArrays.from_run(
        run_path,
        refs=dict(refs),
        relevance_threshold=split_cfg.relevance_threshold,
        m_seed_items=candidates_cfg.m_seed_items,
    )
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
    recall_col = f"tuned_policy_recall@{cfg.k}"
    recall_mismatch = (
        int(
            (
                np.abs(
                    per_user[recall_col].to_numpy(np.float64)
                    - taxonomy["recall"].to_numpy(np.float64)
                )
                > 1e-4
            ).sum()
        )
        if recall_col in per_user
        else None
    )

    selected, notes = select_cases(taxonomy, cfg)
    ids = selected[Col.USER].to_numpy(np.int64)
    report_progress(0.4, f"recomputing {len(ids)} lists for the triptychs")
    stored = list_matrix(
        per_user, max(len(v) for v in per_user[LIST_COLUMN]) if len(per_user) else cfg.k
    )
    width = stored.shape[1]
    k_list = max([candidates_cfg.k_final, cfg.k, *[int(x) for x in eval_ks]])
    pos_in_per_user = {int(u): i for i, u in enumerate(per_user[Col.USER].to_numpy())}
    match = {
        "users": len(ids),
        "identical_top_k": 0,
        "identical_full": 0,
        "width": int(min(width, k_list)),
        "k_list": int(k_list),
        "mismatched_users": [],
    }
    parts_of: dict[int, dict[int, ScoreParts]] = {}
    identical: dict[int, bool] = {}
    alpha_of: dict[int, float] = {}
    if len(ids):
        cohort_of = selected[Col.COHORT].astype(str).to_numpy()
        alphas = policy_alphas(cohort_of, alphas_by_cohort)
        result = recommend_batch(
            arrays, arrays.user_index(ids), alphas, candidates_cfg, k=k_list, mmr=True
        )
        got = np.where(
            result["item_idx"] >= 0, arrays.item_ids[np.maximum(result["item_idx"], 0)], -1
        )
        w = match["width"]
        for j, uid in enumerate(ids):  # the selected cases only (n_cases users)
            row = stored[pos_in_per_user[int(uid)]]
            same_k = bool(np.array_equal(got[j, : cfg.k], row[: cfg.k]))
            identical[int(uid)] = same_k
            match["identical_top_k"] += int(same_k)
            match["identical_full"] += int(np.array_equal(got[j, :w], row[:w]))
            if not same_k:
                match["mismatched_users"].append(int(uid))
            parts_of[int(uid)] = score_parts(result, j, float(alphas[j]), candidates_cfg)
            alpha_of[int(uid)] = float(alphas[j])

    histories = _rows_of_users(train, ids)
    held_outs = _rows_of_users(test, ids)
    empty_train, empty_test = train.iloc[:0], test.iloc[:0]
    by_user = taxonomy.set_index(Col.USER, drop=False)
    pictures: dict[int, str] = {}
    panel_files: dict[int, str] = {}
    redrawn = 0
    for n_done, sel in enumerate(selected.to_dict("records")):  # one picture per selected case
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
            draw_triptych(panels, run_path / png_rel)
            redrawn += 1
        write_text(text, run_path, json_rel)
        pictures[uid], panel_files[uid] = png_rel, json_rel
        artifacts[f"user_{uid}_png"] = ArtifactRef.of(run_path, png_rel)
        artifacts[f"user_{uid}_panels"] = ArtifactRef.of(run_path, json_rel)
        report_progress(
            0.45 + 0.45 * (n_done + 1) / max(len(selected), 1),
            f"triptych {n_done + 1}/{len(selected)}",
        )

    selected = selected.assign(
        picture=pd.array([pictures.get(int(u), "") for u in ids], dtype="string"),
        panels_file=pd.array([panel_files.get(int(u), "") for u in ids], dtype="string"),
        list_identical=np.array([identical.get(int(u), False) for u in ids], dtype=bool),
    )
    validations.append(_validate(selected, "case_selection", CASE_FILES["selected"]))
    artifacts["selected"] = write_table(selected, run_path, CASE_FILES["selected"])

    shares = category_shares(taxonomy)
    contrast = hit_rate_contrast(taxonomy)
    all_shares = shares[shares.cohort == "all"]
    facts: dict[str, Any] = {
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
                "in": None if r.hit_rate_in != r.hit_rate_in else round(float(r.hit_rate_in), 6),
                "out": None
                if r.hit_rate_out != r.hit_rate_out
                else round(float(r.hit_rate_out), 6),
                "n_in": int(r.n_in),
            }
            for r in contrast[contrast.cohort == "all"].itertuples()
        },
        "hit_rate": round(float(taxonomy["hit"].mean()), 6) if len(taxonomy) else None,
        "outcomes": {str(k): int(v) for k, v in selected["outcome"].value_counts().items()},
        "empty_slots": list(notes),
        "triptych_list_match": match,
        "recall_mismatch_users": recall_mismatch,
        "policy_alphas": alphas_by_cohort,
        "pictures_drawn": redrawn,
        "seed": int(seed),
        "seconds": {
            "taxonomy": round(taxonomy_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    report_progress(0.95, "report")
    report = case_report(taxonomy, selected, notes, cfg, facts, pictures)
    artifacts["report"] = write_text(report, run_path, CASE_FILES["report"])
    facts_table = report_facts(run_path / CASE_FILES["report"], run_path, pictures)
    validations.append(_validate(facts_table, "case_studies_report", CASE_FILES["report"]))
    facts["validations"] = validations
    report_progress(1.0, "done")
    return {"artifacts": artifacts, "facts": facts}


@stage_task("case_studies")
def study_cases(
    evaluation: StageOutput,
    features: StageOutput,
    collab: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef | None,
    cfg: CaseStudiesSection,
    candidates_cfg: CandidatesSection,
    split_cfg: SplitSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``case_studies``: taxonomy of every evaluated user, selected cases, triptychs,
    ``reports/case_studies.md`` (see :mod:`tasks.case_studies`).

    ``evaluation`` / ``features`` / ``collab`` are the outputs of those stages (artifacts looked up
    by name: ``per_user``, ``policy``, ``eval_manifest``, the model files); ``train``, ``test``,
    ``cohorts`` come from the split, ``movies`` from ingest. Inputs' fingerprints and the config
    sections are the cache key; the work runs under ``budget_seconds`` in a child process.
    """
    refs: dict[str, ArtifactRef] = {
        **features.artifacts,
        **collab.artifacts,
        **{
            n: evaluation.artifacts[n]
            for n in ("per_user", "policy", "eval_manifest")
            if n in evaluation.artifacts
        },
        "train": train,
        "test": test,
        "cohorts": cohorts,
    }
    if movies is not None:
        refs["movies"] = movies
    result = run_stage_core(
        "case_studies",
        budget_seconds,
        case_studies_core,
        run_dir,
        refs,
        cfg,
        candidates_cfg,
        split_cfg,
        seed,
    )
    return StageOutput.from_result("case_studies", result)
