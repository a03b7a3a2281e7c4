"""Great Expectations validation: suites from ``expectations/``, run on DataFrames, readable failures.

Place in the pipeline: ingest validates the canonical ratings and movies tables (blocking), split
validates train / test / cohorts, and later stages validate their own tables the same way. Every
artifact kind has one suite, a GX ``ExpectationSuite`` stored as JSON in
``expectations/<name>.json`` (``ExpectationSuite(**json)`` loads it; add a file and
:func:`suite_names` lists it).

How a suite runs (fast enough for 32M rows, see ENVIRONMENT.md):

- Each expectation carries ``meta.scope``:
  ``"schema"`` (column set, dtypes) runs on the first rows of the table *as given*, so dtype checks
  see the real dtypes; ``"rows"`` (ranges, sets, nulls, counts) runs on the whole table with its
  numeric columns cast to 64 bits (GX range checks on int32/float32 fall back to per-row Python and
  are 8x slower); ``"sample"`` (distribution checks such as a mean) runs on a seeded sample of at
  most ``sample_rows`` rows. Row expectations whose column is missing are skipped (the schema
  failure already says the column is missing).
- Parameters: a bound written as ``{"$PARAMETER": "rating_min"}`` is a GX suite parameter. Its
  default lives in the suite's ``meta.parameters``; callers override it through ``parameters=``
  (e.g. the dataset's rating scale: 1..5 whole stars for ml-100k / ml-1m, 0.5..5 half stars for
  ml-latest / ml-10m / synthetic), and GX resolves it at run time (``expectation_parameters``).
- Checks GX cannot do fast on pandas are still GX-validated, through *derived columns* declared in
  the suite's ``meta.derived_columns`` and computed here with numpy before GX sees the table:
  ``duplicate_pair`` (bool: this row's (user, movie) pair occurs more than once; found by a sort,
  because ``Series.duplicated`` takes 13 s on 32M rows), ``in_reference`` (bool: the value occurs in
  a column of a reference table, e.g. every rated movie is in movies), ``pair_in_reference`` (bool:
  the (user, movie) pair occurs in a reference table, e.g. a test pair that leaks from train), and
  ``list_of_str`` (bool: the cell is a list of non-empty strings). A suite then expects the flag to
  be all True / all False. A derived column whose reference table was not given is skipped and
  reported under ``skipped``.
- Messages: ``meta.column_label`` names the column a failure is about (``movie_id`` for the
  ``movie_known`` flag), ``meta.problem`` / ``meta.fix`` are message templates (``{count}``,
  ``{total}``, ``{min_value}``, ``{max_value}``, ``{value_set}``, ``{column}``), and
  ``meta.hint = "milliseconds"`` adds "looks like milliseconds, divide by 1000" when the offending
  timestamps fit the window after dividing by 1000.

:func:`validate_table` returns a JSON-able summary; :func:`require_valid` raises
:class:`tasks.errors.InputDataError` listing each failed expectation with example rows (line numbers
in the source file when ``line_offset`` is given). ``severity`` is not used to decide: every failed
expectation blocks (GX sets ``success`` False for warnings too).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.errors import InputDataError

__all__ = [
    "EXPECTATIONS_DIR",
    "format_failures",
    "load_suite",
    "load_suite_json",
    "require_valid",
    "suite_names",
    "suite_parameters",
    "validate_table",
]

#: Where the suites live (the repository's ``expectations/`` folder).
EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"

_SCOPES = ("schema", "rows", "sample")
_SCHEMA_HEAD_ROWS = 1000
_names = itertools.count()


def suite_names(expectations_dir: Path | None = None) -> list[str]:
    """Names of the suites in ``expectations/`` (file stems), sorted."""
    return sorted(p.stem for p in (expectations_dir or EXPECTATIONS_DIR).glob("*.json"))


def load_suite_json(name: str, expectations_dir: Path | None = None) -> dict[str, Any]:
    """The suite ``expectations/<name>.json`` as a dict (a fresh copy each call)."""
    expectations_dir = expectations_dir or EXPECTATIONS_DIR
    path = expectations_dir / f"{name}.json"
    if not path.exists():
        raise ValueError(
            f"no expectation suite {name!r}: {path} does not exist. Known suites: "
            f"{', '.join(suite_names(expectations_dir)) or '(none)'}."
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    for exp in data.get("expectations", []):
        scope = exp.get("meta", {}).get("scope", "rows")
        if scope not in _SCOPES:
            raise ValueError(
                f"{path}: expectation {exp.get('type')} has meta.scope={scope!r}; use one of {_SCOPES}."
            )
    return data


def load_suite(name: str, expectations_dir: Path | None = None):
    """The suite as a GX ``ExpectationSuite``; fails if GX dropped an expectation it did not know."""
    import great_expectations as gx

    expectations_dir = expectations_dir or EXPECTATIONS_DIR
    data = load_suite_json(name, expectations_dir)
    suite = gx.ExpectationSuite(**data)
    if len(suite.expectations) != len(data.get("expectations", [])):
        raise RuntimeError(
            f"suite {name!r}: GX loaded {len(suite.expectations)} of {len(data['expectations'])} "
            "expectations (an unknown expectation type was dropped). Check the 'type' names in "
            f"{expectations_dir / (name + '.json')}."
        )
    return suite


def suite_parameters(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A suite's parameter values: the defaults in ``meta.parameters`` updated by ``overrides``.

    Overrides the suite does not declare are ignored (one dict can serve several suites).
    """
    declared = load_suite_json(name).get("meta", {}).get("parameters", {})
    values = {key: spec.get("default") for key, spec in declared.items()}
    for key, value in (overrides or {}).items():
        if key in declared:
            values[key] = list(value) if isinstance(value, tuple) else value
    missing = [key for key, value in values.items() if value is None]
    if missing:
        raise ValueError(f"suite {name!r} needs parameter(s) {missing}: pass them in parameters=.")
    return values


