"""`aep-flow-exporter runs`: a flow's recent runs, newest first, one line each, or as Adobe
returned them (`--json`), read over an Adobe session of the command's own with the daemon's
client: its retries, its checks of each answer and its paging budget (exporter/runs/listing.py).

Exit codes: 0 listed (even none); 1 Adobe could not be reached or its listing was unusable;
2 bad input, or Adobe refused the request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from exporter.adobe.client import ApiError
from exporter.adobe.ims import TokenError
from exporter.adobe.session import open_adobe
from exporter.cli.common import InputError, add_flow_args, add_log_arg, bad_input, load_config_arg
from exporter.config import FLOW_ID_RE, Config, ConfigError, parse_duration
from exporter.runs.listing import Question, answer, rows
from exporter.support.logs import setup_logging

PROG = "aep-flow-exporter runs"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="List a dataflow's recent runs, newest first.")
    add_flow_args(p)
    p.add_argument("--since", default="7d", metavar="DURATION", help="runs created in this past (default 7d)")
    p.add_argument("--status", metavar="STATUS", help="only runs with this status, e.g. failed, success, inProgress")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs, the newest (default 20)")
    p.add_argument("--json", action="store_true", help="print the runs as Adobe returned them, one JSON document")
    add_log_arg(p)
    return p


def main(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "text")
    try:
        problems = []
        if not FLOW_ID_RE.match(args.flow):
            problems.append(f"--flow: not a flow ID (expected a UUID), got {args.flow!r}")
        try:
            since = parse_duration(args.since)
        except ValueError as e:
            problems.append(f"--since: {e}")
        if args.limit < 1:
            problems.append(f"--limit must be at least 1, got {args.limit}")
        if problems:
            raise InputError("\n".join(problems))
        config = load_config_arg(args.config_file)
    except (InputError, ConfigError) as e:
        return bad_input(PROG, e)
    question = Question(args.flow, time.time() - since, args.status, args.limit)
    return asyncio.run(_list(config, args.sandbox, question, args.json, out))


async def _list(config: Config, sandbox: str, question: Question, as_json: bool, out: TextIO) -> int:
    properties = [f"flowId=={question.flow}", f"createdAt>{int(question.since * 1000)}"]
    async with open_adobe(config) as adobe:
        try:
            listed = await adobe.client.find_run_items(sandbox, properties)
        except (ApiError, TokenError) as e:
            print(f"{PROG}: could not list the runs: {e}", file=sys.stderr)
            refused = isinstance(e, ApiError) and e.status is not None and 400 <= e.status < 500
            return 2 if refused else 1
    kept, strays = answer(question, listed)
    if strays:
        print(
            f"{PROG}: left out {strays} listed item(s) that are not runs of the flow created in --since",
            file=sys.stderr,
        )
    if as_json:
        print(json.dumps({"items": [item for _, item in kept]}, indent=1), file=out)
    elif not kept:
        print("no runs", file=out)
    else:
        for line in rows(kept):
            print(line, file=out)
    return 0
