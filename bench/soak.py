"""The soak benchmark: a day (or more) of simulated time in a few minutes, then two questions:
does memory stay flat, and do the counters still equal the simulator's ground truth?

    make soak
    .venv/bin/python bench/soak.py [--hours 24] [--flows 1000] [--poll-interval 600] [--strategy batched]

The exporter runs in this process (exporter.runtime.open_exporter, the daemon's wiring) against the
simulator on loopback. One fake clock drives the simulated Adobe (its clock, token expiry, run
times), the poller and the token provider, so a 10-minute poll interval (the default: 144 cycles a
day) costs only the real time of a cycle. Every simulated minute, runs of each flow start (every 5-15 minutes) and finish (after 1-10
minutes: 80% success, 15% partial, 5% failed); every `--churn-every` hours some flows are deleted
in Adobe and dropped from the config, and as many new ones created and added (a config reload).
Adobe answers 1% of requests with a 5xx; its tokens live `--token-lifetime` seconds; it forgets
completed runs past `--retention`; the exporter's `lookback` is shorter than the run, so its ledger
prunes all along; the batched strategy lists the whole window every simulated `reconcile_interval`
(its schedule is on the monotonic clock, so the soak makes it due); the state file is written every
cycle.

Ground truth is kept by the driver as runs finish, never read from the exporter: a flow's counters
must equal what its runs that finished after its first poll add up to (the first poll is the
baseline: runs already completed then are not counted). That holds for flows added midway too:
their baseline is their first poll. Flows removed midway must have left /metrics.

Memory: the process's current RSS (VmRSS) after every cycle; the reference is the peak within the
first `--warmup` hours (1 by default), the result the peak to the end. The lookback (30 minutes)
and the simulator's retention (40 minutes) are shorter than the warm-up on purpose: then every
structure has reached its working size within the warm-up, and growth after it is a leak, not a
window filling up. `--tracemalloc` adds the allocation sites that grew most between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from exporter import memory  # noqa: E402
from exporter.config import AdobeConfig, Config, SandboxConfig  # noqa: E402
from exporter.logs import setup_logging  # noqa: E402
from exporter.retry import RetryPolicy  # noqa: E402
from exporter.runtime import Exporter, open_exporter  # noqa: E402
from exporter.secrets import Secret  # noqa: E402
from exporter.simulator import BASE_PATH, TOKEN_PATH, Chaos, Simulator, World, start_simulator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_world import MINUTE, SANDBOXES, SUMS, Driver, FakeClock, bump  # noqa: E402

HOUR = 3600.0
RETRY = RetryPolicy(max_attempts=4, max_elapsed=10.0, base_delay=0.01, max_delay=0.05)


def make_config(origin: str, world: World, watched: dict[str, str], args: argparse.Namespace, state: str) -> Config:
    return Config(
        adobe=AdobeConfig(
            client_id=world.client_id,
            client_secret=Secret(world.client_secret),
            org_id=world.org_id,
            token_url=origin + TOKEN_PATH,
            base_url=origin + BASE_PATH,
        ),
        sandboxes=sandboxes_of(watched),
        poll_interval=args.poll_interval,
        lookback=args.lookback,
        fetch_strategy=args.strategy,
        state_file=state,
    )


def sandboxes_of(watched: dict[str, str]) -> tuple[SandboxConfig, ...]:
    return tuple(SandboxConfig(s, tuple(f for f, sb in watched.items() if sb == s)) for s in SANDBOXES)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def served(exp: Exporter) -> tuple[dict[str, dict], set[str]]:
    """Each flow's counters as /metrics serves them now, in Truth.view()'s shape (zeros left out),
    and every flow id any series names."""
    body, _ = exp.render.body("text/plain", "")
    out: dict[str, dict] = {}
    present: set[str] = set()
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            flow_id = s.labels.get("flow_id")
            if flow_id is not None:
                present.add(flow_id)
            if flow_id is None or not s.name.startswith("aep_flow_") or not s.name.endswith("_total") or not s.value:
                continue
            view = out.setdefault(flow_id, {"runs": {}, "sums": {}, "run_errors": {}, "error_records": {}})
            name = s.name[len("aep_flow_") : -len("_total")]
            if name == "runs":
                view["runs"][s.labels["status"]] = int(s.value)
            elif name in ("run_errors", "error_records"):
                view[name][s.labels["code"]] = int(s.value)
            elif name in SUMS:
                view["sums"][name] = int(s.value)
    return out, present


async def soak(args: argparse.Namespace, tmp: str) -> dict:
    memory.tune()  # as the daemon does at start (exporter/cli.py serve)
    rng = random.Random(args.seed)
    clock = FakeClock(time.time())
    world = World(clock=clock, token_lifetime=args.token_lifetime, seed=args.seed)
    sim = Simulator(world, max_page_size=100, retention=args.retention)
    sim.sweep_every = 5 * MINUTE
    runner, origin = await start_simulator(sim)
    driver = Driver(world, clock, rng)
    driver.add_flows(args.flows)
    for _ in range(60):  # an hour of history before the exporter starts
        driver.minute()
    config = make_config(origin, world, driver.watched, args, os.path.join(tmp, "state.json"))
    sim.chaos = Chaos(server_error=args.server_errors, seed=args.seed)
    try:
        async with open_exporter(config, RETRY, persist=True) as exp:
            exp.poller.clock = clock
            exp.tokens._clock = clock  # type: ignore[attr-defined]  # one clock for the whole day
            result = await run_day(args, exp, sim, driver)
            result["check"] = compare(driver, *served(exp))
            result["tokens_issued"] = world.tokens_issued
            result["retries"] = sum(api_retries(exp).values())
            result["driver"] = driver
            return result
    finally:
        await runner.cleanup()


async def run_day(args: argparse.Namespace, exp: Exporter, sim: Simulator, driver: Driver) -> dict:
    """Poll, let the world move a poll interval on, again, until the simulated hours are over;
    the last poll comes after the world's last move, in calm (no new runs, no faults)."""
    clock, t0, end = driver.clock, driver.clock.now, args.hours * HOUR
    started, samples, snap, types, cycles = time.monotonic(), [], None, {}, 0
    spent = {"poll": 0.0, "after_cycle": 0.0, "world": 0.0}
    held = {"simulator": 0, "ledger": 0}  # the most runs each held at once
    churn_cycles = max(1, round(args.churn_every * HOUR / args.poll_interval))
    reconcile_cycles = max(1, round(exp.config.reconcile_interval / args.poll_interval))
    while True:
        elapsed = clock.now - t0
        if cycles and cycles % churn_cycles == 0 and elapsed < end - 3 * args.poll_interval:
            churn(exp, driver, args.churn)
        if elapsed >= end - 2 * args.poll_interval:
            sim.chaos = None  # calm at the very end: the last polls see everything
        if elapsed >= end - 3 * args.poll_interval:
            driver.starting = False  # no new runs: those in flight finish before the end
        if cycles and cycles % reconcile_cycles == 0:
            for caps in exp.poller.capabilities.values():  # its schedule is on the monotonic clock:
                caps.last_reconcile = None  # due every simulated reconcile_interval instead
        t = time.monotonic()
        await exp.poller.poll_once()
        spent["poll"] += time.monotonic() - t
        t = time.monotonic()
        await exp.after_cycle()
        spent["after_cycle"] += time.monotonic() - t
        driver.baselined(exp)
        cycles += 1
        samples.append((elapsed / HOUR, rss_kb(), sys.getallocatedblocks()))
        held["simulator"] = max(held["simulator"], len(sim.world.runs))
        held["ledger"] = max(held["ledger"], sum(len(s.seen) for s in exp.ledger.flows.values()))
        if tracemalloc.is_tracing() and snap is None and elapsed >= args.warmup * HOUR:
            snap, types = tracemalloc.take_snapshot(), type_counts()
        if cycles % 24 == 0:
            log_progress(elapsed, samples, driver, started)
        if elapsed >= end:
            break
        t = time.monotonic()
        for _ in range(max(1, round(args.poll_interval / MINUTE))):
            sim.forget()
            driver.minute()
        spent["world"] += time.monotonic() - t
    result = {
        "cycles": cycles,
        "real_seconds": time.monotonic() - started,
        "samples": samples,
        "spent": spent,
        "held": held,
    }
    if snap is not None:
        result["growth"] = tracemalloc.take_snapshot().compare_to(snap, "lineno")[:15]
        now = type_counts()
        result["types"] = sorted(((now[k] - types.get(k, 0), k) for k in now), reverse=True)[:10]
    return result