@lru_cache(maxsize=1)
def _gx_batch_definition():
    """One ephemeral GX context per process, with a pandas whole-dataframe batch definition."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from tqdm import tqdm

    # GX's tqdm bars would start tqdm's monitor thread: a stage child must stay single-threaded,
    # since it forks workers (tasks.ranking.fork_map) after validating
    tqdm.monitor_interval = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("movierec_tables")
    asset = source.add_dataframe_asset("table")
    return context, asset.add_batch_definition_whole_dataframe("whole_table")


def _run_gx(
    df: pd.DataFrame,
    name: str,
    expectations: list[dict[str, Any]],
    parameters: dict[str, Any],
    max_examples: int,
) -> list[Any]:
    import great_expectations as gx

    context, batch_definition = _gx_batch_definition()
    suite_name = f"{name}-{next(_names)}"
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    if len(suite.expectations) != len(expectations):
        raise RuntimeError(f"suite {name!r}: GX dropped an expectation of an unknown type.")
    suite = context.suites.add(suite)
    try:
        ids = [exp.id for exp in suite.expectations]
        definition = gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)

        def run(result_format: str) -> Any:
            return definition.run(
                batch_parameters={"dataframe": df},
                expectation_parameters=parameters,
                result_format={
                    "result_format": result_format,
                    "partial_unexpected_count": max(max_examples, 1),
                },
            )

        # BASIC (counts, observed values, a few unexpected values) is what a pass needs; the row
        # labels of the examples (SUMMARY) only a failure: GX builds about twice the metrics for
        # SUMMARY (0.27 s against 0.15 s for 8 expectations on 100k rows), and failures are rare.
        result = run("BASIC")
        if not result.success:
            result = run("SUMMARY")
    finally:
        context.suites.delete(suite_name)
    # GX does not keep the suite's order in its results: match them back by expectation id
    by_id = {r.expectation_config.id: r for r in result.results}
    if len(by_id) != len(ids) or set(by_id) != set(ids):
        raise RuntimeError(
            f"suite {name!r}: GX returned {len(by_id)} results for {len(ids)} expectations."
        )
    return [by_id[i] for i in ids]


# ---------------------------------------------------------------------------------------------
# derived columns


def _pair_key(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """(a, b) -> a * 2^32 + (b mod 2^32) as int64: one sortable key per pair of 32-bit ids."""
    a, b = (df[c] for c in columns)
    for col in (a, b):
        if not pd.api.types.is_integer_dtype(col.dtype) or col.hasnans:
            raise TypeError(f"column '{col.name}' has dtype {col.dtype}, not an integer id column")
    a64 = a.to_numpy(dtype=np.int64)
    return (a64 << 32) | (b.to_numpy(dtype=np.int64) & 0xFFFFFFFF)


def _duplicate_flags(key: np.ndarray) -> np.ndarray:
    """True for every row whose key occurs more than once (all copies flagged).

    Sort-based: a no-op check when the keys are already strictly increasing (MovieLens files are
    sorted by user, then movie), else one ``np.sort``; per-row flags only when duplicates exist.
    """
    if key.size < 2:
        return np.zeros(key.size, dtype=bool)
    if np.all(key[1:] > key[:-1]):
        return np.zeros(key.size, dtype=bool)
    ordered = np.sort(key)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return np.zeros(key.size, dtype=bool)
    return _member_flags(key, ordered[1:][same])


def _member_flags(keys: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``keys[i] in reference`` for every i, by sorting (np.isin / np.unique are 100x slower here:
    np.unique took 40-90 s on 23M int64 keys with numpy 2.4 on this machine, np.sort 0.25 s)."""
    if keys.size == 0 or reference.size == 0:
        return np.zeros(keys.size, dtype=bool)
    ref = np.sort(reference)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    pos = np.minimum(np.searchsorted(ref, ordered), ref.size - 1)
    flags = np.empty(keys.size, dtype=bool)
    flags[order] = ref[pos] == ordered
    return flags


