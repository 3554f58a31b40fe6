"""Adobe I/O Events against polling alone: how soon an announced run is on /metrics,
and what the Flow Service is asked per hour at 10,000 flows.

    .venv/bin/python bench/events.py            # about 5 minutes; prints a Markdown report
    .venv/bin/python bench/events.py --quick    # smaller and shorter, to try it

1. Latency: 200 flows; the exporter (a real process) with the webhook and the journal; the
   simulator finishes a run, announces it (pushes it, signed, and writes it to its journal, whose
   204s ask for a read every second), and we scrape /metrics every 10 ms until the run's counter
   moves. Then the same with the journal alone.
2. Flow Service requests per hour at 10,000 flows (3 sandboxes, batched strategy, runs finishing
   all along), polling alone against events on (journal), measured over a window with the clock
   compressed COMPRESS times: poll_interval 60 s → 3 s, sweep_interval 15 m → 45 s,
   metadata_refresh 5 m → 15 s, reconcile_interval 1 h → 3 m, announce_grace 5 m → 15 s; one flow
   in ten running every 10-20 min → 30-60 s. Requests in the window, scaled to an hour at the
   real settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run import adobe_and_flows  # noqa: E402  (bench/run.py, beside this file)

from exporter.simulator import (  # noqa: E402
    BASE_PATH,
    JOURNAL_PATH,
    KEYS_PATH,
    EventsHub,
    Simulator,
    World,
    start_simulator,
)

COMPRESS = 20
# Compressed 20 times, 10,000 flows all running every 10-20 minutes would finish 220 runs a second,
# more than this 2-core machine can simulate beside the exporter: one flow in ten runs.
ACTIVE = 10


def config_text(origin: str, world: World, poll: float, events: str, extra: str = "") -> str:
    lines = adobe_and_flows(origin, world)
    lines += [f"poll_interval: {poll}", "lookback: 2h", "request_timeout: 60s", "state_file: null", extra]
    if events:
        lines += ["events:", f"  journal_url: {origin}{JOURNAL_PATH}"]
        if events == "both":
            lines += ["  webhook:", f"    public_key_base_url: {origin}{KEYS_PATH}"]
    return "\n".join(lines) + "\n"


class Exporter:
    def __init__(self, config: str, tmp: str) -> None:
        self.config, self.tmp = config, tmp

    async def __aenter__(self) -> Exporter:
        path = os.path.join(self.tmp, "config.yaml")
        Path(path).write_text(self.config)
        os.chmod(path, 0o600)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "exporter", "--config.file", path, "--web.listen-address", "127.0.0.1:0",
            "--log.level", "warn", stdout=asyncio.subprocess.PIPE, cwd=self.tmp,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode()
        self.url = line.split()[3]
        self.base = self.url.rsplit("/", 1)[0]
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            async with self.session.get(self.base + "/ready") as r:
                if r.status == 200:
                    return self
            await asyncio.sleep(0.2)
        raise RuntimeError("the exporter did not get ready")

    async def counter(self, flow_id: str) -> float:
        async with self.session.get(self.url) as r:
            text = await r.text()
        needle = f'aep_flow_runs_total{{flow_id="{flow_id}",sandbox="sb0",status="failed"}} '
        at = text.find(needle)  # not a parse of the whole page: this process also runs the simulator
        return float(text[at + len(needle) : text.index("\n", at)]) if at >= 0 else 0.0

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        self.proc.terminate()
        await self.proc.wait()


async def latency(n_flows: int, samples: int, events: str, tmp: str) -> list[float]:
    world = World()
    hub = EventsHub(world)
    runner, origin = await start_simulator(Simulator(world, events=hub))
    try:
        flows = [world.add_flow("sb0", f"flow-{i:04d}") for i in range(n_flows)]
        async with Exporter(config_text(origin, world, 60.0, events), tmp) as exp:
            if events == "both":
                hub.webhook_url = exp.base + "/adobe-io-events"
            await asyncio.sleep(3)  # the journal's first read has found the journal's end
            rng = random.Random(18)
            out = []
            for _ in range(samples):
                flow = rng.choice(flows)
                before = await exp.counter(flow.id)
                started = time.monotonic()
                world.finish_run(world.start_run(flow.id).id, "failed")
                while await exp.counter(flow.id) == before:
                    await asyncio.sleep(0.01)
                    if time.monotonic() - started > 60:
                        raise RuntimeError("the announced run never reached /metrics")
                out.append(time.monotonic() - started)
            return out
    finally:
        await runner.cleanup()


def big_world(world: World, n_flows: int) -> list:
    """As bench/run.py's: each flow with two completed runs in the last (compressed) hour; one
    flow in ACTIVE runs every 10-20 (real) minutes, the others are idle."""
    rng = random.Random(1)
    flows = []
    now = world.now_ms()
    for i in range(n_flows):
        period = rng.uniform(600, 1200) / COMPRESS if i % ACTIVE == 0 else None
        flow = world.add_flow(f"sb{i % 3}", f"flow-{i:05d}", period=period, script=[])
        for k in (1, 2):
            r = world.start_run(flow.id, created_ms=now - int(rng.uniform(k * 900, k * 1800) * 1000 / COMPRESS))
            world.finish_run(r.id, "success", completed_ms=r.created_ms + 3000)
        flows.append(flow)
    return flows


async def requests_per_hour(
    n_flows: int, window: float, events: bool, tmp: str, metadata_refresh: float = 300.0
) -> tuple[dict[str, float], int, int]:
    """Flow Service requests per real hour, by endpoint; and the runs counted by events and in
    all, in the window."""
    world = World()
    hub = EventsHub(world, retry_after=max(1, 10 // COMPRESS))
    sim = Simulator(world, events=hub, autopilot=True)
    runner, origin = await start_simulator(sim)
    try:
        big_world(world, n_flows)
        extra = "\n".join(
            [
                f"metadata_refresh: {metadata_refresh / COMPRESS}",
                f"reconcile_interval: {3600 / COMPRESS}",
                f"batch_overlap: {600 / COMPRESS}",
            ]
        )
        text = config_text(origin, world, 60.0 / COMPRESS, "journal" if events else "", extra)
        if events:
            text += f"  sweep_interval: {900 / COMPRESS}\n  quiet_after: {600 / COMPRESS}\n"
            text += f"  announce_grace: {300 / COMPRESS}\n"
        async with Exporter(text, tmp) as exp:
            await asyncio.sleep(10)  # past the baseline and the first incremental cycles
            start = len(sim.requests)
            await asyncio.sleep(window)
            asked = [r for r in sim.requests[start:] if r["path"].startswith(BASE_PATH)]
            async with exp.session.get(exp.url) as r:
                text = await r.text()
        counted = total = 0
        for line in text.splitlines():
            if line.startswith('aep_events_received_total{outcome="counted"'):
                counted += int(float(line.split()[-1]))
            if line.startswith("aep_flow_runs_total{"):
                total += int(float(line.split()[-1]))
        per_hour = 3600 / COMPRESS / window
        flows = sum(1 for r in asked if r["path"].endswith("/flows")) * per_hour
        runs = [r for r in asked if r["path"].endswith("/runs")]
        # Each cycle lists one flow of each sandbox on its own first (the batched strategy's canary).
        canaries = sum(1 for r in runs if any(k == "property" and v.startswith("flowId==") and "," not in v
                                              for k, v in r["query"]))  # fmt: skip
        cycles = canaries / 3
        return (
            {
                "all": len(asked) * per_hour,
                "flows": flows,
                "runs": len(runs) * per_hour,
                "cycles": cycles,
                "per_cycle": len(runs) / cycles if cycles else 0.0,
            },
            counted,
            total,
        )
    finally:
        await runner.cleanup()


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1,000 flows, shorter windows")
    args = p.parse_args()
    n_big, window, samples = (1000, 60.0, 10) if args.quick else (10_000, 90.0, 20)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        hook = await latency(200, samples, "both", tmp)
        journal = await latency(200, samples, "journal", tmp)
        polling, _, _ = await requests_per_hour(n_big, window, False, tmp)
        with_events, counted, total = await requests_per_hour(n_big, window, True, tmp)
        slow_meta, _, _ = await requests_per_hour(n_big, window, True, tmp, metadata_refresh=1800.0)
    print(f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}. "
          f"Took {time.monotonic() - started:.0f} s.\n")  # fmt: skip
    print("| announced by | samples | p50 (ms) | p95 (ms) | max (ms) |\n|---|---:|---:|---:|---:|")
    for name, v in (("webhook (and journal)", hook), ("journal alone (204 retry-after: 1 s)", journal)):
        print(f"| {name} | {len(v)} | {statistics.median(v) * 1000:.0f} | {pct(v, 0.95) * 1000:.0f} | "
              f"{max(v) * 1000:.0f} |")  # fmt: skip
    print(
        f"\n| {n_big:,} flows | cycles in the window (expected) | GET /runs a cycle | measured requests/hour "
        "(GET /runs + GET /flows) | at the real interval: cycles/hour × GET /runs a cycle + GET /flows |"
        "\n|---|---:|---:|---:|---:|"
    )
    rows = (
        ("polling alone (poll_interval 60 s)", polling, 60, window / (60 / COMPRESS)),
        ("events on (sweep_interval 15 m)", with_events, 4, window / (900 / COMPRESS)),
        ("events on, metadata_refresh 30 m", slow_meta, 4, window / (900 / COMPRESS)),
    )
    real = {}
    for name, r, per_hour, expected in rows:
        real[name] = per_hour * r["per_cycle"] + r["flows"]
        print(f"| {name} | {r['cycles']:.0f} ({expected:.0f}) | {r['per_cycle']:.0f} | "
              f"{r['all']:,.0f} ({r['runs']:,.0f} + {r['flows']:,.0f}) | {real[name]:,.0f} |")  # fmt: skip
    first, second = real[rows[0][0]], real[rows[1][0]]
    print(f"\nAt the real intervals, events on asks the Flow Service {first / second:.1f}× less.")
    print(f"With events on, {counted} of the {total} runs counted in the window came by the journal.")


if __name__ == "__main__":
    asyncio.run(main())
