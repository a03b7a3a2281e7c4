"""The inventory's documents for people: the GX Data Docs site and ``artifact_inventory.md``.

Data Docs (:func:`build_data_docs`): a GX ``SiteBuilder`` site in ``inventory/data_docs/`` with
one page per validation result the stage recorded (:class:`tasks.inventory._run.DocsRecorder`),
built beside the run and swapped in atomically. When a check came from the validation cache, its
GX results were stored with it and are put back into the context's validation results store under
their original ``ValidationResultIdentifier`` before the site is built (GX 1.24:
``context.validation_results_store`` has ``serialize`` / ``deserialize`` / ``get`` / ``set``,
``ValidationResultIdentifier.to_tuple`` / ``from_tuple``; ``context.build_data_docs(site_names=,
resource_identifiers=)`` renders a page for each listed identifier from that store, and the index
lists the pages it built). A restored result therefore gets its page at the path the cached check
names (``validations/<suite>/<run name>/<run time>/<batch>.html``) and the index links it: every
page the manifest links exists, and the ``html_facts`` suite checks that the site's links resolve.
The page GX rendered for a result is stored with it too (``ValidationCache.store_pages``), and a
later run copies it into the new site instead of rendering it again (about 20 ms a page: 1.3 s
of a cached re-run's 3 s on ml-latest-small); a page that is missing or damaged in the cache is
simply rendered again from the restored result.

The inventory page (:func:`render_inventory_md`): summary, the validation cache's share, the
rules, and one row per file with its sha256, validation and Data Docs pages.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tasks.inventory._run import DocsRecorder
from tasks.manifest import DATA_DOCS_DIR, SELF_FILES, WRITTEN_AFTER_STAGES


def build_data_docs(run_dir: Path, recorder: DocsRecorder) -> tuple[str | None, list[str]]:
    """Build GX Data Docs of the recorded validations into ``inventory/data_docs/`` (atomic swap).

    Stored pages of cached results are copied in first; GX renders the others (at least one, so
    the call never falls back to "every result in the store") and the index of all of them.
    Returns (the index page relative to the run, or None when nothing was recorded; the pages GX
    rendered, relative to the site).
    """
    if not recorder.keys:
        return None, []
    final = run_dir / DATA_DOCS_DIR
    tmp = final.with_name(f".data_docs.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    site = f"inventory-{secrets.token_hex(4)}"
    recorder.context.add_data_docs_site(
        site,
        {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                # GX insists on an absolute path (the run dir is relative under `make demo`)
                "base_directory": str(tmp.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    # an empty resource_identifiers list means "every result in the store" to GX: render one
    render = recorder.to_render() or recorder.keys[:1]
    try:
        for page, html in recorder.pages.items():
            path = tmp / page
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(html, encoding="utf-8")
        recorder.context.build_data_docs(site_names=[site], resource_identifiers=render)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return f"{DATA_DOCS_DIR}/index.html", [DocsRecorder.page(k) for k in render]


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _link(relpath: str) -> str:
    """A link from ``inventory/`` to a file of the run (spaces and parentheses escaped)."""
    return quote(f"../{relpath}")


def render_inventory_md(manifest: Mapping[str, Any]) -> str:
    """``inventory/artifact_inventory.md``: summary, rules, one row per file with its Data Docs pages."""
    rate = manifest["validation_rate"]
    docs = manifest.get("data_docs")
    lines = [
        f"# Artifact inventory - run {manifest['run_id']}",
        "",
        f"Profile `{manifest['profile']}`, inventory taken {manifest['created']}. Machine-readable form: "
        f"[artifact_manifest.json](artifact_manifest.json).",
        "",
        f"- files: {manifest['n_files']:,} ({manifest['n_bytes']:,} bytes)",
        f"- validated by Great Expectations: {manifest['n_files']:,} of {manifest['n_files']:,}; "
        f"passed {manifest['n_passed']:,} - validation rate **{100 * rate:.2f}%**",
        f"- failed validations: {len(manifest['failed'])}",
        f"- symbolic links pointing outside the run: {len(manifest['symlinks_outside'])}",
    ]
    cache = manifest.get("validation_cache")
    if cache:
        lines.append(
            f"- suite runs reused from the validation cache: {cache['reused']:,} of {cache['checks']:,} "
            "(same file sha256, suite file, references, parameters and sampling as a stored passing "
            "result; marked *cached* below; `movierec validate RUN_DIR` re-runs every suite)"
        )
    if docs:
        lines.append(
            f"- Great Expectations Data Docs: [data_docs/index.html]({Path(docs).relative_to('inventory').as_posix()})"
        )
    lines += ["", "## Failed validations", ""]
    if manifest["failed"]:
        lines += [f"- `{_md_cell(f['path'])}`: {_md_cell(f['reason'])}" for f in manifest["failed"]]
    else:
        lines.append("None: every file passed its suites.")
    lines += [
        "",
        "## How files are validated",
        "",
        "Every file goes through a derived facts table of its kind (one row per file) validated by a "
        "GX suite in `expectations/`: `table_facts` (parquet parses, every row group decodes), "
        "`csv_facts`, `json_facts` (parses, required keys, no NaN), `markdown_facts` (UTF-8, heading, "
        "links resolve inside the run), `png_facts` (decodes, non-zero size), `array_facts` (loads "
        "without pickle, finite), `text_facts` (TOML parses, the study journal holds one JSON object "
        "per line), `html_facts`, `file_facts`, `symlink_facts` (links resolve inside the run; never "
        "followed). Files with their own suite (canonical tables and split outputs, candidates, test "
        "metrics, paired tests, per-user metrics, tuning results, validation metrics, trials, "
        "embeddings, neighbours, CF model folders, index tables and factors, manifests, "
        "signoff.json) are validated by it too, with derived check frames. "
        f"Tables with more than {manifest['sample_rows']:,} rows are validated on a seeded sample "
        f"(seed {manifest['seed']}); the table below says which.",
        "",
        "Outside this list by rule: "
        + ", ".join(f"`{p}`" for p in sorted(WRITTEN_AFTER_STAGES))
        + " (written by the flow after every stage) and "
        + ", ".join(f"`{p}`" for p in sorted(SELF_FILES))
        + " (they cannot hold their own hash). `movierec validate RUN_DIR` re-checks every listed file.",
        "",
        "## Files",
        "",
        "| path | bytes | sha256 | kind | stage | validation | suites | Data Docs |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for f in manifest["files"]:
        suites = []
        for c in f.get("checks", []):
            label = c["suite"]
            if c.get("sampled_rows"):
                label += f" (sample {c['sampled_rows']:,} of {c['total_rows']:,} rows)"
            if c.get("cached"):
                label += " *cached*"
            suites.append(label)
        doc_links = " ".join(
            f"[{c['suite']} {i + 1}](data_docs/{page})"
            for c in f.get("checks", [])
            for i, page in enumerate(c.get("docs", []))
            if docs
        )
        path_cell = (
            f"`{_md_cell(f['path'])}`"
            if f["kind"] == "symlink"
            else f"[{_md_cell(f['path'])}]({_link(f['path'])})"
        )
        lines.append(
            f"| {path_cell} | {f['bytes']:,} | `{f['sha256'][:12]}` | {f['kind']} | {f['stage']} | "
            f"{_md_cell(f['validation'])} | {_md_cell(', '.join(suites))} | {doc_links} |"
        )
    return "\n".join(lines) + "\n"
