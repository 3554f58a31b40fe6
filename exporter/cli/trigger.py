"""`aep-flow-exporter trigger`: create an on-demand flow run (POST /runs, seeds 002 and 003).

Everything that can be checked before a request is checked first, each problem with its own
message and exit 2: a window that ends before it starts, and times that are more than a day in
the future or before 2000 (Adobe's own example sends `16515859567`, the year 2493: that slip).
Whether a delta column is needed depends on the source and on whether it is the flow's first run,
which only Adobe knows: its refusal is printed as Adobe wrote it, exit 2.
The run itself is created by runcreate.py (shared with backfill): the times as strings, as the
seeds send them, and once more as the spec's integers if Adobe refuses the strings.

Exit codes: 0 created (with --wait: completed successfully); 1 failed, timed out, or Adobe could
not be reached; 2 bad input, or Adobe refused the request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TextIO

from exporter.adobe.client import ApiError, FlowServiceClient
from exporter.adobe.ims import TokenError
from exporter.adobe.runfacts import RunFacts, is_completed, run_facts
from exporter.config import FLOW_ID_RE, Config, ConfigError, load_config, parse_duration
from exporter.runs.create import CreateError, ParamsAs, create_run, typed
from exporter.runtime import open_exporter
from exporter.support.logs import LEVELS, setup_logging
from exporter.support.secrets import REDACTED

PROG = "aep-flow-exporter trigger"
YEAR_2000 = 946684800
MAX_AHEAD = 86400


class InputError(ValueError):
    """Bad command-line input: the message is for the operator."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aep-flow-exporter trigger",
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


def add_flow_args(p: argparse.ArgumentParser) -> None:
    """--config.file, --sandbox, --flow: trigger's and backfill's."""
    p.add_argument(
        "--config.file",
        dest="config_file",
        metavar="FILE",
        help="the exporter's config, for credentials (default: $AEP_EXPORTER_CONFIG)",
    )
    p.add_argument("--sandbox", required=True, help="sandbox of the flow")
    p.add_argument("--flow", required=True, metavar="ID", help="flow ID")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """--force, --dry-run, following a run, --log.level: trigger's and backfill's."""
    p.add_argument("--force", action="store_true", help="allow times far in the future or before 2000")
    p.add_argument("--dry-run", action="store_true", help="print the request(s) instead of sending them")
    p.add_argument(
        "--params-as",
        choices=["string", "integer"],
        help="send startTime/windowStartTime/windowEndTime only in this form (default: strings as Adobe's "
        "tutorials do, once more as integers, as its spec types them, if Adobe refuses the strings)",
    )
    p.add_argument(
        "--wait-timeout", default="3h", metavar="DURATION", help="give up waiting for a run after (default 3h)"
    )
    p.add_argument(
        "--wait-interval", default="15s", metavar="DURATION", help="how often to look at a run (default 15s)"
    )
    p.add_argument("--log.level", dest="log_level", default="warn", choices=list(LEVELS))


def parse_time(text: str, flag: str) -> int:
    """Unix seconds (an integer or decimal) or ISO-8601 (a trailing Z or an offset; UTC if none)."""
    value = text.strip()
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"{flag}: {text!r} is neither unix seconds nor an ISO-8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())


def check_times(
    times: dict[str, int], now: float, force: bool, start: str = "--window-start", end: str = "--window-end"
) -> list[str]:
    """Every problem with the times, each a line. `start` and `end` name the flags of the window
    (backfill calls them --from and --to)."""
    problems = []
    if times[end] <= times[start]:
        problems.append(f"{end} must be after {start}")
    if not force:
        for flag, t in times.items():
            if t > now + MAX_AHEAD:
                year = _year(t)
                problems.append(f"{flag} {t} is more than a day in the future ({year}); --force if you mean it")
            elif t < YEAR_2000:
                problems.append(f"{flag} {t} is before 2000 ({_year(t)}); --force if you mean it")
    return problems


def _year(t: int) -> str:
    try:
        return f"in the year {datetime.fromtimestamp(t, timezone.utc).year}"
    except (OverflowError, OSError, ValueError):
        return "far outside any sensible date"


def load_config_arg(config_file: str | None) -> Config:
    """The config named by --config.file or $AEP_EXPORTER_CONFIG; InputError or ConfigError."""
    path = config_file or os.environ.get("AEP_EXPORTER_CONFIG")
    if not path:
        raise InputError("no config file: pass --config.file FILE or set AEP_EXPORTER_CONFIG")
    return load_config(path)


