"""Data Docs and the inventory page: a cached re-run still has a page for every validation the
manifest links (stored pages copied, or rendered again from the stored GX results)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tasks.inventory import CACHE_DIR, MANIFEST, inventory_core
from tests.tasks.inventory.runs import tiny_run


def _linked_pages(run_dir: Path) -> tuple[dict, set[str]]:
    manifest = json.loads((run_dir / MANIFEST).read_text())
    pages = {
        page
        for f in manifest["files"]
        if "/data_docs/" not in f["path"]
        for c in f["checks"]
        for page in c.get("docs", [])
    }
    return manifest, pages


def test_a_cached_re_run_has_every_linked_page_and_its_links_resolve(tmp_path):
    run_dir = tiny_run(tmp_path)
    inventory_core(str(run_dir), None)
    first, first_pages = _linked_pages(run_dir)
    assert first["validation_cache"]["reused"] == 0 and first_pages

    second_run = run_dir.with_name("20260102T000000Z-def456")  # an unchanged re-run, same profile
    shutil.copytree(run_dir, second_run, ignore=shutil.ignore_patterns("inventory"))
    inventory_core(str(second_run), None)
    manifest, pages = _linked_pages(second_run)
    docs = second_run / "inventory/data_docs"
    # every check of the run's own files came from the cache, and links the same pages
    own = [f for f in manifest["files"] if "/data_docs/" not in f["path"]]
    assert all(c.get("cached") for f in own for c in f["checks"])
    assert pages == first_pages and all((docs / p).is_file() for p in pages)
    # the index links every page, and no page of the site links a validation page that is missing
    # (the html_facts suite records, without gating, GX's links to expectation-suite pages it
    # never renders and to a favicon one folder too high: those are the only broken links)
    index = (docs / "index.html").read_text()
    rows = set(re.findall(r"'_table_row_link_path': '([^']+)'", index))  # the index's table
    assert pages <= rows and all((docs / row).is_file() for row in rows)
    for html in docs.rglob("*.html"):
        targets = re.findall(r"""href\s*=\s*["']([^"'#?]+)""", html.read_text())
        local = [t for t in targets if "validations/" in t and not re.match(r"^\w+:", t)]
        assert all((html.parent / t).resolve().is_file() for t in local), html
    assert manifest["validation_rate"] == 1.0 and manifest["failed"] == []
    html_files = [f for f in manifest["files"] if f["path"].endswith(".html")]
    for f in html_files:
        broken = [b for b in f["checks"][0]["facts"]["broken_links"].split(", ") if b]
        assert all("expectations/" in b or "favicon" in b for b in broken), f["path"]
    page = (run_dir / "inventory/artifact_inventory.md").read_text()
    assert "reused from the validation cache: 0 of" in page
    page = (second_run / "inventory/artifact_inventory.md").read_text()
    assert re.search(r"reused from the validation cache: (\d+) of", page).group(1) != "0"
    assert "*cached*" in page

    # stored pages gone: the pages are rendered again from the stored GX results
    for stored in (tmp_path / "tiny" / CACHE_DIR / "results").glob("*/*.page.json"):
        stored.unlink()
    third_run = run_dir.with_name("20260103T000000Z-ghi789")
    shutil.copytree(run_dir, third_run, ignore=shutil.ignore_patterns("inventory"))
    inventory_core(str(third_run), None)
    manifest, pages = _linked_pages(third_run)
    assert pages == first_pages
    assert all((third_run / "inventory/data_docs" / p).is_file() for p in pages)
    assert manifest["validation_rate"] == 1.0
