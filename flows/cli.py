"""The ``movierec`` command.

Exit codes: 0 success; 1 a failed gate or validation; 3 stopped by a time or memory budget; 130
interrupted (Ctrl+C); 143 terminated (SIGTERM); 2 bad usage or bad input (the message names the
file, the column or setting, and the fix; no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main"]

EXIT_OK, EXIT_FAILED_CHECK, EXIT_BAD_INPUT, EXIT_BUDGET = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM (the shells' convention)
EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 failed gate or validation, 2 bad usage or bad input, 3 stopped by a "
    "time or memory budget (raise it with --set budgets.STAGE=SECONDS), 130 interrupted (Ctrl+C), "
    "143 terminated (SIGTERM); finished stages stay cached, so a re-run resumes."
)

_QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
}
#: Without PREFECT_API_URL a run starts a temporary Prefect server and waits this long for it
#: (Prefect's default, 20 s, failed first runs on a busy machine); the environment can set another.
STARTUP_TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_SECONDS = 180


def _add_profile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="demo",
        help="run profile: a name from profiles/ (demo, ci, ml-latest-small, bench-32m, ...) "
        "or a path to a .toml file (default: demo)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one profile setting, e.g. --set eval.batch_size=2000 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec",
        description="Train, tune, evaluate and package a hybrid movie recommender "
        "(collaborative filtering + content embeddings) as Prefect flows.",
        epilog=EXIT_CODES_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the whole pipeline for a profile",
        description="Run the pipeline stage by stage (unchanged stages come from cache). Prints "
        "progress per stage, then the run directory. Works without a Prefect server (a temporary "
        "one is started) or against the server in PREFECT_API_URL.",
        epilog=EXIT_CODES_HELP,
    )
    _add_profile_args(run)
    run.add_argument("--data-dir", help="MovieLens folder for profiles with data.source = movielens")
    run.add_argument(
        "--artifacts", default="artifacts", help="artifacts root (default: ./artifacts)"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines")

    gen = sub.add_parser(
        "generate",
        help="write synthetic data in ml-latest-small format",
        description="Generate the synthetic dataset of a profile (deterministic from its seed) "
        "and write ratings.csv, movies.csv, tags.csv, links.csv and providers.csv.",
    )
    _add_profile_args(gen)
    gen.add_argument("--out", required=True, help="output folder (created when missing)")

    val = sub.add_parser(
        "validate",
        help="validate a file, or re-check a whole run directory, with Great Expectations",
        description="PATH a parquet table: run the expectation suite that matches it (by file name, "
        "e.g. data/ratings.parquet -> the 'ratings' suite). PATH a run directory: recompute the "
        "sha256 of every file listed in inventory/artifact_manifest.json, re-run every file's suites, "
        "and report files changed or missing since the run, files that fail now, symbolic links "
        "pointing outside the run, and files added after the manifest (informational); then check "
        "the manifest's own sha256 against the seal the run recorded on the Prefect server "
        "(PREFECT_API_URL, else a temporary server on the local database), so a manifest edited "
        "to match edited files is caught. Exit 1 when anything changed, is missing or fails, or "
        "the seal does not match.",
    )
    val.add_argument("path", help="a parquet table written by a run, or a run directory")
    val.add_argument("--suite", help="suite name when the file name does not say it (tables only)")
    val.add_argument(
        "--no-seal",
        action="store_true",
        help="run directory: skip the check against the Prefect server's record of the manifest",
    )
    rec = sub.add_parser(
        "recommend",
        help="top-K movies for one user from a finished run, with reasons",
        description="Recommend K movies the user has not rated, from the newest complete run of "
        "the profile (or --run DIR): final score, its collaborative and content parts, and a "
        "reason. Genre filters match any of the given genres; provider filters any provider. When "
        "filters leave too few movies, a fixed two-step relaxation (drop providers, then widen "
        "genres) is applied and reported. A user id not in the data, given with --genre, is served "
        "as a brand-new user (content/popularity, marked cold-start).",
    )
    rec.add_argument("--user", type=int, required=True, help="user id (as in ratings.csv)")
    rec.add_argument("--k", type=int, default=10, help="how many movies (default 10)")
    rec.add_argument("--genre", action="append", default=[], help="genre filter (repeatable, OR)")
    rec.add_argument("--provider", action="append", default=[], help="provider filter (repeatable, OR)")
    rec.add_argument("--run", help="run directory (default: LATEST of --profile under --artifacts)")
    rec.add_argument("--profile", default="demo", help="profile whose LATEST run to use (default demo)")
    rec.add_argument("--artifacts", default="artifacts", help="artifacts root (default ./artifacts)")
    rec.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    hand = sub.add_parser(
        "handoff",
        help="re-decide a finished run: new inventory and sign-off, e.g. with other thresholds",
        description="Re-run the handoff flow (inventory + sign-off) alone on a finished run "
        "directory, with the run's own profile.toml plus the --set overrides (checked before "
        "anything runs), e.g. --set signoff.min_lift=0.5. Writes a new decision (signoff/, "
        "reports/final_report.md) and a new inventory (inventory/: the manifest lists every "
        "file of the run, the new sign-off files included) and touches no other file of the run; "
        "the stages' results are the recorded ones (nothing is retrained). Prints the decision.",
        epilog="Exit codes: 0 APPROVE, 1 NEEDS WORK or REJECT, 2 bad usage or bad input (not a "
        "finished run directory, a bad --set).",
    )
    hand.add_argument(
        "run_dir", metavar="RUN_DIR", help="a finished run (artifacts/<profile>/<run-id>)"
    )
    hand.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a threshold or budget of the run's profile.toml: signoff.*, "
        "edge_cases.min_pass_rate, budgets.inventory|handoff|flow; e.g. --set "
        "signoff.min_lift=0.5 (repeatable; the run's profile.toml itself is not changed)",
    )
    hand.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines")

    hist = sub.add_parser(
        "history",
        help="recent flow runs and their task runs, from the Prefect API",
        description="List recent flow runs (name, flow, profile, state - the decision for a run "
        "that decided: APPROVE, NEEDS WORK or REJECT -, duration, id) from the Prefect server in "
        "PREFECT_API_URL, or from the local database through a temporary server when none is set "
        "- the same records the Prefect UI shows. With --run, list one run's task runs and whether "
        "they were cached.",
    )
    hist.add_argument("--limit", type=int, default=10, help="how many flow runs (default 10)")
    hist.add_argument(
        "--run",
        dest="run_id",
        metavar="RUN",
        help="a flow run: its full id, a unique start of the id, or its name as the UI shows it "
        "(e.g. sigma5-oxpemul): show its task runs",
    )
    hist.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    srv = sub.add_parser(
        "serve",
        help="register the deployments with the Prefect server and run them when triggered",
        description="Register the deployments recommender-pipeline (run it from the Prefect UI: "
        "Run -> Custom run, pick a profile and overrides), nightly-reevaluation (on the cron "
        "schedule of the nightly profile's [nightly] section) and handoff (re-decide a finished "
        "run: give its run directory and overrides) with the Prefect server in PREFECT_API_URL, "
        "then execute their runs until Ctrl+C. Start a server first with `make ui`.",
    )
    srv.add_argument(
        "--artifacts", default="artifacts", help="artifacts root of the runs (default ./artifacts)"
    )
    srv.add_argument(
        "--limit", type=int, default=1, help="runs executed at the same time (default 1)"
    )
    srv.add_argument(
        "--nightly-profile",
        default="nightly",
        help="profile of nightly-reevaluation and its schedule (default nightly)",
    )
    srv.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines")
    return parser


STEP_TEXT = {
    0: "no relaxation needed",
    1: "relaxation step 1: the provider filter was dropped (too few movies matched)",
    2: "relaxation step 2: providers dropped and genres widened to all (too few movies matched)",
}


def _cmd_recommend(args: argparse.Namespace) -> int:
    from tasks.errors import UsageError
    from tasks.io import latest_run
    from tasks.ranking import recommend_for_user

    if args.k < 1:  # before any loading
        raise UsageError(f"--k must be at least 1, got {args.k}.")
    if args.run:
        run_dir = Path(args.run)
        if not (run_dir / "tuning" / "policy.json").is_file():
            raise UsageError(
                f"{run_dir} is not a finished run directory (no tuning/policy.json inside); pass --run DIR of a finished run."
            )
    else:
        run_dir = latest_run(args.artifacts, args.profile)
        if run_dir is None:
            raise UsageError(
                f"no complete run of profile '{args.profile}' under {args.artifacts}/; run "
                f"`movierec run --profile {args.profile}` first, or pass --run DIR."
            )
    table = recommend_for_user(run_dir, args.user, args.k, args.genre or None, args.provider or None)
    mode = str(table["mode"].iloc[0]) if len(table) else "personalised"
    step = int(table["relaxation_step"].iloc[0]) if len(table) else 0
    if args.json:
        import json

        print(json.dumps({
            "user": args.user, "run_dir": str(run_dir), "mode": mode, "order": "served (MMR)",
            "relaxation_step": step, "k_final": table.attrs.get("k_final"),
            "items": json.loads(table.to_json(orient="records")),
        }, indent=2))  # fmt: skip
        return EXIT_OK
    print(f"user {args.user}: {len(table)} movies ({mode}) from {run_dir}")
    if "k_capped_from" in table.attrs:
        print(f"--k {table.attrs['k_capped_from']} is more than this run's list length k_final = {table.attrs['k_final']}: showing {table.attrs['k_final']}")
    print("in served order (MMR over the z-scored blend; scores are per-user z-scores, see hybrid/scoring_schema.md)")
    if args.genre or args.provider:
        print(STEP_TEXT.get(step, f"relaxation step {step}"))
    for row in table.itertuples(index=False):
        collab = "  n/a " if row.collab != row.collab else f"{row.collab:+.2f}"  # NaN: no CF evidence
        has_year = row.year is not None and row.year == row.year and f"({int(row.year)})" in row.title
        year = "" if has_year or row.year is None or row.year != row.year else f" ({int(row.year)})"
        on = f" on {row.providers}" if row.providers else ""
        print(
            f"{row.rank:>3}. {row.title}{year} [{row.genres}]{on}  score {row.score:+.2f}  "
            f"collab {collab}  content {row.content:+.2f}  - {row.reason}"
        )
    if len(table) < min(args.k, table.attrs.get("k_final", args.k)):
        print(f"only {len(table)} movies left after filters and already-seen items")
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from tasks.errors import UsageError
    from tasks.history import (
        find_flow_run,
        format_flow_runs,
        format_task_runs,
        read_history,
        read_scheduled,
    )

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    _check_api_reachable()
    with _server():
        run_id = find_flow_run(args.run_id) if args.run_id else None
        flows, tasks = read_history(limit=args.limit, run_id=run_id)
        scheduled = [] if run_id else read_scheduled()
    if args.json:
        payload: dict = {"flow_runs": [{**asdict(r), "profile": r.profile} for r in flows]}
        if run_id:
            payload["task_runs"] = [asdict(t) for t in tasks]
        else:
            payload["scheduled"] = [{"start": w, "flow": f} for w, f in scheduled]
        print(json.dumps(payload, indent=2, default=str))
        return EXIT_OK
    print(format_flow_runs(flows))
    if run_id:
        print()
        print(format_task_runs(tasks))
    for when, flow_name in scheduled:
        print(f"next scheduled: {flow_name} at {when}")
    return EXIT_OK


def _check_api_reachable() -> None:
    """With PREFECT_API_URL set, one quick health check: an unreachable server is one message
    (Prefect's client would retry for a minute and end in a traceback)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return
    import httpx

    from tasks.errors import UsageError

    try:
        httpx.get(url.rstrip("/") + "/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise UsageError(
            f"no Prefect server answers at PREFECT_API_URL={url} ({type(exc).__name__}: {exc}). "
            "Fix: start it (`make ui`), correct PREFECT_API_URL, or unset it to read the local "
            "database."
        ) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    from tasks.errors import UsageError
    from tasks.profile import load_profile

    url = PREFECT_API_URL.value()
    if not url:
        raise UsageError(
            "movierec serve needs a running Prefect server and PREFECT_API_URL pointing at it. "
            "Start one with `make ui` (127.0.0.1:4200), then `export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api` and run `movierec serve` again."
        )
    _check_api_reachable()
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    nightly = load_profile(args.nightly_profile)  # fail fast on a bad profile
    data_dir = nightly.data.data_dir
    if nightly.data.source == "movielens" and not (data_dir and Path(data_dir).is_dir()):
        print(
            f"warning: profile '{nightly.name}' reads {data_dir!r}, which does not exist from here "
            f"({Path.cwd()}); nightly runs will fail until it does (or pass data_dir in the run).",
            file=sys.stderr,
        )
    artifacts = Path(args.artifacts)
    _check_writable(artifacts)
    from flows.deployments import (
        HANDOFF_DEPLOYMENT,
        NIGHTLY_DEPLOYMENT,
        PIPELINE_DEPLOYMENT,
        serve_deployments,
    )

    print(
        f"serving {PIPELINE_DEPLOYMENT}, {HANDOFF_DEPLOYMENT} and {NIGHTLY_DEPLOYMENT} "
        f"({nightly.nightly.cron}, {nightly.nightly.timezone}) on {url}; "
        f"runs write to {artifacts.resolve()}; Ctrl+C stops",
        flush=True,
    )
    serve_deployments(artifacts, limit=args.limit, nightly_profile=args.nightly_profile)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from tasks.profile import load_profile

    profile = load_profile(args.profile, args.overrides)  # fail fast on a bad profile
    if profile.data.source == "movielens":
        data_dir = args.data_dir or profile.data.data_dir
        if not data_dir or not Path(data_dir).is_dir():
            from tasks.errors import UsageError

            problem = "does not exist"
            if not data_dir:
                problem = "is not set"
            elif Path(data_dir).exists():
                problem = "is a file, not a folder"
            raise UsageError(
                f"data directory {data_dir!r} {problem}. Profile '{profile.name}' reads a "
                "MovieLens folder: pass --data-dir PATH to one (e.g. ml-latest-small)."
            )
    artifacts = Path(args.artifacts)
    _check_writable(artifacts)
    _start_stage_server()
    with _server(while_starting=lambda: __import__("flows.pipeline")) as ui, _without_heartbeats():
        from flows.pipeline import run_pipeline

        summary = run_pipeline(
            profile=args.profile,
            overrides=args.overrides,
            data_dir=args.data_dir,
            artifacts_root=str(artifacts),
        )
    print(summary["stage_table"])
    print(f"run directory: {summary['run_dir']}")
    if ui:
        print(f"Prefect UI:    {ui}/runs/flow-run/{summary['flow_run_id']}")
    from flows.artifacts import headline_rows

    print("test set, every evaluated user (the policy and the baselines were chosen on validation):")
    for row in headline_rows({"headline": summary.get("headline", {})}):
        print(f"  {row['model']:<14} Recall@10 {row.get('recall@10', float('nan')):.4f}  MAP@10 {row.get('map@10', float('nan')):.4f}  NDCG@10 {row.get('ndcg@10', float('nan')):.4f}")
    if summary.get("gates_passed"):
        print("evaluation acceptance gates: all passed")
    else:
        print(
            f"evaluation acceptance gates: FAILED ({', '.join(summary.get('failed_gates', []))}); "
            f"see {summary['run_dir']}/reports/offline_metrics.md and eval/gates.json"
        )
    decision = summary.get("decision") or "unknown"
    return _print_decision(summary["run_dir"], decision, summary.get("decision_reasons", []))


#: Whether this command started the stage children's forkserver (then it stops it at its end).
_started_stage_server = False


def _start_stage_server() -> None:
    """The forkserver of the stage children, first: its imports (about 7 s) overlap the Prefect
    server's start-up and the flow's own imports (tasks/budget.py)."""
    global _started_stage_server
    from tasks.budget import start_stage_server

    _started_stage_server = start_stage_server() or _started_stage_server


def _stop_stage_server() -> None:
    """At the command's end, however it ends: the forkserver it started, and multiprocessing's
    resource tracker, are stopped and waited for (else they take ~2 s to follow it out)."""
    global _started_stage_server
    if _started_stage_server:
        from tasks.budget import stop_stage_server

        stop_stage_server()
        _started_stage_server = False


def _server(while_starting: Callable[[], object] = lambda: None):
    """The Prefect server the command records to: the one in PREFECT_API_URL, else a temporary one
    this process owns (flows/server.py: Ctrl+C and kills never leave it behind)."""
    from flows.server import owned_server

    seconds = float(os.environ.get(STARTUP_TIMEOUT_SETTING) or STARTUP_TIMEOUT_SECONDS)
    return owned_server(seconds, while_starting)


def _without_heartbeats():
    """The command's flows send no heartbeats, unless PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set.

    Prefect joins a flow's heartbeat thread when the flow ends, and that thread sleeps in 1 s
    steps: up to 1 s per flow (the pipeline and its handoff subflow) of every command, measured
    as 0.7 s of a cached re-run. Heartbeats only feed a zombie-run automation a user creates on
    the server; a command reports its own end (Ctrl+C and SIGTERM mark the run Crashed).
    """
    import contextlib

    if any(k in os.environ for k in _HEARTBEAT_SETTINGS):
        return contextlib.nullcontext()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


_HEARTBEAT_SETTINGS = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def _print_decision(run_dir: str, decision: str, reasons: list[str]) -> int:
    """The decision lines of `movierec run` and `movierec handoff`; the exit code they share."""
    print(f"decision: {decision} (computed from the gates; {run_dir}/signoff/handoff.md)")
    for reason in reasons[:6]:
        print(f"  - {reason}")
    # exit 1 = the run completed but the decision is not APPROVE (a gate failed)
    return EXIT_OK if decision == "APPROVE" else EXIT_FAILED_CHECK


def _cmd_handoff(args: argparse.Namespace) -> int:
    import json

    from flows.handoff import check_finished_run, handoff_profile, run_handoff
    from tasks.errors import UsageError

    run_dir = check_finished_run(args.run_dir)  # before anything runs
    handoff_profile(run_dir, args.overrides)
    for folder in ("inventory", "signoff", "reports"):
        target = run_dir / folder
        if target.exists() and not os.access(target, os.W_OK | os.X_OK):
            raise UsageError(f"{target} is not writable (a handoff rewrites it); fix that first")
    try:
        previous = (run_dir / "signoff" / "signoff.json").read_text(encoding="utf-8")
        before = json.loads(previous)["decision"]
    except (OSError, ValueError, KeyError, TypeError):
        before = None
    _start_stage_server()
    with _server(), _without_heartbeats():
        summary = run_handoff(str(run_dir), args.overrides)
    print(summary["stage_table"])
    from tasks.manifest import load_manifest

    manifest = load_manifest(run_dir)  # the new one, the sign-off files appended
    print(
        f"run directory: {summary['run_dir']} (new inventory: {manifest.get('n_files', '?')} "
        f"files, validation rate {manifest.get('validation_rate', float('nan')):.4f}; "
        "inventory/artifact_manifest.json)"
    )
    decision = summary.get("decision") or "unknown"
    if before:
        print(f"previous decision: {before}")
    return _print_decision(summary["run_dir"], decision, summary.get("decision_reasons", []))


def _check_writable(folder: Path) -> None:
    from tasks.errors import UsageError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"artifacts directory {str(folder)!r} is not writable ({exc.strerror}). "
            "Choose another with --artifacts DIR or fix its permissions."
        ) from None


