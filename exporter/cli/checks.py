"""`--once` and `--check`: one pass over the config's flows, for a person or a cron job.

A validated config in (and the shard, for --once); out: the exposition text (--once) or a line
per flow and sandbox (--check) on stdout, and the exit status: 1 when something is not fine.
"""

from __future__ import annotations

import asyncio
import sys
import time

from prometheus_client.exposition import generate_latest

from exporter.adobe.client import ApiError, NotFound
from exporter.adobe.continuation import ListingStats
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Flow
from exporter.config import Config, SandboxConfig
from exporter.config.shard import Shard
from exporter.fetch.capabilities import Capabilities
from exporter.fetch.names import lookup
from exporter.fetch.probe import one_flow, verdict
from exporter.runtime import Exporter, open_exporter


async def once(config: Config, shard: Shard | None = None) -> int:
    """One full poll; the exposition text on stdout. Exit 1 if any flow could not be polled."""
    async with open_exporter(config, shard=shard) as exp:
        await exp.poller.poll_once()
        sys.stdout.write(generate_latest(exp.registry).decode("utf-8"))
        sys.stdout.flush()
        down = [f for f in exp.ledger.flows.values() if not f.up and not f.gone]
        return 1 if down else 0


async def check(config: Config) -> int:
    """Token, then each flow once: a line each, 'ok' or what is wrong."""
    async with open_exporter(config) as exp:
        return await _check(exp)


async def _check(exp: Exporter) -> int:
    try:
        await exp.tokens.token()
    except TokenError as e:
        print(f"FAIL  token  {e}")
        return 1
    print(f"ok    token  obtained from {exp.config.adobe.token_url}")

    async def one(sandbox: str, flow_id: str) -> tuple[bool, str]:
        try:
            flow = await exp.client.get_flow(sandbox, flow_id)
        except NotFound:
            return False, "not found (404): deleted, or hidden from this credential by access labels"
        except (ApiError, TokenError) as e:
            return False, str(e)
        found[(sandbox, flow_id)] = flow
        return True, f"{flow.name or '(no name)'} [{flow.state or 'state unknown'}]"

    async def discover(sandbox: SandboxConfig) -> tuple[bool, str]:
        if not await exp.poller.discover(sandbox):
            return False, "discovery failed (see the log line above)"
        return True, f"discovery found {len(exp.ledger.discovered(sandbox.name))} flow(s)"

    found: dict[tuple[str, str], Flow] = {}
    discovering = [s for s in exp.config.sandboxes if s.discover is not None]
    flows = exp.config.watched_flows()
    results = await asyncio.gather(*(discover(s) for s in discovering), *(one(s, f) for s, f in flows))
    rows = [(s.name, "(discover)") for s in discovering] + flows
    names = await _names(exp, found)
    for (sandbox, flow_id), (ok, what) in zip(rows, results):
        route = f"  {names[sandbox, flow_id]}" if (sandbox, flow_id) in names else ""
        print(f"{'ok  ' if ok else 'FAIL'}  {sandbox}  {flow_id}  {what}{route}")
    # The daemon's first cycle, every page of it, into this run's own ledger (no state file):
    # what it learns is the verdict the daemon will reach.
    await exp.poller.poll_once()
    for s in exp.config.sandboxes:
        print(f"info  {s.name}  (api)  {await _capabilities(exp, s)}")
    return 0 if all(ok for ok, _ in results) else 1


async def _names(exp: Exporter, found: dict[tuple[str, str], Flow]) -> dict[tuple[str, str], str]:
    """'Amazon S3 → Data Lake (dataset …)' for each flow found (names are decoration: a lookup
    that fails prints '?' and fails nothing)."""
    out = {}
    for sandbox in {s for s, _ in found}:
        mine = {f: flow for (s, f), flow in found.items() if s == sandbox}
        names = await lookup(exp.poller.ctx, sandbox, list(mine.values()))
        for flow_id, flow in mine.items():
            out[sandbox, flow_id] = names[flow.id].describe()
    return out


async def _capabilities(exp: Exporter, sandbox: SandboxConfig) -> str:
    """What the sandbox's first cycle (just run, as the daemon's first runs) found of what the
    batched strategy relies on, and what single flows' listings show of orderby (probe.py)."""
    flows = exp.poller.flows_of(sandbox)
    after_ms = int((time.time() - exp.config.lookback) * 1000)
    try:
        alone = await one_flow(exp.client, sandbox.name, flows, after_ms)
    except (ApiError, TokenError) as e:
        return f"could not be probed: {e}"
    polled = exp.ledger.sandboxes.get(sandbox.name)
    found = verdict(
        exp.poller.capabilities.get(sandbox.name, Capabilities()),
        exp.client.listing_stats.get(sandbox.name, ListingStats()),
        exp.client.longest_token_ids.get(sandbox.name, 0),
        polled.strategy if polled is not None else None,
        alone,
    )
    states = [exp.ledger.flows.get((sandbox.name, f)) for f in flows]
    up = sum(1 for s in states if s is not None and (s.up or s.gone))
    return f"first cycle: {up} of {len(flows)} flow(s) polled; {found.describe(exp.config.fetch_strategy)}"
