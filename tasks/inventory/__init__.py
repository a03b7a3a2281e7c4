"""Artifact inventory (stage ``inventory``): every file of a run, hashed and validated.

Place in the pipeline: the first stage of the ``handoff`` flow (after ``edge_cases``, before the
sign-off). It lists every file of the run with its sha256, kind, producing stage and Great
Expectations checks in ``inventory/artifact_manifest.json`` (format: :mod:`tasks.manifest`,
shared with :mod:`tasks.signoff`), writes ``inventory/artifact_inventory.md`` and the GX Data
Docs, and reuses unchanged checks from the validation cache beside the runs.
``movierec validate RUN_DIR`` (:func:`validate_run_dir`) re-checks a finished run, cache-free.

Modules: ``_facts`` (facts tables per file kind), ``_frames`` (check frames of files with their
own suite), ``_checks`` (which suites a file gets), ``_run`` (running the suites),
``_cache`` (the validation cache), ``_docs`` (Data Docs and the inventory page), ``_validate``
(``movierec validate``), ``_stage`` (the stage core and its Prefect task).
"""

from tasks.inventory._cache import CACHE_DIR, ValidationCache, cache_dir_for
from tasks.inventory._checks import SUITE_CHECKS, SuiteCheck, checks_for
from tasks.inventory._docs import render_inventory_md
from tasks.inventory._facts import (
    FACTS_SUITE,
    REQUIRED_JSON_KEYS,
    array_facts,
    csv_facts,
    file_facts,
    html_facts,
    json_facts,
    markdown_facts,
    png_facts,
    required_json_keys,
    symlink_facts,
    table_facts,
    text_facts,
)
from tasks.inventory._frames import (
    CheckContext,
    cf_index_check_frame,
    cf_model_facts,
    paired_tests_check_frame,
    per_user_check_frame,
    trials_check_frame,
    validation_metrics_check_frame,
)
from tasks.inventory._run import Progress, validate_entries
from tasks.inventory._stage import (
    append_to_manifest,
    artifact_stages,
    build_inventory,
    inventory_core,
    open_validation_cache,
    table_parameters_from,
)
from tasks.inventory._validate import validate_run_dir
from tasks.manifest import (
    DATA_DOCS_DIR,
    EXCLUDED,
    INVENTORY_MD,
    KINDS,
    MANIFEST,
    classify,
    load_manifest,
    manifest_table,
    producing_stage,
    scan_run_dir,
)

__all__ = [
    "CACHE_DIR",
    "DATA_DOCS_DIR",
    "EXCLUDED",
    "FACTS_SUITE",
    "INVENTORY_MD",
    "KINDS",
    "MANIFEST",
    "REQUIRED_JSON_KEYS",
    "SUITE_CHECKS",
    "CheckContext",
    "Progress",
    "SuiteCheck",
    "ValidationCache",
    "append_to_manifest",
    "array_facts",
    "artifact_stages",
    "build_inventory",
    "cache_dir_for",
    "cf_index_check_frame",
    "cf_model_facts",
    "checks_for",
    "classify",
    "csv_facts",
    "file_facts",
    "html_facts",
    "inventory_core",
    "json_facts",
    "load_manifest",
    "manifest_table",
    "markdown_facts",
    "open_validation_cache",
    "paired_tests_check_frame",
    "per_user_check_frame",
    "png_facts",
    "producing_stage",
    "render_inventory_md",
    "required_json_keys",
    "scan_run_dir",
    "symlink_facts",
    "table_facts",
    "table_parameters_from",
    "text_facts",
    "trials_check_frame",
    "validate_entries",
    "validate_run_dir",
    "validation_metrics_check_frame",
]
