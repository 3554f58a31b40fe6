"""Following a run: looking at it until it completes or the wait runs out, and the words that say
where it stands (shared by `trigger --wait` and `backfill`).

In: a Flow Service client and a run's id. Out: the run's facts from each look, the lines a
person reads (a live line on a terminal, a plain line per change otherwise) and whether the run
succeeded.
"""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

from exporter.adobe.client import ApiError, FlowServiceClient
from exporter.adobe.ims import TokenError
from exporter.adobe.runfacts import RunFacts, is_completed, run_facts


async def look(client: FlowServiceClient, sandbox: str, run_id: str) -> tuple[RunFacts | None, str]:
    """One look at a run: its facts (None if it could not be seen) and why not, if not."""
    try:
        run = await client.get_run(sandbox, run_id)
    except (ApiError, TokenError) as e:
        return None, f"(could not look: {e})"
    if run is None:
        return None, "(not listed yet)"
    return run_facts(run), ""


async def follow(
    client: FlowServiceClient, sandbox: str, run_id: str, timeout: float, interval: float, out: TextIO
) -> bool:
    """Look at the run every `interval` until it completes (True if it succeeded) or `timeout`
    runs out (False): a live line on a terminal, a plain line per change otherwise."""
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
            return status == "success"
        if elapsed + interval > timeout:
            if live:
                print(file=out)
            print(f"timed out after {clock_text(elapsed)}; last status {status}", file=out)
            return False
        await asyncio.sleep(interval)


def outcome_line(facts: RunFacts) -> str:
    """Records and error codes of a completed run."""
    codes = ", ".join(sorted(facts.error_codes)) or "none"
    return (
        f"records in/out/failed {number_text(facts.input_records)}/{number_text(facts.output_records)}/{number_text(facts.failed_records)}; "
        f"error codes: {codes}"
    )


def number_text(v: int | None) -> str:
    """A count as printed: `-` when Adobe gave none."""
    return "-" if v is None else str(v)


def clock_text(seconds: float) -> str:
    """An elapsed time as `4m05s`, or `1h02m03s` from an hour on."""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _strip_elapsed(line: str) -> str:
    return " ".join(p for p in line.split() if not p.startswith("elapsed="))
