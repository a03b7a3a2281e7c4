"""Latency benchmark (``make bench-latency``): an unchanged re-run and ``movierec recommend``, timed
as a user meets them - whole commands, interpreter start-up included.

1. Makes sure the profile has a complete run under the artifacts folder (runs it once, cold, when
   it has none; that run is not timed).
2. Times ``movierec run --profile PROFILE`` ``--repeats`` times on unchanged inputs (every stage
   before ``regression`` comes from cache) and prints the median wall time, the range, and the
   last re-run's stage table from its own ``logs/stages.json``.
3. Times ``movierec recommend`` for a known user with history, a user filtered by a genre, and a
   brand-new user (cold start), ``--repeats`` times each, and prints the medians.

    python scripts/bench_latency.py                          # demo
    python scripts/bench_latency.py --profile bench-32m      # after `make bench`
    python scripts/bench_latency.py --skip-rerun             # recommend only

The targets it reports against: an unchanged demo re-run <= 10 s, a recommendation < 2 s (issue
13). Run it on a quiet machine: on 2 cores anything beside it shows in the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MOVIEREC = str(Path(sys.executable).with_name("movierec"))


def _time(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: a gate failed (a decision, not an error)
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}")
    return seconds, done


def _summary(name: str, seconds: list[float], target: float) -> str:
    median = statistics.median(seconds)
    verdict = "meets" if median <= target else "misses"
    return (
        f"{name:<34} median {median:6.2f} s  (min {min(seconds):.2f}, max {max(seconds):.2f}, "
        f"{len(seconds)} runs; target <= {target:g} s: {verdict})"
    )


def _latest(artifacts: Path, profile: str) -> Path | None:
    latest = artifacts / profile / "LATEST"
    return latest.parent / latest.read_text().strip() if latest.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-rerun", action="store_true", help="time recommend only")
    args = parser.parse_args(argv)
    artifacts = Path(args.artifacts).resolve()
    run_cmd = [MOVIEREC, "run", "--profile", args.profile, "--artifacts", str(artifacts)]
    if _latest(artifacts, args.profile) is None:
        print(f"no complete {args.profile} run under {artifacts}: running it once (not timed) ...", flush=True)
        _time(run_cmd)
    lines = [f"profile {args.profile}, artifacts {artifacts}, PREFECT_API_URL "
             f"{os.environ.get('PREFECT_API_URL') or '(unset: the project server or a temporary one)'}"]  # fmt: skip
    if not args.skip_rerun:
        times = []
        for i in range(args.repeats):
            seconds, _ = _time(run_cmd)
            times.append(seconds)
            print(f"  unchanged re-run {i + 1}/{args.repeats}: {seconds:.2f} s", flush=True)
        run = _latest(artifacts, args.profile)
        stages = json.loads((run / "logs/stages.json").read_text())["stages"]
        lines.append(_summary("unchanged re-run (movierec run)", times, 10.0 if args.profile == "demo" else 15.0))
        lines.append("  its stages: " + ", ".join(
            f"{s['stage']} {s['wall_seconds']:.1f}{' (cached)' if s.get('cached') else ''}" for s in stages
        ))  # fmt: skip
    run = _latest(artifacts, args.profile)
    import pandas as pd

    cohorts = pd.read_parquet(run / "data/cohorts.parquet")
    train_users = pd.read_parquet(run / "data/train.parquet", columns=["user_id"])["user_id"]
    known = int(train_users.value_counts().index[len(train_users.unique()) // 2])  # a typical user
    new_user = int(cohorts["user_id"].max()) + 1
    genre = "Drama"
    base = [MOVIEREC, "recommend", "--run", str(run)]
    for name, extra in (
        (f"recommend --user {known}", ["--user", str(known)]),
        (f"recommend --user {known} --genre {genre}", ["--user", str(known), "--genre", genre]),
        (f"recommend (new user) --genre {genre}", ["--user", str(new_user), "--genre", genre]),
    ):
        times = []
        for _ in range(args.repeats):
            seconds, _ = _time(base + extra)
            times.append(seconds)
        lines.append(_summary(name, times, 2.0))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