def _is_list_of_str(value: Any) -> bool:
    if not isinstance(value, (list, tuple, np.ndarray)):
        return False
    return all(isinstance(v, str) and v != "" for v in value)


def _derive(
    df: pd.DataFrame, spec: dict[str, Any], references: Mapping[str, pd.DataFrame]
) -> np.ndarray | str:
    """Compute one derived column; returns the array, or a reason string when it cannot be derived."""
    kind = spec["kind"]
    missing = [
        c
        for c in spec.get("columns", [spec.get("column")])
        if c is not None and c not in df.columns
    ]
    if missing:
        return f"column(s) {missing} missing"
    ref_name = spec.get("reference")
    if ref_name is not None and ref_name not in references:
        return f"no reference table {ref_name!r} given"
    try:
        if kind == "duplicate_pair":
            return _duplicate_flags(_pair_key(df, spec["columns"]))
        if kind == "in_reference":
            ref = references[ref_name][spec.get("reference_column", spec["column"])]
            return df[spec["column"]].isin(ref.to_numpy()).to_numpy(dtype=bool)
        if kind == "pair_in_reference":
            ref_df = references[ref_name]
            ref_key = _pair_key(ref_df, spec.get("reference_columns", spec["columns"]))
            return _member_flags(_pair_key(df, spec["columns"]), ref_key)
        if kind == "list_of_str":
            return np.fromiter(
                (_is_list_of_str(v) for v in df[spec["column"]]), dtype=bool, count=len(df)
            )
    except (TypeError, ValueError, KeyError) as exc:
        return f"cannot derive: {exc}"
    raise ValueError(
        f"unknown derived column kind {kind!r} (known: duplicate_pair, in_reference, "
        "pair_in_reference, list_of_str)"
    )


