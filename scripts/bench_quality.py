"""Quality benchmark (``make bench-quality``): the whole pipeline on real MovieLens data, then the
models' validation and test figures side by side, the chosen configuration and the search's time.

Runs ``movierec run --profile PROFILE`` (default ml-latest-small) into an artifacts folder, then
reads the run's own files: ``tuning/validation_metrics.csv`` (validation, where every choice was
made), ``eval/metrics.parquet`` (test, scored once, 95% bootstrap intervals),
``eval/paired_tests.parquet`` (tuned policy - best baseline), ``tuning/policy.json`` (the chosen
configuration) and ``logs/stages.json`` (the tuning stage's wall time). Every number printed comes
from those files.

    python scripts/bench_quality.py                                   # ml-latest-small
    python scripts/bench_quality.py --data-dir PATH --profile ml-latest-small --set tuning.n_trials=10
    python scripts/bench_quality.py --run artifacts/ml-latest-small/<run-id>   # only print a run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
MODELS = ("tuned_policy", "ease", "item_knn", "als", "popularity", "content", "seed_policy")


def _latest(artifacts: Path, profile: str) -> Path:
    latest = artifacts / profile / "LATEST"
    if not latest.exists():
        raise SystemExit(f"no complete run under {artifacts / profile} (LATEST missing)")
    return artifacts / profile / latest.read_text().strip()


def report(run: Path) -> str:
    """The benchmark's printout for a finished run directory."""
    val = pd.read_csv(run / "tuning/validation_metrics.csv").set_index("model")
    metrics = pd.read_parquet(run / "eval/metrics.parquet")
    test = metrics.loc[
        (metrics.cohort == "all")
        & (metrics.k == 10)
        & metrics.metric.isin(["recall", "map", "ndcg"])
    ]
    policy = json.loads((run / "tuning/policy.json").read_text())
    stages = json.loads((run / "logs/stages.json").read_text())["stages"]
    seconds = {s["stage"]: s["wall_seconds"] for s in stages}
    lines = [
        f"run: {run}",
        "",
        "| model | val Recall@10 | val MAP@10 | val NDCG@10 | test Recall@10 [95% CI] | test MAP@10 | test NDCG@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    order = sorted((m for m in MODELS if m in set(test.model)),
                   key=lambda m: (m != "tuned_policy", -float(test.loc[(test.model == m) & (test.metric == "recall"), "value"].iloc[0])))  # fmt: skip
    for m in order:
        t = test.loc[test.model == m].set_index("metric")
        v = val.loc[m] if m in val.index else None
        vals = " | ".join(
            f"{v[f'{x}@10']:.4f}" if v is not None else "-" for x in ("recall", "map", "ndcg")
        )
        r = t.loc["recall"]
        lines.append(
            f"| {m} | {vals} | {r.value:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}] | {t.loc['map'].value:.4f} | {t.loc['ndcg'].value:.4f} |"
        )
    paired = pd.read_parquet(run / "eval/paired_tests.parquet")
    gates = json.loads((run / "eval/gates.json").read_text())
    best = gates.get("best_baseline")
    row = paired.loc[
        (paired.baseline == best)
        & (paired.cohort == "all")
        & (paired.metric == "recall")
        & (paired.k == 10)
    ]
    if len(row):
        r = row.iloc[0]
        lines += [
            "",
            f"tuned_policy - {best} (best baseline on test), Recall@10: {r.mean_diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] (paired bootstrap 95%)",
        ]
    ranking, collab = policy["ranking"], policy["collab"]
    lines += [
        "",
        f"chosen on validation ({policy['validation']['users']} users): CF model {collab['model']} "
        + json.dumps({k: collab[k] for k in _cf_keys(collab["model"])})
        + f"; alphas {ranking['alphas']}; lambda_div {ranking['lambda_div']}; n_cf_seed {ranking['n_cf_seed']}; "
        f"boosts w_q {ranking['w_q']} w_r {ranking['w_r']} w_p {ranking['w_p']}",
        f"search: trials per study {policy['search']['trials']}, cut short: {policy['search']['cut_short']}, "
        f"search {policy['search']['seconds']:.1f} s, tuning stage {seconds.get('tuning', float('nan')):.1f} s wall",
    ]
    return "\n".join(lines)


def _cf_keys(model: str) -> list[str]:
    return {
        "als": ["factors", "regularization", "confidence", "confidence_alpha", "min_rating"],
        "ease": ["ease_lambda", "min_rating"],
        "item_knn": ["knn_k", "knn_weighting", "min_rating"],
    }.get(model, ["min_rating"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="ml-latest-small")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--artifacts", default=str(REPO / "artifacts" / "bench-quality"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--run", default=None, help="print an existing run directory instead of running"
    )
    args = parser.parse_args(argv)
    if args.run:
        print(report(Path(args.run)))
        return 0
    cmd = [
        str(Path(sys.executable).parent / "movierec"),
        "run",
        "--profile",
        args.profile,
        "--artifacts",
        args.artifacts,
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    for item in args.overrides:
        cmd += ["--set", item]
    code = subprocess.call(cmd)
    if code not in (0, 1):  # 1 = completed, not approved: still a result to print
        return code
    print()
    print(report(_latest(Path(args.artifacts), args.profile)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