def type_counts() -> dict[str, int]:
    """Live objects by type name (gc-tracked ones): which kind of object grows."""
    counts: dict[str, int] = {}
    for o in gc.get_objects():
        bump(counts, type(o).__qualname__, 1)
    return counts


def churn(exp: Exporter, driver: Driver, n: int) -> None:
    """n flows deleted in Adobe and dropped from the config, n new ones created and added: a reload."""
    driver.remove_flows(n)
    driver.add_flows(n)
    tokens = exp.tokens
    exp.reload(dataclasses.replace(exp.config, sandboxes=sandboxes_of(driver.watched)))
    assert exp.tokens is tokens, "a reload replaced the token provider: its clock would be lost"


def api_retries(exp: Exporter) -> dict:
    return {
        tuple(s.labels.items()): s.value
        for fam in exp.metrics.api_retries.collect()
        for s in fam.samples
        if s.name.endswith("_total")
    }


def log_progress(elapsed: float, samples: list, driver: Driver, started: float) -> None:
    rss = samples[-1][1] / 1024
    print(
        f"  {elapsed / HOUR:5.1f} h simulated, {time.monotonic() - started:5.0f} s real: RSS {rss:.1f} MB, "
        f"{len(driver.watched)} flows, {driver.finished} runs finished",
        flush=True,
    )