def _as_64bit(col: pd.Series) -> pd.Series:
    """Numeric columns widened to int64/float64 (GX checks are 8x slower on 32-bit dtypes)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iu" and dtype != np.int64:
            return col.astype(np.int64)
        if dtype.kind == "f" and dtype != np.float64:
            return col.astype(np.float64)
        return col
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        # nullable Int32 / Float32 and friends: float64 with NaN for NA (GX ignores nulls in ranges)
        return pd.Series(
            col.to_numpy(dtype=np.float64, na_value=np.nan), index=col.index, name=col.name
        )
    return col


def _referenced_column(exp: dict[str, Any]) -> str | None:
    return exp.get("kwargs", {}).get("column")


# ---------------------------------------------------------------------------------------------
# messages


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters.get(value["$PARAMETER"])
    return value


def _short(value: Any, limit: int = 12) -> str:
    if isinstance(value, (list, tuple)):
        items = [_short(v) for v in value[:limit]]
        more = f", ... ({len(value)} values)" if len(value) > limit else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def _py(value: Any) -> Any:
    """numpy scalars and arrays -> plain Python (the summary is JSON-able)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_py(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _py(v) for k, v in value.items()}
    return value


def _row_text(df: pd.DataFrame, label: Any, line_offset: int | None, columns: list[str]) -> str:
    pos = df.index.get_loc(label)
    if not isinstance(pos, (int, np.integer)):  # a repeated index label: take its first row
        pos = int(np.flatnonzero(np.atleast_1d(df.index == label))[0])
    where = f"line {pos + line_offset}" if line_offset is not None else f"row {pos}"
    cells = ", ".join(f"{c}={_short(_py(df[c].iloc[pos]), 5)}" for c in columns)
    return f"{where}: {cells}"


_DEFAULT_PROBLEM = {
    "expect_column_values_to_be_between": "{count:,} of {total:,} rows outside [{min_value}, {max_value}]",
    "expect_column_values_to_be_in_set": "{count:,} of {total:,} rows with a value not in {value_set}",
    "expect_column_values_to_not_be_null": "{count:,} of {total:,} rows are empty (null)",
    "expect_column_values_to_be_unique": "{count:,} of {total:,} rows repeat a value",
    "expect_column_value_lengths_to_be_between": "{count:,} of {total:,} rows have a length outside "
    "[{min_value}, {max_value}]",
    "expect_table_row_count_to_be_between": "the table has {observed} rows, expected at least {min_value}",
    "expect_column_type_to_be": "has dtype {observed}, expected {type_}",
    "expect_column_mean_to_be_between": "mean {observed} is outside [{min_value}, {max_value}]",
}
_DEFAULT_FIX = "Correct the offending values in the source file and run again."


