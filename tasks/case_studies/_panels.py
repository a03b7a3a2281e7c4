"""What one case's triptych shows: history, the evaluated list with its score parts, held-out
truth (part of :mod:`tasks.case_studies`).

The score parts come from the ranking engine (:func:`tasks.ranking.rank_batch`): per-user
z-scores over the candidate pool (:mod:`tasks.ranking._scores`), weighted as the score adds them::

    score = (1 - W) alpha z_content + (1 - W) (1 - alpha) z_collab + boosts,   W = w_q + w_r + w_p

so ``collab + content + boosts = score``. They are z-scores, not [0, 1] shares: 0 is the pool's
average, negative parts are below it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.case_studies._taxonomy import Catalogue, categories_of
from tasks.case_studies._triptych import TriptychPanels
from tasks.columns import Col
from tasks.profile import CaseStudiesSection

__all__ = ["COLLAB_SOURCES", "ScoreParts", "case_panels", "movie_label", "score_parts"]

_STAR = "\u2605"
_HOLLOW_STAR = "\u2606"
#: What the collab term stands for when the engine had no CF score (tasks.ranking._scores).
COLLAB_SOURCES = {
    "cf": "the CF model's z-score",
    "popularity": "a user without CF evidence: popularity is the collaborative signal",
    "pool minimum": "an item without CF evidence: the lowest collab z of the pool",
}


def movie_label(catalogue: Catalogue, item: int, genres: bool = True) -> str:
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
    """The recomputed score of one recommended item and its weighted parts (z scale).

    ``content = (1 - W) alpha z_content``, ``collab = (1 - W) (1 - alpha) z_collab``, ``boosts =
    w_q z_quality + w_r z_recency + w_p z_provider``; ``score = collab + content + boosts`` (float32
    rounding aside). ``collab_source`` is a key of :data:`COLLAB_SOURCES`.
    """

    score: float
    collab: float
    content: float
    boosts: float
    collab_source: str = "cf"


def score_parts(
    result: Mapping[str, np.ndarray],
    row: int,
    alpha: float,
    boost_total: float,
    user_has_cf: bool = True,
) -> dict[int, ScoreParts]:
    """item_idx -> :class:`ScoreParts` for row ``row`` of a :func:`tasks.ranking.rank_batch` result.

    ``boost_total`` is ``W = w_q + w_r + w_p`` of the policy, ``alpha`` the user's content weight.
    Where the engine reports no collab z (NaN: the user or the item has no CF evidence), the
    collab term is what the score used instead - popularity for a user without CF evidence, the
    pool's lowest collab z for an item without - recovered as ``score - content - boosts``.

    >>> r = {"item_idx": np.array([[7, -1]]), "score": np.array([[0.9, np.nan]]),
    ...      "collab": np.array([[1.0, np.nan]]), "content": np.array([[0.5, np.nan]]),
    ...      "boosts": np.array([[0.1, np.nan]])}
    >>> p = score_parts(r, 0, 0.4, 0.1)[7]
    >>> round(p.collab, 2), round(p.content, 2), round(p.collab + p.content + p.boosts, 2)
    (0.54, 0.18, 0.82)
    """
    keep = 1.0 - float(boost_total)
    out: dict[int, ScoreParts] = {}
    for j, item in enumerate(result["item_idx"][row]):  # one user's k_final items
        if item < 0:
            continue
        score = float(result["score"][row, j])
        boosts = float(result["boosts"][row, j])
        content = keep * alpha * float(result["content"][row, j])
        z_collab = float(result["collab"][row, j])
        if math.isnan(z_collab):
            collab = score - content - boosts
            source = "pool minimum" if user_has_cf else "popularity"
        else:
            collab = keep * (1.0 - alpha) * z_collab
            source = "cf"
        out[int(item)] = ScoreParts(score, collab, content, boosts, source)
    return out


def _score_line(p: ScoreParts | None) -> str:
    if p is None or not math.isfinite(p.score):
        return "score n/a (not in the recomputed list)"
    collab = "collab" if p.collab_source == "cf" else f"collab ({p.collab_source})"
    return (
        f"{p.score:.2f} = {collab} {p.collab:.2f} + content {p.content:.2f} + boosts {p.boosts:.2f}"
    )


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
    lambda_div: float | None = None,
) -> tuple[TriptychPanels, dict[str, list[int]]]:
    """The triptych of one case and the movie ids behind each panel's lines.

    ``row`` is the user's taxonomy row, ``selection`` its selection row; ``history`` the user's
    training rows (movie_id, rating, timestamp), ``held_out`` their test rows (movie_id, rating,
    relevant); ``list_items`` the evaluated top-k (item_idx, -1 pad); ``parts`` the recomputed
    scores (:func:`score_parts`; a listed item without parts reads "score n/a"). History: the ``triptych_history_n // 2`` most recent ratings,
    then the top-rated others up to ``triptych_history_n`` lines. Held out: hits first, then
    relevant, then the rest (rating desc), at most ``triptych_held_out_n`` lines; a filled star
    marks a relevant held-out rating, a hollow one a rating below the relevance threshold.
    ``alpha`` (the content weight used) and ``lambda_div`` (the MMR diversity weight) are named in
    the footer note.
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
            lines.append(f"\u2605 {r.rating:.1f}  {movie_label(catalogue, r.item)}")
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
        label = movie_label(catalogue, item)
        rec_lines.append(f"{rank}. {label}\n{_score_line(parts.get(item))}")
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
        f"{_STAR if r.relevant else _HOLLOW_STAR} {r.rating:.1f}  {movie_label(catalogue, r.item)}"
        for r in shown.itertuples(index=False)
    ]
    held_hits = shown["hit"].astype(bool).tolist()
    if len(held) > len(shown):
        held_lines.append(
            f"\u2026 and {len(held) - len(shown)} more held-out ratings (no hits among them)"
        )
        held_hits.append(False)
    cats = ", ".join(c.replace("_", " ") for c in categories_of(row)) or "none"
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
            "Middle: list order after MMR diversification"
            + (f" (lambda_div {lambda_div:.2f}; 0 = score order)" if lambda_div is not None else "")
            + "; score = weighted collab + content + boosts, z-scores over the user's candidate "
            "pool (0 = pool average)"
            + (f"; content weight alpha {alpha:.2f}." if alpha is not None else ".")
        ),
    )
    ids = {
        "history": history_ids,
        "recommendations": [int(catalogue.item_ids[i]) for i in items],
        "held_out": [int(m) for m in shown[Col.ITEM]],
    }
    return panels, ids
