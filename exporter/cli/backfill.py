"""`aep-flow-exporter backfill`: re-ingest a range as a sequence of on-demand runs.

[--from, --to) is cut into windows of --window, and one run is created per window with trigger's
body rules (exporter/runs/create.py), --concurrency at a time, each followed to completion, over
an Adobe session of the command's own (exporter/adobe/session.py). The whole plan is checked
before the first request (exit 2, a line per problem). The plan file (--journal), written after
every change, makes it resumable: started again with the same arguments it skips windows that
succeeded, follows runs still in flight, looks up runs whose creation got no answer, and creates
failed windows again (--retry-failed, default 1: Adobe's re-trigger where it allows it).

Exit codes: 0 every window succeeded; 1 a window failed, timed out or was left by Ctrl-C;
2 bad input, or Adobe refused a run (its words are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from exporter.adobe.session import open_adobe
from exporter.cli import common
from exporter.config import FLOW_ID_RE, Config, ConfigError, parse_duration
from exporter.runs.backfill import Runner, Settings
from exporter.runs.create import ParamsAs, printable, request_body, shown_headers, typed
from exporter.runs.plan import MAX_WINDOWS, SUCCEEDED, Plan, PlanFile, PlanFileError, default_path
from exporter.runs.progress import reporter, table
from exporter.support.logs import setup_logging

PROG = "aep-flow-exporter backfill"
MAX_CONCURRENCY = 32


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Re-ingest a range of time as a sequence of on-demand runs, one per window; resumable.",
    )
    common.add_flow_args(p)
    p.add_argument(
        "--from", dest="start", required=True, metavar="T", help="start of the range: unix seconds or ISO-8601"
    )
    p.add_argument("--to", dest="end", required=True, metavar="T", help="end of the range (excluded)")
    p.add_argument(
        "--window",
        required=True,
        metavar="DURATION",
        help="length of each run's window, e.g. 1d, 6h (the last may be shorter)",
    )
    p.add_argument("--delta-column", metavar="NAME", help="delta column of a table-based source (sent with every run)")
    p.add_argument("--concurrency", type=int, default=1, metavar="N", help="runs in flight at once (default 1)")
    p.add_argument("--journal", metavar="FILE", help="where progress is kept (default: next to the state file)")
    p.add_argument(
        "--retry-failed",
        type=int,
        default=1,
        metavar="N",
        help="retry a failed window's run up to N times: Adobe's re-trigger, or a new run where Adobe refuses it (default 1)",
    )
    common.add_run_args(p)
    return p


@dataclass(frozen=True)
class Checked:
    config: Config
    plan: Plan
    settings: Settings
    plan_path: str


def check(args: argparse.Namespace) -> Checked:
    """Every check of the plan that needs no request; InputError (or ConfigError) otherwise."""
    problems = []
    if not FLOW_ID_RE.match(args.flow):
        problems.append(f"--flow: not a flow ID (expected a UUID), got {args.flow!r}")
    now = time.time()
    times = {"--from": common.parse_time(args.start, "--from"), "--to": common.parse_time(args.end, "--to")}
    problems += common.check_times(times, now, args.force, start="--from", end="--to")
    durations = {}
    for flag, text in (
        ("--window", args.window),
        ("--wait-timeout", args.wait_timeout),
        ("--wait-interval", args.wait_interval),
    ):
        try:
            durations[flag] = parse_duration(text)
        except ValueError as e:
            problems.append(f"{flag}: {e}")
    window = int(durations.get("--window", 1))
    if "--window" in durations and window < 1:
        problems.append(f"--window must be at least 1s, got {args.window!r}")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        problems.append(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {args.concurrency}")
    if args.retry_failed < 0:
        problems.append(f"--retry-failed must be 0 or more, got {args.retry_failed}")
    plan = Plan(args.sandbox.lower(), args.flow, times["--from"], times["--to"], max(window, 1))
    if not problems and plan.count() > MAX_WINDOWS:
        problems.append(f"{plan.count()} windows of {args.window}: more than {MAX_WINDOWS}; use a longer --window")
    if problems:
        raise common.InputError("\n".join(problems))
    config = common.load_config_arg(args.config_file)
    settings = Settings(
        plan.sandbox, plan.flow, args.delta_column, args.concurrency, args.retry_failed,
        durations["--wait-timeout"], durations["--wait-interval"], args.params_as or "auto",
    )  # fmt: skip
    return Checked(config, plan, settings, args.journal or default_path(config.state_file, plan))


def main(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "text")
    try:
        c = check(args)
        plan_file = PlanFile.open(c.plan_path, c.plan)
        if not args.dry_run:
            _first_save(plan_file)
    except (common.InputError, ConfigError, PlanFileError) as e:
        return common.bad_input(PROG, e)
    if args.dry_run:
        return dry_run(c, plan_file, out)
    return asyncio.run(_backfill(c, plan_file, resume_command(argv), out))


def _first_save(plan_file: PlanFile) -> None:
    """A plan file that cannot be written stops the backfill before its first request."""
    try:
        plan_file.save()
    except OSError as e:
        raise common.InputError(f"--journal {plan_file.path}: cannot write it: {e.strerror or e}") from None


def dry_run(c: Checked, plan_file: PlanFile, out: TextIO) -> int:
    """The requests a start would send (for the windows not yet succeeded), and nothing sent."""
    todo = [w for w in plan_file.windows if w.state != SUCCEEDED]
    print(f"{len(todo)} of {len(plan_file.windows)} windows to run; journal {c.plan_path}", file=out)
    print(f"POST {c.config.adobe.base_url}/runs", file=out)
    for k, v in shown_headers(c.config, c.plan.sandbox).items():
        print(f"{k}: {v}", file=out)
    print(file=out)
    for w in todo:
        times = {"--start-time": int(time.time()), "--window-start": w.start, "--window-end": w.end}
        body = typed(request_body(c.plan.flow, times, c.settings.delta_column), ParamsAs(c.settings.params_as).form())
        print(json.dumps(body), file=out)
    return 0


async def _backfill(c: Checked, plan_file: PlanFile, resume: str, out: TextIO) -> int:
    done = sum(1 for w in plan_file.windows if w.state == SUCCEEDED)
    verb = f"resuming from {c.plan_path} ({done} already succeeded)" if plan_file.resumed else f"journal {c.plan_path}"
    print(f"backfill of flow {c.plan.flow}: {len(plan_file.windows)} windows; {verb}", file=out, flush=True)
    loop = asyncio.get_running_loop()
    async with open_adobe(c.config) as adobe:
        with reporter(plan_file.windows, out) as shown:
            runner = Runner(adobe.client, plan_file, c.settings, shown)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runner.interrupt)
            try:
                await runner.run()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
    return report(runner, plan_file, resume, out)


def resume_command(argv: Sequence[str]) -> str:
    """The same command; with --retry-failed 0 turned to 1, as a resume is meant to retry failures."""
    args = list(argv)
    for i, a in enumerate(args):
        if a in ("--retry-failed=0", "--retry-failed") and (a != "--retry-failed" or args[i + 1 : i + 2] == ["0"]):
            args[i : i + (1 if "=" in a else 2)] = ["--retry-failed", "1"]
            break
    return shlex.join(["aep-flow-exporter", "backfill", *args])


def report(runner: Runner, plan_file: PlanFile, resume: str, out: TextIO) -> int:
    """The end table, what to do next, and the exit code."""
    print(file=out)
    for line in table(plan_file.windows):
        print(line, file=out)
    ok = sum(1 for w in plan_file.windows if w.state == SUCCEEDED)
    print(f"\n{ok} of {len(plan_file.windows)} windows succeeded; journal {plan_file.path}", file=out)
    if runner.refusal:
        print(f"{PROG}: {printable(runner.refusal)}", file=sys.stderr)
    if runner.fatal:
        print(f"{PROG}: {printable(runner.fatal)}", file=sys.stderr)
    if runner.timed_out:
        print("stopped creating runs: a run was still going after --wait-timeout.", file=out)
    if runner.interrupted:
        print("interrupted: no more runs were created; runs already in flight go on at Adobe.", file=out)
    if ok < len(plan_file.windows):
        print(
            f"to resume (skips what succeeded, follows what is in flight, creates failed windows again):\n  {resume}",
            file=out,
        )
    out.flush()
    if runner.refusal:
        return 2
    return 0 if ok == len(plan_file.windows) else 1