def _failure(
    exp: dict[str, Any],
    result: Any,
    df: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    scope: str,
    n_rows: int,
    sample_rows: int,
    line_offset: int | None,
    max_examples: int,
    column_aliases: Mapping[str, str],
) -> dict[str, Any]:
    """One failed expectation as a JSON-able dict with a readable ``message``."""
    kind = exp["type"]
    meta = exp.get("meta", {})
    kwargs = {k: _resolve(v, parameters) for k, v in exp.get("kwargs", {}).items()}
    res = dict(result.result or {})
    column = meta.get("column_label") or kwargs.get("column")
    observed = _py(res.get("observed_value"))
    count = int(res.get("unexpected_count") or 0)
    total = int(res.get("element_count") or n_rows)
    fields = {
        "count": count,
        "total": total,
        "observed": _short(observed) if not isinstance(observed, float) else f"{observed:.4g}",
        "min_value": _short(kwargs.get("min_value")),
        "max_value": _short(kwargs.get("max_value")),
        "value_set": _short(kwargs.get("value_set")),
        "type_": kwargs.get("type_"),
        "column": column,
    }
    exception = result.exception_info or {}
    raised = exception.get("raised_exception") if isinstance(exception, dict) else False
    if kind == "expect_table_columns_to_match_set":
        mismatched = (res.get("details") or {}).get("mismatched") or {}
        missing = sorted(mismatched.get("missing") or [])
        found = ", ".join(str(c) for c in (observed or []))
        problem = (
            f"missing column(s) {', '.join(repr(c) for c in missing)} (the table has: {found})"
            if missing
            else f"unexpected column(s) {sorted(mismatched.get('unexpected') or [])}"
        )
        column = ", ".join(missing) or column
    elif raised:
        problem = f"could not be evaluated ({exception.get('exception_message')})"
    else:
        template = meta.get("problem") or _DEFAULT_PROBLEM.get(
            kind, f"{kind} failed (observed {{observed}})"
        )
        problem = template.format(**fields)
    if scope == "sample" and n_rows > sample_rows:
        problem += f" (on a seeded sample of {sample_rows:,} rows)"

    labels = list(res.get("partial_unexpected_index_list") or [])[:max_examples]
    shown = [c for c in df.columns if c in meta.get("example_columns", df.columns)]
    examples = [_row_text(df, label, line_offset, shown) for label in labels if label in df.index]
    hints = []
    if meta.get("hint") == "milliseconds":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        values = [
            v for v in _py(res.get("partial_unexpected_list") or []) if isinstance(v, (int, float))
        ]
        if (
            values
            and hi is not None
            and all(v > hi for v in values)
            and all(lo <= v / 1000 <= hi for v in values)
        ):
            hints.append("looks like milliseconds, divide by 1000")
    fix = meta.get("fix", _DEFAULT_FIX).format(**fields)
    label = f"column '{column}'" if column else "table"
    if column and column in column_aliases and column_aliases[column] != column:
        label += f" (file column '{column_aliases[column]}')"
    message = f"{label}: {problem}"
    if examples:
        message += ", e.g. " + "; ".join(examples)
    if hints:
        message += "; " + "; ".join(hints)
    message += f". Fix: {fix} [{kind}]"
    return {
        "expectation": kind,
        "column": column,
        "scope": scope,
        "unexpected_count": count,
        "element_count": total,
        "observed": observed if not isinstance(observed, list) or len(observed) <= 50 else None,
        "examples": examples,
        "message": message,
    }


# ---------------------------------------------------------------------------------------------
# running a suite