def bad_input(prog: str, error: Exception) -> int:
    """Print an InputError or ConfigError as the operator should see it (no traceback); exit 2."""
    if isinstance(error, ConfigError):
        print(f"{prog}: config error: {error}", file=sys.stderr)
    else:
        for line in str(error).splitlines():
            print(f"{prog}: {line}", file=sys.stderr)
    return 2


def shown_headers(config: Config, sandbox: str) -> dict[str, str]:
    """The headers of POST /runs as --dry-run shows them: the token redacted."""
    return {
        "Authorization": f"Bearer {REDACTED}",
        "x-api-key": config.adobe.client_id,
        "x-gw-ims-org-id": config.adobe.org_id,
        "x-sandbox-name": sandbox.lower(),
        "Content-Type": "application/json",
    }


def request_body(flow_id: str, times: dict[str, int], delta_column: str | None) -> dict:
    """The body exactly as seeds 002/003 show it: unix seconds as strings (runcreate.typed turns
    them into the spec's integers when that is what is sent)."""
    params: dict = {
        "startTime": str(times["--start-time"]),
        "windowStartTime": str(times["--window-start"]),
        "windowEndTime": str(times["--window-end"]),
    }
    if delta_column:
        params["deltaColumn"] = {"name": delta_column}
    return {"flowId": flow_id, "params": params}


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


async def look(client: FlowServiceClient, sandbox: str, run_id: str) -> tuple[RunFacts | None, str]:
    """One look at a run: its facts (None if it could not be seen) and why not, if not."""
    try:
        run = await client.get_run(sandbox, run_id)
    except (ApiError, TokenError) as e:
        return None, f"(could not look: {e})"
    if run is None:
        return None, "(not listed yet)"
    return run_facts(run), ""


def outcome_line(facts: RunFacts) -> str:
    """Records and error codes of a completed run, as trigger and backfill print them."""
    codes = ", ".join(sorted(facts.error_codes)) or "none"
    return (
        f"records in/out/failed {number_text(facts.input_records)}/{number_text(facts.output_records)}/{number_text(facts.failed_records)}; "
        f"error codes: {codes}"
    )


async def _create(
    config, sandbox: str, body: dict, params_as: ParamsAs, wait: bool, timeout: float, interval: float, out: TextIO
) -> int:
    async with open_exporter(config) as exp:
        try:
            run_id, etag = await create_run(exp.client, sandbox, body, params_as, lambda line: _say(PROG, line))
        except CreateError as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 2 if e.refused else 1
        print(f"id: {run_id}", file=out)
        print(f"etag: {etag if etag is not None else '(none given)'}", file=out)
        out.flush()
        if not wait:
            return 0
        return await _follow(exp.client, sandbox, run_id, timeout, interval, out)


async def _follow(client, sandbox: str, run_id: str, timeout: float, interval: float, out: TextIO) -> int:
    """Look at the run every `interval` until it completes: a live line on a terminal, a plain line
    per change otherwise."""
    live = out.isatty()
    started = time.monotonic()
    last_line = ""
    status = "unknown"
    facts = None
    while True:
        elapsed = time.monotonic() - started
        seen, problem = await look(client, sandbox, run_id)
        if seen is not None:
            facts, status = seen, seen.status
        records = facts.input_records if facts and facts.input_records is not None else "-"
        line = f"status={status} elapsed={clock_text(elapsed)} records={records} {problem}".rstrip()
        if live:
            print("\r" + line.ljust(len(last_line)), end="", file=out, flush=True)
        elif _strip_elapsed(line) != _strip_elapsed(last_line):
            print(line, file=out, flush=True)
        last_line = line
        if facts is not None and is_completed(status):
            if live:
                print(file=out)
            print(f"finished: {status} after {clock_text(elapsed)}; {outcome_line(facts)}", file=out)
            return 0 if status == "success" else 1
        if elapsed + interval > timeout:
            if live:
                print(file=out)
            print(f"timed out after {clock_text(elapsed)}; last status {status}", file=out)
            return 1
        await asyncio.sleep(interval)


def _say(prog: str, line: str) -> None:
    print(f"{prog}: {line}", file=sys.stderr, flush=True)


def number_text(v: int | None) -> str:
    return "-" if v is None else str(v)


def clock_text(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _strip_elapsed(line: str) -> str:
    return " ".join(p for p in line.split() if not p.startswith("elapsed="))