def _cmd_generate(args: argparse.Namespace) -> int:
    from tasks.profile import load_profile
    from tasks.synthetic import generate_synthetic, write_movielens_format

    profile = load_profile(args.profile, args.overrides)
    out = Path(args.out)
    _check_writable(out)
    cfg = profile.synthetic
    print(
        f"generating {cfg.n_ratings:,} ratings for {cfg.n_users:,} users and {cfg.n_movies:,} movies "
        f"(seed {profile.run.seed}) ...",
        file=sys.stderr,
    )

    def progress(fraction: float, message: str) -> None:
        print(f"  {100 * fraction:5.1f}% {message}", file=sys.stderr, flush=True)

    data = generate_synthetic(cfg, profile.run.seed, progress=progress)
    written = write_movielens_format(data, out)
    for name, path in written.items():
        print(f"{name}: {path}")
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from tasks.errors import UsageError
    from tasks.io import read_table
    from tasks.validation import suite_names, validate_table

    path = Path(args.path)
    if path.is_dir():
        code = _validate_run_dir(path)
        return code if args.no_seal else max(code, _check_manifest_seal(path))
    if not path.is_file():
        raise UsageError(
            f"{path}: no such file or directory. Give a parquet table or a run directory written by a run."
        )
    suite = args.suite or path.stem
    if suite not in suite_names():
        raise UsageError(
            f"{path}: no expectation suite named {suite!r}; pass --suite NAME, one of: "
            + ", ".join(suite_names())
        )
    summary = validate_table(read_table(path), suite, source=str(path))
    status = "passed" if summary["success"] else "FAILED"
    print(f"{path}: suite '{suite}' {status} ({summary.get('evaluated', '?')} expectations)")
    for failure in summary.get("failed", []):
        print(f"  - {failure['message']}")
    return EXIT_OK if summary["success"] else EXIT_FAILED_CHECK


