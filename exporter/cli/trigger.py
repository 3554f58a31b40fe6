"""`aep-flow-exporter trigger`: create an on-demand flow run (POST /runs), optionally wait for it.

Everything that can be checked before a request is checked first, each problem with its own
message and exit 2: a window that ends before it starts, and times that are more than a day in
the future or before 2000 (Adobe's own example sends `16515859567`, the year 2493: that slip).
Whether a delta column is needed depends on the source and on whether it is the flow's first run,
which only Adobe knows: its refusal is printed as Adobe wrote it, exit 2.
The run is created by exporter/runs/create.py (shared with backfill) over an Adobe session of the
command's own (exporter/adobe/session.py): the times as strings, as Adobe's tutorials send them,
and once more as the spec's integers if Adobe refuses the strings.

Exit codes: 0 created (with --wait: completed successfully); 1 failed, timed out, or Adobe could
not be reached; 2 bad input, or Adobe refused the request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from exporter.adobe.session import open_adobe
from exporter.cli.common import (
    InputError,
    add_flow_args,
    add_run_args,
    bad_input,
    check_times,
    load_config_arg,
    parse_time,
)
from exporter.config import FLOW_ID_RE, Config, ConfigError, parse_duration
from exporter.runs.create import ParamsAs, create_run, request_body, shown_headers, typed
from exporter.runs.follow import follow
from exporter.runs.post import PostError
from exporter.support.logs import setup_logging

PROG = "aep-flow-exporter trigger"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Create an on-demand run of a dataflow (batch sources only), optionally wait for it.",
    )
    add_flow_args(p)
    p.add_argument("--window-start", required=True, metavar="T", help="unix seconds or ISO-8601 (UTC unless offset)")
    p.add_argument("--window-end", required=True, metavar="T", help="unix seconds or ISO-8601")
    p.add_argument("--start-time", metavar="T", help="when the run should start (default: now)")
    p.add_argument(
        "--delta-column", metavar="NAME", help="delta column of a table-based source (needed on its first run only)"
    )
    p.add_argument("--wait", action="store_true", help="follow the run until it completes")
    add_run_args(p)
    return p


def main(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "text")
    try:
        if not FLOW_ID_RE.match(args.flow):
            raise InputError(f"--flow: not a flow ID (expected a UUID), got {args.flow!r}")
        now = time.time()
        times = {
            "--window-start": parse_time(args.window_start, "--window-start"),
            "--window-end": parse_time(args.window_end, "--window-end"),
            "--start-time": parse_time(args.start_time, "--start-time") if args.start_time else int(now),
        }
        problems = check_times(times, now, args.force)
        if problems:
            raise InputError("\n".join(problems))
        try:
            wait_timeout = parse_duration(args.wait_timeout)
            wait_interval = parse_duration(args.wait_interval)
        except ValueError as e:
            raise InputError(f"--wait-timeout/--wait-interval: {e}") from None
        config = load_config_arg(args.config_file)
    except (InputError, ConfigError) as e:
        return bad_input(PROG, e)

    params_as = ParamsAs(args.params_as or "auto")
    body = request_body(args.flow, times, args.delta_column)
    if args.dry_run:
        body = typed(body, params_as.form())
        print(f"POST {config.adobe.base_url}/runs", file=out)
        for k, v in shown_headers(config, args.sandbox).items():
            print(f"{k}: {v}", file=out)
        print(file=out)
        print(json.dumps(body, indent=2), file=out)
        return 0
    return asyncio.run(_create(config, args.sandbox, body, params_as, args.wait, wait_timeout, wait_interval, out))


async def _create(
    config: Config,
    sandbox: str,
    body: dict,
    params_as: ParamsAs,
    wait: bool,
    timeout: float,
    interval: float,
    out: TextIO,
) -> int:
    async with open_adobe(config) as adobe:
        try:
            run_id, etag = await create_run(adobe.client, sandbox, body, params_as, _say)
        except PostError as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 2 if e.refused else 1
        print(f"id: {run_id}", file=out)
        print(f"etag: {etag if etag is not None else '(none given)'}", file=out)
        out.flush()
        if not wait:
            return 0
        return 0 if await follow(adobe.client, sandbox, run_id, timeout, interval, out) else 1


def _say(line: str) -> None:
    """A notice for the operator (Adobe refused the strings, say): stderr, beside the run's lines."""
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)
