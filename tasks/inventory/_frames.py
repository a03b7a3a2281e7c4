"""Check frames: the tables the suites of the inventory see for files that have their own suite.

A check frame is built from one file of the run (``frame(ctx, relpath)``), sometimes with other
files of the run: an index table, a report, the files of a saved model folder. Those other files
are declared next to each frame (``*_reads``: glob patterns relative to the run), so the
validation cache (:mod:`tasks.inventory._cache`) can key a check on every file it reads.
:class:`CheckContext` carries what every check shares: the run, sampling, suite parameters, the
sha256 of the run's files, and reference tables read once.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.decision import signoff_check_frame


@dataclass
class CheckContext:
    """What suite checks need besides the file: parameters, sampling, shared references (cached),
    and the sha256 of the run's files (``sha256s``, from the scan; others are hashed on demand)."""

    run_dir: Path
    sample_rows: int = 2_000_000
    seed: int = 0
    table_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sha256s: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    def table(self, relpath: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a table of the run; column subsets (references, indexes) are kept for reuse, whole
        tables are not (32M ratings would stay in memory for the rest of the stage)."""
        from tasks.io import read_table

        if columns is None:
            return read_table(self.run_dir / relpath)
        key = f"{relpath}|{columns}"
        if key not in self._cache:
            self._cache[key] = read_table(self.run_dir / relpath, columns=columns)
        return self._cache[key]

    def sample(self, df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any] | None]:
        """A seeded row sample when ``df`` has more than ``sample_rows`` rows (order kept)."""
        if len(df) <= self.sample_rows:
            return df, None
        picks = np.sort(
            np.random.default_rng(self.seed).choice(len(df), self.sample_rows, replace=False)
        )
        info = {"sampled_rows": self.sample_rows, "total_rows": len(df), "seed": self.seed}
        return df.iloc[picks].reset_index(drop=True), info

    def sha256(self, relpath: str) -> str:
        """sha256 of a file of the run; of the link text for a symbolic link (never followed, as
        in :func:`tasks.manifest.scan_run_dir`); ``"missing"`` when there is no such file."""
        if relpath not in self.sha256s:
            import hashlib
            import os

            from tasks.io import file_fingerprint

            path = self.run_dir / relpath
            if path.is_symlink():
                text = os.readlink(path).encode("utf-8", "surrogateescape")
                self.sha256s[relpath] = hashlib.sha256(text).hexdigest()
            else:
                self.sha256s[relpath] = file_fingerprint(path) if path.is_file() else "missing"
        return self.sha256s[relpath]

    def sha256_of(self, patterns: Iterable[str]) -> dict[str, str]:
        """relative path -> sha256 of every file or link matching the glob ``patterns`` (relative
        to the run; a pattern that matches nothing is recorded as ``"missing"``)."""
        out: dict[str, str] = {}
        for pattern in patterns:
            matches = sorted(
                p.relative_to(self.run_dir).as_posix()
                for p in self.run_dir.glob(pattern)
                if p.is_symlink() or p.is_file()
            )
            for rel in matches or [pattern]:
                out[rel] = self.sha256(rel)
        return out


def call_spec(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def frame_plain(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return ctx.table(relpath)


def frame_with(spec: str) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        return call_spec(spec)(ctx.table(relpath))

    return build


def frame_with_fn(
    check_frame: Callable[[pd.DataFrame], pd.DataFrame],
) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        return check_frame(ctx.table(relpath))

    return build


def frame_tuning(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.tuning import tuning_check_frame

    return tuning_check_frame(pd.read_csv(ctx.run_dir / relpath))


def frame_embeddings(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.content import embedding_row_table
    from tasks.io import load_array

    return embedding_row_table(load_array(ctx.run_dir / relpath, mmap=True))


def frame_cf_factors(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    """``models/cf/<role>/{user,item}_factors.npy`` through :func:`tasks.collaborative.factor_row_table`;
    which rows must be non-zero comes from the ``known`` column of the folder's index table."""
    from tasks.collaborative import factor_row_table
    from tasks.io import load_array

    (index,) = cf_factors_reads(relpath)
    known = ctx.table(index, ["known"])["known"].to_numpy(bool)
    return factor_row_table(load_array(ctx.run_dir / relpath, mmap=True), known)


def cf_factors_reads(relpath: str) -> tuple[str, ...]:
    """The index table whose ``known`` column :func:`frame_cf_factors` reads."""
    side = Path(relpath).name.split("_", 1)[0]  # "user" or "item"
    return (f"{Path(relpath).parent.as_posix()}/{side}_index.parquet",)


def cf_index_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A CF model's ``user_index.parquet`` / ``item_index.parquet`` as the ``cf_index`` suite sees
    it: ``id``, ``idx``, ``known`` plus ``idx_is_row`` (idx = row number: the arrays' row order)
    and ``id_increasing`` (ids sorted and unique: the shared index of every model of the run).

    >>> t = pd.DataFrame({"movie_id": [3, 5, 5], "item_idx": [0, 1, 3], "known": [True, False, True]})
    >>> cf_index_check_frame(t)[["idx_is_row", "id_increasing"]].to_dict("list")
    {'idx_is_row': [True, True, False], 'id_increasing': [True, True, False]}
    """
    id_col = next((c for c in ("user_id", "movie_id") if c in table.columns), None)
    idx_col = next((c for c in ("user_idx", "item_idx") if c in table.columns), None)
    if id_col is None or idx_col is None or "known" not in table.columns:
        raise ValueError(
            f"a CF index table has (user_id, user_idx, known) or (movie_id, item_idx, known); "
            f"found {list(table.columns)}"
        )
    ids = table[id_col].to_numpy(np.int64)
    idx = table[idx_col].to_numpy(np.int64)
    increasing = np.ones(len(ids), bool)
    increasing[1:] = ids[1:] > ids[:-1]
    return pd.DataFrame(
        {
            "id": ids,
            "idx": idx,
            "known": table["known"].to_numpy(),
            "idx_is_row": idx == np.arange(len(idx)),
            "id_increasing": increasing,
        }
    )


def frame_cf_index(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return cf_index_check_frame(ctx.table(relpath))


def cf_model_facts(folder: Path) -> dict[str, Any]:
    """One saved CF model folder (``models/cf/<role>/``, :func:`tasks.cf.save_cf_model`) as one
    row for the ``cf_model`` suite: ``kind_known``; ``files_present`` (every file ``cf_meta.json``
    lists exists); ``config_valid`` (its config is a valid ``[collab]`` section);
    ``index_sizes_match`` (index rows = ``info.n_users`` / ``info.n_items``, known counts =
    ``info.users_known`` / ``items_known`` where recorded); ``arrays_match`` (factors: one row per
    index row, same width; EASE: square weights over ``ease_items``, item positions inside the
    index; kNN: an items x items matrix)."""
    from tasks.io import load_array, read_table
    from tasks.profile import CollabSection

    meta = json.loads((folder / "cf_meta.json").read_text(encoding="utf-8"))
    kind, info = meta.get("kind"), dict(meta.get("info") or {})
    files = dict(meta.get("files") or {})
    row: dict[str, Any] = {
        "kind": str(kind),
        "kind_known": kind in ("factors", "ease", "knn"),
        "files_present": bool(files) and all((folder / f).is_file() for f in files.values()),
        "config_valid": False,
        "index_sizes_match": False,
        "arrays_match": False,
    }
    try:
        CollabSection.model_validate(meta.get("config") or {})
        row["config_valid"] = True
    except ValueError:
        pass
    if not row["files_present"] or not row["kind_known"]:
        return row
    users = read_table(folder / files["user_index"], columns=["known"])["known"].to_numpy(bool)
    items = read_table(folder / files["item_index"], columns=["known"])["known"].to_numpy(bool)
    expected = {
        "n_users": len(users),
        "n_items": len(items),
        "users_known": int(users.sum()),
        "items_known": int(items.sum()),
    }
    row["index_sizes_match"] = all(
        int(info[key]) == value for key, value in expected.items() if key in info
    )
    n_users, n_items = len(users), len(items)
    if kind == "factors":
        uf = load_array(folder / files["user_factors"], mmap=True)
        itf = load_array(folder / files["item_factors"], mmap=True)
        row["arrays_match"] = (
            uf.ndim == itf.ndim == 2
            and uf.shape[0] == n_users
            and itf.shape[0] == n_items
            and uf.shape[1] == itf.shape[1]
        )
    elif kind == "ease":
        weights = load_array(folder / files["ease_weights"], mmap=True)
        active = load_array(folder / files["ease_items"], mmap=True)
        row["arrays_match"] = bool(
            weights.ndim == 2
            and weights.shape == (len(active), len(active))
            and (len(active) == 0 or (int(active.min()) >= 0 and int(active.max()) < n_items))
        )
    else:
        with np.load(folder / files["knn_similarity"], allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
        row["arrays_match"] = shape == (n_items, n_items)
    return row


def frame_cf_model(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return pd.DataFrame([cf_model_facts((ctx.run_dir / relpath).parent)])


def cf_model_reads(relpath: str) -> tuple[str, ...]:
    """Every file of the model folder (:func:`cf_model_facts` checks them against the meta)."""
    return (f"{Path(relpath).parent.as_posix()}/*",)


def frame_csv(check_frame: Callable[[pd.DataFrame], pd.DataFrame]):
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        return check_frame(pd.read_csv(ctx.run_dir / relpath))

    return build


def validation_metrics_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``tuning/validation_metrics.csv`` plus ``model_unique`` (each model has one row)."""
    return table.assign(model_unique=~table["model"].astype(str).duplicated(keep=False).to_numpy())


def trials_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``tuning/trials.csv`` plus ``key_unique`` (each (study, trial) occurs once) and
    ``value_matches_state`` (a value exactly on the completed trials).

    >>> t = pd.DataFrame({"study": ["a", "a", "a"], "trial": [0, 1, 1],
    ...                   "state": ["complete", "waiting", "complete"], "value": [0.1, None, None]})
    >>> trials_check_frame(t)[["key_unique", "value_matches_state"]].to_dict("list")
    {'key_unique': [True, False, False], 'value_matches_state': [True, True, False]}
    """
    key = table["study"].astype(str) + "|" + table["trial"].astype(str)
    complete = (table["state"].astype(str) == "complete").to_numpy()
    has_value = pd.to_numeric(table["value"], errors="coerce").notna().to_numpy()
    return table.assign(
        key_unique=~key.duplicated(keep=False).to_numpy(), value_matches_state=complete == has_value
    )


#: Per-user metric columns of eval/per_user.parquet: ``<model>_<metric>@<k>``.
_PER_USER_METRIC = re.compile(r"^\w+_(recall|map|ndcg|precision|mrr|hit_rate)@\d+$")


def per_user_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``eval/per_user.parquet`` without its list column, plus ``metrics_in_range`` (every
    ``<model>_<metric>@<k>`` value of the row is finite and in [0, 1]) and ``n_metric_columns``."""
    columns = [c for c in table.columns if _PER_USER_METRIC.match(str(c))]
    keep = [c for c in table.columns if table[c].dtype != object or c in ("cohort",)]
    keep = [c for c in keep if not str(c).endswith("_movie_ids")]
    values = table[columns].to_numpy(np.float64) if columns else np.zeros((len(table), 0))
    in_range = (np.isfinite(values) & (values >= 0.0) & (values <= 1.0)).all(axis=1)
    return table[keep].assign(metrics_in_range=in_range, n_metric_columns=len(columns))


def paired_tests_check_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``eval/paired_tests.parquet`` plus ``interval_ordered`` (ci_low <= ci_high) and
    ``key_unique`` (each (baseline, cohort, metric, k) once)."""
    key = (
        table["baseline"].astype(str)
        + "|"
        + table["cohort"].astype(str)
        + "|"
        + table["metric"].astype(str)
        + "|"
        + table["k"].astype(str)
    )
    ordered = table["ci_low"].astype(float) <= table["ci_high"].astype(float)
    return table.assign(
        interval_ordered=ordered.to_numpy(bool), key_unique=~key.duplicated(keep=False).to_numpy()
    )


def frame_neighbors(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.content import neighbor_table
    from tasks.io import load_array

    index, sims_path = neighbors_reads(relpath)
    ids = ctx.table(index, ["movie_id"])["movie_id"].to_numpy()
    sims = load_array(ctx.run_dir / sims_path, mmap=True)
    return neighbor_table(ids, load_array(ctx.run_dir / relpath, mmap=True), sims)


def neighbors_reads(relpath: str) -> tuple[str, ...]:
    """The item index and the similarities beside ``models/item_neighbors.npy``."""
    return ("models/item_index.parquet", "models/item_neighbor_sims.npy")


def frame_manifest(suite: str) -> Callable[[CheckContext, str], pd.DataFrame]:
    def build(ctx: CheckContext, relpath: str) -> pd.DataFrame:
        from tasks.candidates import manifest_facts

        return manifest_facts(
            json.loads((ctx.run_dir / relpath).read_text(encoding="utf-8")), suite
        )

    return build


def frame_edge_cases(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    from tasks.edge_cases import edge_cases_check_frame

    return edge_cases_check_frame(ctx.table(relpath), ctx.run_dir)


def edge_cases_reads(relpath: str) -> tuple[str, ...]:
    """The report and the evidence (JSON, pictures) :func:`tasks.edge_cases.edge_cases_check_frame`
    reads, and whose links the report must resolve."""
    return ("reports/edge_cases.md", "edge_cases/*")


def frame_signoff(ctx: CheckContext, relpath: str) -> pd.DataFrame:
    return signoff_check_frame(json.loads((ctx.run_dir / relpath).read_text(encoding="utf-8")))
