"""Triptych pictures: history | recommendations | held-out truth, one fixed-size PNG (part of
:mod:`tasks.case_studies`; the edge-case stage draws its evidence with it too).

:class:`TriptychPanels` says what is drawn (every string as given); :func:`draw_triptych` draws
it with matplotlib's Agg canvas: fixed figure size, one line per row at fixed positions (lines
never overlap), text cut with an ellipsis measured with the renderer, hits in bold green.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.io import atomic_path

__all__ = [
    "TRIPTYCH_DPI",
    "TRIPTYCH_MAX_LINES",
    "TRIPTYCH_SIZE_INCHES",
    "TriptychPanels",
    "draw_triptych",
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