def _validate_run_dir(run_dir: Path) -> int:
    """`movierec validate RUN_DIR`: hashes and suites against the run's artifact manifest."""
    from tasks.inventory import load_manifest, validate_run_dir

    load_manifest(run_dir)  # a directory without a manifest: exit 2 with what to pass instead
    print(f"re-checking {run_dir} against inventory/artifact_manifest.json ...", file=sys.stderr)
    report = validate_run_dir(run_dir)
    for c in report["changed"]:
        print(
            f"CHANGED  {c['path']}: sha256 {c['old_sha256'][:12]} -> {c['new_sha256'][:12]}, "
            f"{c['old_bytes']:,} -> {c['new_bytes']:,} bytes"
        )
    for p in report["missing"]:
        print(f"MISSING  {p}")
    for f in report["failed"]:
        print(f"FAILED   {f['path']}: {f['reason']}")
    for s in report["symlinks_outside"]:
        print(f"OUTSIDE  {s['path']} -> {s['target']} (symbolic link out of the run; not followed)")
    for p in report["added"]:
        print(f"ADDED    {p} (not in the manifest; informational)")
    verdict = "ok" if report["ok"] else "FAILED"
    print(
        f"{run_dir}: {verdict} - {report['checked']} files checked ({report['listed']} in the manifest): "
        f"{len(report['changed'])} changed, {len(report['missing'])} missing, "
        f"{len(report['failed'])} failing validation, {len(report['added'])} added"
    )
    return EXIT_OK if report["ok"] else EXIT_FAILED_CHECK