def compare(driver: Driver, seen: dict[str, dict], present: set[str]) -> dict:
    """Every watched flow's served counters against its truth; removed flows must be gone."""
    differ = {f: (seen.get(f), t.view()) for f, t in driver.truth.items() if seen.get(f, _EMPTY) != t.view()}
    unbaselined = [f for f in driver.watched if f not in driver.truth]
    lingering = [f for f in driver.removed if f in present]
    counted = sum(sum(t.runs.values()) for t in driver.truth.values())
    return {
        "flows": len(driver.truth),
        "differ": differ,
        "unbaselined": unbaselined,
        "lingering": lingering,
        "runs": counted,
    }


_EMPTY = {"runs": {}, "sums": {}, "run_errors": {}, "error_records": {}}


def report(args: argparse.Namespace, r: dict) -> tuple[str, bool]:
    """The result as Markdown, and whether it passed."""
    samples = r["samples"]
    warm = max(kb for h, kb, _ in samples if h <= args.warmup)
    blocks_warm = max(b for h, _, b in samples if h <= args.warmup)
    blocks_end = max(b for h, _, b in samples if h >= samples[-1][0] - 1)
    peak = max(kb for _, kb, _ in samples)
    last_hour = max(kb for h, kb, _ in samples if h >= samples[-1][0] - 1)
    growth = peak / warm - 1
    c, d = r["check"], r["driver"]
    ok = growth < 0.05 and not c["differ"] and not c["unbaselined"] and not c["lingering"]
    hourly: dict[int, int] = {}
    blocks: dict[int, int] = {}
    for h, kb, b in samples:
        hourly[int(h)] = max(hourly.get(int(h), 0), kb)
        blocks[int(h)] = max(blocks.get(int(h), 0), b)
    lines = [
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}. "
        f"{args.hours:g} simulated hours in {r['real_seconds']:.0f} s real ({r['cycles']} cycles, "
        f"{args.strategy}, poll every {args.poll_interval:g} s simulated).",
        "",
        "| what | measured | |",
        "|---|---|---|",
        f"| flows watched (at the end / removed / added midway) | {len(d.watched):,} / {len(d.removed)} / "
        f"{len(d.removed)} | |",
        f"| runs finished in Adobe / counted by the truth (flows watched at the end) | {d.finished:,} / {c['runs']:,} | |",
        f"| flows whose counters differ from the ground truth | {len(c['differ'])} of {c['flows']:,} | "
        f"{'met' if not c['differ'] else '**not met**'} |",
        f"| watched flows never baselined / removed flows still on /metrics | {len(c['unbaselined'])} / "
        f"{len(c['lingering'])} | {'met' if not (c['unbaselined'] or c['lingering']) else '**not met**'} |",
        f"| RSS peak in the first {args.warmup:g} h / to the end / in the last hour | {warm / 1024:.1f} / "
        f"{peak / 1024:.1f} / {last_hour / 1024:.1f} MB | |",
        f"| growth of the peak after the first {args.warmup:g} h | **{growth * 100:+.1f}%** (limit +5%) | "
        f"{'met' if growth < 0.05 else '**not met**'} |",
        f"| live Python objects (pymalloc blocks), peak in the first {args.warmup:g} h / in the last hour | "
        f"{blocks_warm:,} / {blocks_end:,} ({(blocks_end / blocks_warm - 1) * 100:+.1f}%) | |",
        f"| IMS tokens issued / API retries (1% 5xx) | {r['tokens_issued']} / {r['retries']:.0f} | |",
        f"| most runs held at once: simulator / exporter's ledger | {r['held']['simulator']:,} / "
        f"{r['held']['ledger']:,} | |",
        "",
        f"Real seconds per cycle: poll {r['spent']['poll'] / r['cycles']:.2f}, save + render "
        f"{r['spent']['after_cycle'] / r['cycles']:.2f}, the simulated world {r['spent']['world'] / r['cycles']:.2f}.",
        "",
        "RSS peak per simulated hour (MB): " + ", ".join(f"{hourly[h] / 1024:.0f}" for h in sorted(hourly)),
        "",
        "Live pymalloc blocks, peak per simulated hour (thousands): "
        + ", ".join(f"{blocks[h] / 1000:.0f}" for h in sorted(blocks)),
    ]
    for flow_id, (got, want) in list(c["differ"].items())[:5]:
        lines += ["", f"- flow {flow_id}: served {got}, truth {want}"]
    if "growth" in r:
        lines += ["", "Allocation sites that grew most after the warm-up (tracemalloc):", ""]
        lines += [f"    {stat}" for stat in r["growth"]]
        lines += ["", "Live objects that grew most after the warm-up (by type):", ""]
        lines += [f"    {n:+d} {name}" for n, name in r["types"]]
    return "\n".join(lines) + "\n", ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours the exporter runs")
    p.add_argument("--flows", type=int, default=1000)
    p.add_argument("--strategy", choices=("batched", "per_flow"), default="batched")
    p.add_argument("--poll-interval", type=float, default=600.0, help="simulated seconds between polls")
    p.add_argument("--lookback", type=float, default=30 * MINUTE, help="the exporter's lookback (s)")
    p.add_argument("--retention", type=float, default=40 * MINUTE, help="the simulator forgets runs past this (s)")
    p.add_argument("--token-lifetime", type=float, default=10 * MINUTE, help="IMS token lifetime (s)")
    p.add_argument("--server-errors", type=float, default=0.01, help="share of requests answered 5xx")
    p.add_argument("--churn-every", type=float, default=3.0, help="hours between flow removals/additions")
    p.add_argument("--churn", type=int, default=20, help="flows removed and added each time")
    p.add_argument("--warmup", type=float, default=1.0, help="hours whose RSS peak is the reference")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tracemalloc", action="store_true", help="also list the allocation sites that grew most")
    p.add_argument("--out", help="also write the Markdown result to this file")
    args = p.parse_args()
    if args.tracemalloc:
        tracemalloc.start(1)
    with tempfile.TemporaryDirectory(prefix="aep-soak-") as tmp:
        log_file = open(os.path.join(tmp, "exporter.log"), "w")
        setup_logging("info", stream=log_file)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        result = asyncio.run(soak(args, tmp))
        log_file.close()
    text, ok = report(args, result)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
