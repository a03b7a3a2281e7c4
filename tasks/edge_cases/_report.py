"""Evidence files, the results table and ``reports/edge_cases.md`` (part of
:mod:`tasks.edge_cases`).

Per scenario: ``edge_cases/<id>.json`` (inputs summary, expected, observed, passed, seconds) and,
where it produced a list, ``edge_cases/<id>.png`` (a triptych, :func:`tasks.case_studies.
draw_triptych`). The table ``edge_cases/results.parquet`` is validated by
``expectations/edge_cases.json`` through :func:`edge_cases_check_frame`, which also confirms every
evidence file and report link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.edge_cases._context import (
    CATEGORIES,
    CATEGORY_TITLES,
    MIN_SCENARIOS,
    ScenarioResult,
    lean,
)
from tasks.edge_cases._runner import pass_rates
from tasks.io import ArtifactRef, write_json, write_table, write_text
from tasks.profile import EdgeCasesSection

__all__ = [
    "EDGE_DIR",
    "REPORT",
    "RESULTS_TABLE",
    "edge_cases_check_frame",
    "render_report",
    "write_outputs",
]

EDGE_DIR = "edge_cases"
RESULTS_TABLE = f"{EDGE_DIR}/results.parquet"
REPORT = "reports/edge_cases.md"
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
    shown = {k: v for k, v in lean(result.observed).items() if k not in ("movie_ids", "traceback")}
    text = json.dumps(shown, sort_keys=True, default=str, ensure_ascii=False)
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
        "`tasks/edge_cases/<category>.py`), the observed outcome, and an evidence file.",
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

    from tasks.ranking import fork_map
    from tasks.validation import require_valid

    run_dir = Path(run_dir)
    artifacts: dict[str, ArtifactRef] = {}
    rows = []
    # the pictures take most of this step: drawn by one forked process per core
    workers = max(1, min(2, os.cpu_count() or 1))
    pngs = list(fork_map(lambda i: _draw(results[i], run_dir), len(results), workers))
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
                    **{k: r.observed[k] for k in r.inputs if k in r.observed},
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