def _check_manifest_seal(run_dir: Path) -> int:
    """`movierec validate RUN_DIR`, second part: the manifest against the server's seal."""
    from flows.seal import check_seal
    from tasks.manifest import MANIFEST

    with _server():
        seal = check_seal(run_dir)
    short = seal["sha256"][:12]
    if seal["status"] == "ok":
        m = seal["matched"]
        print(
            f"SEAL     {MANIFEST} sha256 {short} matches the seal flow run {m['flow_run_id']} "
            f"recorded on the Prefect server at {m['created']}"
        )
        return EXIT_OK
    if seal["status"] == "no record":
        print(
            f"SEAL     not checked: the Prefect server has no seal for this run (another server, or "
            f"a run older than seals); {MANIFEST} sha256 {short}"
        )
        return EXIT_OK
    newest, earlier = seal["recorded"][0], len(seal["recorded"]) - 1
    print(
        f"SEAL     MISMATCH {MANIFEST}: sha256 {short}, but the Prefect server recorded "
        f"{newest['sha256'][:12]} (flow run {newest['flow_run_id']}, {newest['created']}"
        + (f"; {earlier} earlier seal(s) differ too" if earlier else "")
        + "): the manifest was changed after the run wrote it"
    )
    return EXIT_FAILED_CHECK


