"""What a scenario is and what scenarios share (part of :mod:`tasks.edge_cases`).

A :class:`Scenario` holds its expected outcome as text (written before it runs) and as a machine
check; :class:`EdgeContext` holds the run's files, settings and chosen policy, and its arrays
loaded once (before the scenario children fork, so they share them copy-on-write).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.io import ArtifactRef
from tasks.profile import (
    CandidatesSection,
    EdgeCasesSection,
    EvalSection,
    IngestSection,
    SplitSection,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_TITLES",
    "LIST_K",
    "MIN_SCENARIOS",
    "EdgeContext",
    "Observed",
    "Scenario",
    "ScenarioResult",
    "lean",
]

#: The six scenario categories of the issue, in report order (one module each).
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
#: List length the user-facing scenarios ask for (``movierec recommend`` default).
LIST_K = 10

Observed = dict[str, Any]
#: Observed keys drawn in a triptych (kept out of the results table's ``observed`` column).
_PICTURE_KEYS = frozenset({"history", "recommendations", "held_out", "rec_hits", "held_out_hits"})


def lean(observed: Observed) -> Observed:
    """Observed without the triptych lines (they go to the evidence file and the picture)."""
    return {k: v for k, v in observed.items() if k not in _PICTURE_KEYS}


@dataclass(frozen=True)
class Scenario:
    """One edge case: what runs, what must happen (text + check), and the run itself.

    ``run(ctx) -> observed`` returns a small JSON-able dict; ``check(observed) -> unmet`` lists the
    expectations that were not met (empty = pass). Observed keys ``history``, ``recommendations``,
    ``held_out`` (+ ``rec_hits`` / ``held_out_hits``) are drawn as a triptych when present.
    ``inputs`` names the observed keys that describe the scenario's input (the evidence file's
    ``inputs`` summary).
    """

    id: str
    category: str
    title: str
    what_is_run: str
    expected: str
    run: Callable[[EdgeContext], Observed]
    check: Callable[[Observed], list[str]]
    inputs: tuple[str, ...] = ()

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
    inputs: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "title": self.title,
            "what_is_run": self.what_is_run,
            "expected": self.expected,
            "observed": json.dumps(lean(self.observed), sort_keys=True, default=str),
            "unmet": "; ".join(self.unmet),
            "error": self.error,
            "passed": bool(self.passed),
            "seconds": float(round(self.seconds, 3)),
        }


@dataclass
class EdgeContext:
    """What scenarios share: the run's files and settings, its chosen ranking policy
    (``tuning/policy.json``, a :class:`tasks.ranking.RankingPolicy`), and its arrays loaded once
    (lazily; :meth:`tasks.ranking.RecommenderArrays.from_run`: the policy's CF model).
    """

    run_dir: str
    refs: Mapping[str, ArtifactRef]
    cfg: EdgeCasesSection
    ingest_cfg: IngestSection
    candidates_cfg: CandidatesSection
    split_cfg: SplitSection
    eval_cfg: EvalSection
    seed: int
    work_dir: str  # a temporary folder outside the run directory
    policy: Any  # tasks.ranking.RankingPolicy
    _arrays: Any = field(default=None, repr=False)
    _basis: Any = field(default=None, repr=False)

    @property
    def arrays(self) -> Any:
        if self._arrays is None:
            from tasks.ranking import RecommenderArrays

            self._arrays = RecommenderArrays.from_run(self.run_dir, refs=dict(self.refs))
        return self._arrays

    @property
    def basis(self) -> np.ndarray:
        """The principal basis the arrays' reduced content scores were computed with."""
        if self._basis is None:
            from tasks.edge_cases._serving import basis_of

            self._basis = basis_of(self.arrays)
        return self._basis

    def scratch(self, name: str) -> Path:
        """A fresh folder for one scenario's files (under :attr:`work_dir`, never in the run)."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work_dir))