def validate_table(
    df: pd.DataFrame,
    suite_name: str,
    *,
    source: str,
    parameters: Mapping[str, Any] | None = None,
    references: Mapping[str, pd.DataFrame] | None = None,
    sample_rows: int = 2_000_000,
    seed: int = 0,
    line_offset: int | None = None,
    column_aliases: Mapping[str, str] | None = None,
    max_examples: int = 3,
) -> dict[str, Any]:
    """Run suite ``suite_name`` on ``df``; return a JSON-able summary (never raises on failures).

    ``source`` names the data in messages (a file path). ``parameters`` override the suite's
    parameter defaults; ``references`` are other tables the derived columns need (``{"movies":
    movies}`` for "every rated movie is in movies"); ``line_offset`` turns a row position into a
    line number of the source file (2 for a CSV with a header); ``column_aliases`` maps canonical
    column names to the file's names for messages. Summary keys: ``suite``, ``source``,
    ``success``, ``rows``, ``evaluated``, ``failed`` (expectation, column, unexpected_count,
    examples, message), ``skipped`` (expectations not run, with the reason), ``parameters``,
    ``seconds`` and ``timings`` (seconds per phase: derive, prepare, gx_schema, gx_rows, gx_sample).
    """
    start = time.perf_counter()
    suite = load_suite_json(suite_name)
    load_suite(suite_name)  # fail loudly when GX would drop an expectation
    params = suite_parameters(suite_name, parameters)
    references = references or {}
    column_aliases = column_aliases or {}
    n_rows = len(df)

    by_scope: dict[str, list[dict[str, Any]]] = {s: [] for s in _SCOPES}
    for exp in suite.get("expectations", []):
        by_scope[exp.get("meta", {}).get("scope", "rows")].append(exp)

    timings: dict[str, float] = {}
    mark = time.perf_counter()
    skipped: list[dict[str, Any]] = []
    derived: dict[str, np.ndarray] = {}
    for name, spec in suite.get("meta", {}).get("derived_columns", {}).items():
        value = _derive(df, spec, references)
        if isinstance(value, str):
            skipped.append({"column": name, "reason": value})
        else:
            derived[name] = value

    timings["derive"] = round(time.perf_counter() - mark, 3)

    def runnable(exps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keep = []
        for exp in exps:
            col = _referenced_column(exp)
            if col is None or col in df.columns or col in derived:
                keep.append(exp)
            elif not any(s["column"] == col for s in skipped):
                skipped.append(
                    {"column": col, "reason": f"column '{col}' missing", "expectation": exp["type"]}
                )
        return keep

    # rows frame: the referenced columns widened to 64 bits, plus the derived flags
    mark = time.perf_counter()
    row_exps, sample_exps = runnable(by_scope["rows"]), runnable(by_scope["sample"])
    if n_rows == 0 and sample_exps:  # a statistic of no rows is undefined; the row count fails
        skipped += [
            {"column": _referenced_column(e), "reason": "empty table", "expectation": e["type"]}
            for e in sample_exps
        ]
        sample_exps = []
    needed = {c for c in map(_referenced_column, row_exps + sample_exps) if c in df.columns}
    # (every referenced numeric column: even not-null checks take 5x longer on int32 at 32M rows)
    columns = {c: _as_64bit(df[c]) for c in df.columns if c in needed}
    columns.update({name: pd.Series(flags, index=df.index) for name, flags in derived.items()})
    rows = (
        pd.DataFrame(columns, index=df.index, copy=False)
        if columns
        else pd.DataFrame(index=df.index)
    )
    if rows.shape[1] == 0:  # a table-level suite still needs a frame with the table's length
        rows["_row"] = np.zeros(n_rows, dtype=np.int8)

    frames = {"schema": df.head(_SCHEMA_HEAD_ROWS), "rows": rows}
    if sample_exps:
        if n_rows > sample_rows:
            picks = np.sort(
                np.random.default_rng(seed).choice(n_rows, size=sample_rows, replace=False)
            )
            frames["sample"] = rows.iloc[picks]
        else:
            frames["sample"] = rows
    plan = {"schema": by_scope["schema"], "rows": row_exps, "sample": sample_exps}
    timings["prepare"] = round(time.perf_counter() - mark, 3)

    failed: list[dict[str, Any]] = []
    evaluated = 0
    for scope in _SCOPES:
        exps = plan[scope]
        if not exps:
            continue
        mark = time.perf_counter()
        results = _run_gx(frames[scope], suite_name, exps, params, max_examples)
        timings[f"gx_{scope}"] = round(time.perf_counter() - mark, 3)
        evaluated += len(results)
        for exp, result in zip(exps, results, strict=True):
            if not result.success:
                failed.append(
                    _failure(
                        exp,
                        result,
                        df,
                        params,
                        scope=scope,
                        n_rows=n_rows,
                        sample_rows=sample_rows,
                        line_offset=line_offset,
                        max_examples=max_examples,
                        column_aliases=column_aliases,
                    )
                )
    return {
        "suite": suite_name,
        "source": source,
        "success": not failed,
        "rows": n_rows,
        "evaluated": evaluated,
        "failed": failed,
        "skipped": skipped,
        "parameters": _py(params),
        "seconds": round(time.perf_counter() - start, 3),
        "timings": timings,
    }


def format_failures(summary: Mapping[str, Any]) -> str:
    """The failures of a summary as one message: the source, then one line per failed expectation."""
    failed = summary.get("failed", [])
    head = (
        f"{summary['source']}: {len(failed)} of {summary['evaluated']} expectations of suite "
        f"'{summary['suite']}' failed:"
    )
    return "\n".join([head, *(f"  - {summary['source']}: {f['message']}" for f in failed)])


def require_valid(
    df: pd.DataFrame, suite_name: str, *, source: str, **options: Any
) -> dict[str, Any]:
    """Like :func:`validate_table`, but raise :class:`InputDataError` when any expectation fails."""
    summary = validate_table(df, suite_name, source=source, **options)
    if not summary["success"]:
        raise InputDataError(format_failures(summary))
    return summary