COMMANDS = {
    "run": _cmd_run,
    "generate": _cmd_generate,
    "validate": _cmd_validate,
    "history": _cmd_history,
    "recommend": _cmd_recommend,
    "handoff": _cmd_handoff,
    "serve": _cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault(STARTUP_TIMEOUT_SETTING, str(STARTUP_TIMEOUT_SECONDS))
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):
        # Prefect's console log would repeat expected errors with tracebacks; the terminal shows our
        # own progress lines instead. The run's logs still reach the Prefect API (and UI).
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    if args.command in ("run", "handoff"):
        _start_stage_server()  # first: its imports (about 7 s) overlap everything the command does
    from flows.server import ServerStartTimeout
    from tasks.budget import StageFailed, StageMemoryExceeded, StageTimeout
    from tasks.errors import InputDataError, UsageError
    from tasks.profile import ProfileError

    terminated, restore = _stop_on_sigterm()
    try:
        try:
            return COMMANDS[args.command](args)
        except BaseException as exc:
            if terminated or _caused_by(exc, "TerminationSignal"):
                print(
                    "terminated (SIGTERM); finished stages stay cached, re-run to resume",
                    file=sys.stderr,
                )
                return EXIT_TERMINATED
            if isinstance(exc, KeyboardInterrupt) or not _caused_by(exc, "KeyboardInterrupt"):
                raise
            raise KeyboardInterrupt from None
    except (InputDataError, UsageError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StageTimeout, StageMemoryExceeded) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUDGET
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED_CHECK
    except ServerStartTimeout as exc:
        print(f"error: {_startup_timeout_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # the operating system refused: a path, a permission, a full disk
        print(f"error: {os_error_text(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; finished stages stay cached, re-run to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        restore()
        _stop_stage_server()


def _caused_by(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` or an exception it was raised while handling is of the class ``name``
    (Prefect's ``TerminationSignal``, ``KeyboardInterrupt``): what comes out of a flow stopped by
    a signal can be another error raised while Prefect handled it (seen: ``ValueError: Task run is
    not set`` when the signal came while a task run was being created)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if type(current).__name__ == name:
            return True
        stack += [current.__cause__, current.__context__]
    return False


def _startup_timeout_text(server_output: str = "") -> str:
    seconds = os.environ.get(STARTUP_TIMEOUT_SETTING, str(STARTUP_TIMEOUT_SECONDS))
    said = server_output.strip().splitlines()[-1:] if server_output else []
    return (
        f"the temporary Prefect server this command starts (PREFECT_API_URL is not set) did not answer "
        f"within {seconds} s ({STARTUP_TIMEOUT_SETTING})"
        + (f"; its last output: {said[0][:300]}" if said else "")
        + f". Fix: on a busy machine give it longer, "
        f"e.g. export {STARTUP_TIMEOUT_SETTING}=600, or start a server once with `make ui` and "
        "export PREFECT_API_URL=http://127.0.0.1:4200/api; finished stages stay cached."
    )


def os_error_text(exc: OSError) -> str:
    """One line for an error of the operating system: the path, the problem and the fix."""
    import errno

    where = exc.filename or "a file of the run"
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}"
    problem = exc.strerror or str(exc)
    fix = {
        errno.EACCES: "check its permissions: the user running movierec must be able to read the "
        "data and profile files and write in the artifacts folder",
        errno.EPERM: "check its permissions and owner",
        errno.EROFS: "the file system is read-only: pass --artifacts on a writable disk",
        errno.ENOSPC: "the disk is full: free some space or pass --artifacts on another disk; "
        "finished stages stay cached, so a re-run resumes",
        errno.EDQUOT: "the disk quota is used up: free some space or pass --artifacts elsewhere",
        errno.ENOENT: "it does not exist (was it moved or deleted while the run went on?)",
        errno.ENOTDIR: "a part of that path is a file, not a folder: fix the path",
        errno.EISDIR: "it is a folder where a file was expected: fix the path",
        errno.EMFILE: "too many open files: raise the limit (ulimit -n) and re-run",
    }.get(exc.errno, "fix the cause and re-run; finished stages stay cached")
    return f"{where}: {problem}. Fix: {fix}."


def _stop_on_sigterm() -> tuple[list[int], Callable[[], None]]:
    """SIGTERM stops a command the way Ctrl+C does (the flow run is marked crashed, the stage child
    dies with this process, nothing moves LATEST) instead of killing it silently. Returns a list
    that is non-empty once SIGTERM came, and a function that puts the previous handler back.
    Only in the main thread (a test may call :func:`main` from another)."""
    import signal
    import threading

    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return received, lambda: None

    def on_sigterm(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    return received, lambda: signal.signal(signal.SIGTERM, previous)

if __name__ == "__main__":
    sys.exit(main())
