"""`aep-flow-exporter retry`: retry a failed run as Adobe's tutorial "Retry failed dataflow runs"
documents it (POST /runs/{RUN_ID}/action?op=re-trigger), optionally wait for the new run.

Before anything is sent, the run is looked at: it must exist in the sandbox, belong to one of its
flows, and be retryable (failed, or succeeded with zero records ingested); otherwise the command
says why and sends nothing (exit 2). Never two retries of one run: a note written before the POST
(exporter/runs/sent.py) and the flow's runs created since are looked at first, so a retry whose
answer was lost is found again, by this start or the next, instead of being sent twice. The
retry itself is exporter/runs/retry.py (shared with backfill), over an Adobe session of the
command's own.

Exit codes: 0 retried, or found already retried (with --wait: its run succeeded); 1 the new run
failed or timed out, the answer was lost and the retry not found yet, or Adobe could not be
reached; 2 bad input, a run that cannot be retried, or Adobe refused the retry.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from exporter.adobe.client import ApiError, FlowServiceClient, NotFound
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Run
from exporter.adobe.runfacts import run_facts
from exporter.adobe.session import open_adobe
from exporter.cli.common import InputError, add_config_arg, add_log_arg, add_wait_args, bad_input, load_config_arg
from exporter.config import Config, ConfigError, parse_duration
from exporter.runs.create import printable, shown_headers
from exporter.runs.follow import follow
from exporter.runs.post import PostError
from exporter.runs.retry import LOOKUP_SLACK, OPS, Op, find_retry, not_retryable, retrigger
from exporter.runs.sent import RetryNote
from exporter.support.logs import setup_logging

PROG = "aep-flow-exporter retry"
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOOKS = 3  # looks at the flow's runs after a lost answer, --wait-interval apart


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Retry a failed dataflow run (batch sources only), optionally wait for the new run.",
    )
    add_config_arg(p)
    p.add_argument("--sandbox", required=True, help="sandbox of the run's flow")
    p.add_argument("--run", required=True, metavar="RUN_ID", help="ID of the run to retry")
    p.add_argument("--wait", action="store_true", help="follow the new run until it completes")
    p.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
    add_wait_args(p)
    add_log_arg(p)
    return p


def main(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "text")
    try:
        if not RUN_ID_RE.match(args.run):
            raise InputError(f"--run: not a run ID, got {args.run!r}")
        try:
            timeout, interval = parse_duration(args.wait_timeout), parse_duration(args.wait_interval)
        except ValueError as e:
            raise InputError(f"--wait-timeout/--wait-interval: {e}") from None
        config = load_config_arg(args.config_file)
    except (InputError, ConfigError) as e:
        return bad_input(PROG, e)
    if args.dry_run:
        print(f"POST {config.adobe.base_url}/runs/{args.run}/action?op={OPS[0]}", file=out)
        for k, v in shown_headers(config, args.sandbox).items():
            print(f"{k}: {v}", file=out)
        print(f"\n(op={OPS[1]} once more if Adobe refuses the spelling; nothing sent)", file=out)
        return 0
    return asyncio.run(_retry(config, args.sandbox, args.run, args.wait, timeout, interval, out))


async def _retry(
    config: Config, sandbox: str, run_id: str, wait: bool, timeout: float, interval: float, out: TextIO
) -> int:
    note = RetryNote.open(config.state_file, run_id)
    async with open_adobe(config) as adobe:
        client = adobe.client
        try:
            failed = await _checked(client, sandbox, run_id)
            new_id = await _earlier(client, sandbox, failed, note)
        except (ApiError, TokenError) as e:
            return _fail(f"could not look at run {run_id}: {e}", 2 if isinstance(e, NotFound) else 1)
        except InputError as e:
            return _fail(str(e), 2)
        if new_id is not None:
            _say(
                f"run {run_id} was already retried as run {printable(new_id)}: nothing sent "
                "(should that run fail, retry it in turn)"
            )
        else:
            sent = await _send(client, sandbox, failed, note, interval)
            if isinstance(sent, int):
                return sent
            new_id = sent
        print(f"id: {printable(new_id)}", file=out, flush=True)
        if not wait:
            return 0
        return 0 if await follow(client, sandbox, new_id, timeout, interval, out) else 1


async def _checked(client: FlowServiceClient, sandbox: str, run_id: str) -> Run:
    """The run, if it exists in the sandbox, belongs to one of its flows and can be retried;
    InputError (in plain words) otherwise."""
    run = await client.get_run(sandbox, run_id)
    if run is None:
        raise InputError(f"no run {run_id} in sandbox {sandbox}")
    if not run.flow_id:
        raise InputError(f"Adobe's answer names no flow for run {run_id}")
    try:
        await client.get_flow(sandbox, run.flow_id)
    except NotFound:
        raise InputError(
            f"run {run_id} belongs to flow {printable(run.flow_id)}, not one of sandbox {sandbox}"
        ) from None
    why = not_retryable(run_facts(run))
    if why:
        raise InputError(f"run {run_id} cannot be retried: {why}; nothing sent")
    return run


async def _earlier(client: FlowServiceClient, sandbox: str, failed: Run, note: RetryNote) -> str | None:
    """A retry of `failed` that was already made: the one the note names, else one the flow's
    runs show (created since the note's POST, or, with no note, after the failed run and of its
    window); None if there is none."""
    if note.new_run_id:
        return note.new_run_id
    if note.sent_at is not None:
        found = await find_retry(client, sandbox, failed, note.sent_at - LOOKUP_SLACK)
    elif failed.window_end_param is not None and failed.created is not None:
        found = await find_retry(client, sandbox, failed, failed.created)
    else:
        return None
    if found is not None:
        note.new_run_id = found.id
        _save(note)
    return found.id if found is not None else None


async def _send(client: FlowServiceClient, sandbox: str, failed: Run, note: RetryNote, interval: float) -> str | int:
    """The new run's id, or the exit code. The note is written before the POST: a lost answer
    (or a kill) is looked up by the next start, never sent again blind."""
    note.sent_at, note.new_run_id = time.time(), None
    try:
        note.save()
    except OSError as e:
        return _fail(f"cannot write {note.path}: {e.strerror or e}; nothing sent", 1)
    try:
        new_id, _ = await retrigger(client, sandbox, failed.id, Op(), _say)
    except PostError as e:
        if not e.may_have_acted:
            note.remove()
            return _fail(printable(str(e)), 2 if e.refused else 1)
        _say(f"{printable(str(e))}; looking for the retry among the flow's runs")
        new_id = ""
    if new_id in ("", failed.id):  # no answer, or the spec's "updated flow run" naming the old one
        found = await _look_again(client, sandbox, failed, note.sent_at, interval)
        if found is None:
            return _fail(
                f"the retry's answer was lost and no new run of the flow shows yet; run the same command "
                f"again later: it looks again before sending anything ({note.path})",
                1,
            )
        new_id = found
    note.new_run_id = new_id
    _save(note)
    return new_id


async def _look_again(
    client: FlowServiceClient, sandbox: str, failed: Run, sent_at: float, interval: float
) -> str | None:
    for look in range(LOOKS):
        try:
            found = await find_retry(client, sandbox, failed, sent_at - LOOKUP_SLACK)
        except (ApiError, TokenError) as e:
            _say(f"could not look for the retry ({e})")
            found = None
        if found is not None:
            return found.id
        if look + 1 < LOOKS:
            await asyncio.sleep(interval)  # give Adobe's listing time to show it
    return None


def _save(note: RetryNote) -> None:
    try:
        note.save()
    except OSError as e:
        _say(f"cannot write {note.path}: {e.strerror or e}")


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


def _say(line: str) -> None:
    """A notice for the operator: stderr, beside the run's lines on stdout."""
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)
