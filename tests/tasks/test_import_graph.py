"""The import graph of ``tasks/`` has no cycle (issue 14: inventory and sign-off used to import each
other). Read from the source text, so imports inside functions count too; a package
(``tasks/ranking/``, ``tasks/cf/`` ...) is one node, so imports between its own modules do not."""

from __future__ import annotations

import graphlib
import re
from pathlib import Path

TASKS = Path(__file__).resolve().parents[2] / "tasks"
_FROM = re.compile(r"^\s*from\s+(tasks(?:\.\w+)*)\s+import\s+(\([^)]*\)|[^#\n]*)", re.MULTILINE)
_IMPORT = re.compile(r"^\s*import\s+(tasks\.\w+(?:\.\w+)*)", re.MULTILINE)


def _node(module: str) -> str:
    """``tasks.x`` for every module of ``tasks/x.py`` or ``tasks/x/...`` (a package is one node)."""
    return ".".join(module.split(".")[:2])


def import_graph(root: Path, package: str = "tasks") -> dict[str, set[str]]:
    """node -> the nodes it imports (``from tasks.x import ...``, ``import tasks.x``, and
    ``from tasks import x``), for every ``.py`` file under ``root``."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        node = _node(module)
        deps = graph.setdefault(node, set())
        text = path.read_text(encoding="utf-8")
        for target, names in _FROM.findall(text):
            if target == package:  # from tasks import evaluation as ev
                listed = names.strip("()").replace("\n", " ").split(",")
                deps |= {f"{package}.{n.split()[0]}" for n in listed if n.strip()}
            else:
                deps.add(_node(target))
        deps |= {_node(target) for target in _IMPORT.findall(text)}
        deps.discard(node)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "tasks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "tasks"


def test_the_checker_finds_a_cycle_and_treats_a_package_as_one_node(tmp_path):
    circle = _write(
        tmp_path / "a",
        {
            "__init__.py": "",
            "inventory.py": "def f():\n    from tasks.signoff import check\n",
            "signoff.py": "from tasks.io import x\nfrom tasks.inventory import (\n    MANIFEST,\n)\n",
            "io.py": "",
        },
    )
    graph = import_graph(circle)
    assert graph["tasks.signoff"] == {"tasks.io", "tasks.inventory"}
    assert set(cycle(graph)) == {"tasks.inventory", "tasks.signoff"}
    fine = _write(
        tmp_path / "b",
        {
            "__init__.py": "",
            "ranking/__init__.py": "from tasks.ranking._engine import rank\n",
            "ranking/_engine.py": "import tasks.ranking._pools\nfrom tasks import (\n    cf,\n)\n",
            "ranking/_pools.py": "",
            "cf/__init__.py": "",
        },
    )
    graph = import_graph(fine)
    assert graph["tasks.ranking"] == {"tasks.cf"} and cycle(graph) is None


def test_tasks_has_no_import_cycle():
    graph = import_graph(TASKS)
    assert {"tasks.inventory", "tasks.signoff", "tasks.manifest", "tasks.decision"} <= set(graph)
    assert "tasks.signoff" not in graph["tasks.inventory"]
    assert "tasks.inventory" not in graph["tasks.signoff"]
    found = cycle(graph)
    assert found is None, f"import cycle in tasks/: {' -> '.join(found)}"
