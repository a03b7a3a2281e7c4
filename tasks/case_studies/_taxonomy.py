"""The error taxonomy: six rules over every evaluated user's list, vectorised (part of
:mod:`tasks.case_studies`).

Every rule runs on the tuned policy's top-``k`` list exactly as the evaluation scored it
(``eval/per_user.parquet``, :data:`LIST_COLUMN`) - no per-user Python loop; the only loop is over
the catalogue's genres for the filter rule. The rules and their thresholds
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
  that pass it; fewer than ``k`` -> :func:`tasks.ranking.relaxation_steps` gives
  ``relaxation_step >= 1`` (1 = drop providers, 2 = drop the genre too).

A rule whose inputs are missing (no training history, no known years, no genres) does not flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import COHORTS, Col
from tasks.profile import CaseStudiesSection

__all__ = [
    "CATEGORIES",
    "LIST_COLUMN",
    "TAXONOMY_COLUMNS",
    "Catalogue",
    "categories_of",
    "category_shares",
    "cohort_groups",
    "hit_rate_contrast",
    "list_matrix",
    "taxonomy_table",
    "user_positions",
]

#: The evaluation's per-user column with the tuned policy's list (movie ids, best first, -1 pad);
#: written by the evaluation stage (tasks.evaluation, per_user_frame).
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

    Built from a run's :class:`tasks.ranking.RecommenderArrays` (:meth:`from_arrays`), or
    directly in tests. It has the attributes :func:`tasks.ranking.filter_levels` reads.
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
        """From a :class:`tasks.ranking.RecommenderArrays` (titles / years may be absent)."""
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


def user_positions(sorted_users: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        pos, found = user_positions(sorted_users, user_values)
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
    through :func:`tasks.ranking.relaxation_steps` with the real filter levels
    (:func:`tasks.ranking.filter_levels`) and ``min_results = k``. A user without a genre on
    any training title has no filter: "" and step 0 (matches = every unseen movie with metadata).
    """
    from tasks.ranking import filter_levels, relaxation_steps

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


# -- summaries of the taxonomy -------------------------------------------------------------
def cohort_groups(taxonomy: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """("all", every row) then each cohort present, in COHORTS order (others after, sorted)."""
    cohort = taxonomy[Col.COHORT].astype(str).to_numpy()
    present = set(cohort.tolist())
    names = [c for c in COHORTS if c in present] + sorted(present - set(COHORTS))
    return [("all", np.ones(len(taxonomy), bool))] + [(c, cohort == c) for c in names]


def category_shares(taxonomy: pd.DataFrame) -> pd.DataFrame:
    """Share of users flagged per category and cohort: columns category, cohort, n_users,
    n_flagged, share (``n_flagged / n_users``)."""
    rows = []
    for cohort, mask in cohort_groups(taxonomy):
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
    for cohort, mask in cohort_groups(taxonomy):
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


def categories_of(row: Mapping[str, Any]) -> list[str]:
    """The categories a taxonomy row is flagged in, in :data:`CATEGORIES` order."""
    return [c for c in CATEGORIES if bool(row[c])]
