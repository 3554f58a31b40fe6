"""The soak benchmark: a day (or more) of simulated time in a few minutes, then two questions:
does memory stay flat, and do the counters still equal the simulator's ground truth?

    make soak
    .venv/bin/python bench/soak.py [--hours 24] [--flows 1000] [--poll-interval 600] [--strategy batched]

The exporter runs in a process of its own (bench/soak_exporter.py: exporter.runtime.open_exporter,
the daemon's wiring, and exporter.support.tuning.tune, as its start does), driven over a socket pair; this
process holds the simulated Adobe on loopback and the driver. So the exporter's RSS is its own. One
fake clock drives the simulated Adobe (its clock, token expiry, run times), the poller and the token
provider (the driver sends its time with each cycle), so a 10-minute poll interval (the default:
144 cycles a day) costs only the real time of a cycle. Every simulated minute, runs of each flow
start (every 5-15 minutes) and finish (after 1-10 minutes: 80% success, 15% partial, 5% failed;
a flow's first three runs after its baseline end once each way, so each flow has all its series
within the warm-up); every `--churn-every` hours some flows are deleted in Adobe and dropped from
the config, and as many new ones created and added (a config reload). Adobe answers 1% of
requests with a 5xx; its tokens live `--token-lifetime` seconds; it forgets completed runs past
`--retention`; the exporter's `lookback` is shorter than the run, so its ledger prunes all along;
the batched strategy lists the whole window every simulated `reconcile_interval` (its schedule is
on the monotonic clock, so the soak makes it due); the state file is written every cycle.

Ground truth is kept by the driver as runs finish, never read from the exporter: a flow's counters
must equal what its runs that finished after its first poll add up to (the first poll is the
baseline: runs already completed then are not counted). That holds for flows added midway too:
their baseline is their first poll. Flows removed midway must have left /metrics.

Memory: the exporter process's current RSS (VmRSS) after every cycle; the reference is the peak
within the first `--warmup` hours (1 by default), the result the peak to the end. The lookback
(30 minutes) and the simulator's retention (40 minutes) are shorter than the warm-up on purpose:
then every structure has reached its working size within the warm-up, and growth after it is a
leak, not a window filling up. Beside it, per hour: RSS anonymous and file-backed, pymalloc's
arenas against the bytes in its live blocks (the gap is fragmentation: an arena is given back
only when wholly empty), glibc's heap (mallinfo2), the series on /metrics, and the simulator
process's RSS. `--tracemalloc` adds the allocation sites that grew most between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.simulator import BASE_PATH, TOKEN_PATH, Chaos, Simulator, World, start_simulator  # noqa: E402
from exporter.support import tuning  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_world import MINUTE, Driver, FakeClock, proc_status  # noqa: E402

HOUR = 3600.0
# The exporter's heap by allocator (kB, bench/soak_exporter.py allocators()), reported per hour.
ALLOCATORS = {
    "pymalloc": "pymalloc's arenas",
    "pymalloc_high": "pymalloc's arenas, high-water mark",
    "pymalloc_used": "pymalloc's live blocks",
    "glibc_used": "glibc's heap in use",
    "glibc_free": "glibc's heap free (its whole pages given back by malloc_trim)",
    "glibc_mapped": "glibc's blocks mapped on their own",
}


class ExporterProcess:
    """bench/soak_exporter.py in a child process, driven command by command over a socket pair."""

    def __init__(self, tmp: str, trace: bool) -> None:
        mine, theirs = socket.socketpair()
        self.conn = Connection(mine.detach())
        script, log = str(ROOT / "bench" / "soak_exporter.py"), os.path.join(tmp, "exporter.log")
        fd = theirs.fileno()
        self.proc = subprocess.Popen([sys.executable, script, str(fd), log, "1" if trace else "0"], pass_fds=[fd])
        theirs.close()

    async def ask(self, *command: Any) -> Any:
        """Send a command and wait for its answer; the simulator goes on serving meanwhile."""
        return await self.exchange(command)

    async def start(self, spec: dict) -> dict:
        return await self.exchange(spec)

    async def exchange(self, message: Any) -> Any:
        def send_and_receive() -> Any:
            self.conn.send(message)
            return self.conn.recv()

        return await asyncio.to_thread(send_and_receive)

    def close(self) -> None:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.conn.close()


async def soak(args: argparse.Namespace, tmp: str) -> dict:
    tuning.tune()  # the simulator is the demo's, and the demo's process is the exporter's
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
    spec = {
        "origin": origin,
        "token_path": TOKEN_PATH,
        "base_path": BASE_PATH,
        "client_id": world.client_id,
        "client_secret": world.client_secret,
        "org_id": world.org_id,
        "watched": dict(driver.watched),
        "poll_interval": args.poll_interval,
        "lookback": args.lookback,
        "strategy": args.strategy,
        "state_file": os.path.join(tmp, "state.json"),
        "now": clock.now,
    }
    sim.chaos = Chaos(server_error=args.server_errors, seed=args.seed)
    exporter = ExporterProcess(tmp, args.tracemalloc)
    try:
        ready = await exporter.start(spec)
        result = await run_day(args, exporter, ready["reconcile_interval"], sim, driver)
        seen, present, retries = await exporter.ask("served")
        result["check"] = compare(driver, seen, present)
        result["tokens_issued"] = world.tokens_issued
        result["retries"] = retries
        result["driver"] = driver
        if args.tracemalloc:
            result["growth"] = await exporter.ask("growth")
        await exporter.ask("stop")
        return result
    finally:
        exporter.close()
        await runner.cleanup()


async def run_day(
    args: argparse.Namespace, exporter: ExporterProcess, reconcile_interval: float, sim: Simulator, driver: Driver
) -> dict:
    """Poll, let the world move a poll interval on, again, until the simulated hours are over;
    the last poll comes after the world's last move, in calm (no new runs, no faults)."""
    clock, t0, end = driver.clock, driver.clock.now, args.hours * HOUR
    started, samples, snapped, cycles = time.monotonic(), [], False, 0
    spent = {"poll": 0.0, "after_cycle": 0.0, "world": 0.0}
    held = {"simulator": 0, "ledger": 0}  # the most runs each held at once
    churn_cycles = max(1, round(args.churn_every * HOUR / args.poll_interval))
    reconcile_cycles = max(1, round(reconcile_interval / args.poll_interval))
    while True:
        elapsed = clock.now - t0
        if cycles and cycles % churn_cycles == 0 and elapsed < end - 3 * args.poll_interval:
            driver.remove_flows(args.churn)  # deleted in Adobe and dropped from the config,
            driver.add_flows(args.churn)  # as many created and added: a reload
            await exporter.ask("reload", dict(driver.watched))
        if elapsed >= end - 2 * args.poll_interval:
            sim.chaos = None  # calm at the very end: the last polls see everything
        if elapsed >= end - 3 * args.poll_interval:
            driver.starting = False  # no new runs: those in flight finish before the end
        reconcile = bool(cycles and cycles % reconcile_cycles == 0)
        got = await exporter.ask("cycle", clock.now, reconcile)
        spent["poll"] += got["poll"]
        spent["after_cycle"] += got["after_cycle"]
        driver.baselined(set(got["baselined"]))
        cycles += 1
        keys = ("rss", "anon", "file", "threads", "blocks", "series", *ALLOCATORS)
        samples.append({"h": elapsed / HOUR, "sim": proc_status()["rss"], **{k: got[k] for k in keys}})
        held["simulator"] = max(held["simulator"], len(sim.world.runs))
        held["ledger"] = max(held["ledger"], got["ledger_runs"])
        if args.tracemalloc and not snapped and elapsed >= args.warmup * HOUR:
            snapped = await exporter.ask("snapshot") is None
        if cycles % 24 == 0:
            log_progress(elapsed, samples, driver, started)
        if elapsed >= end:
            break
        t = time.monotonic()
        for _ in range(max(1, round(args.poll_interval / MINUTE))):
            sim.forget()
            driver.minute()
        spent["world"] += time.monotonic() - t
    return {
        "cycles": cycles,
        "real_seconds": time.monotonic() - started,
        "samples": samples,
        "spent": spent,
        "held": held,
    }


def log_progress(elapsed: float, samples: list, driver: Driver, started: float) -> None:
    rss, sim_rss = samples[-1]["rss"] / 1024, samples[-1]["sim"] / 1024
    print(
        f"  {elapsed / HOUR:5.1f} h simulated, {time.monotonic() - started:5.0f} s real: exporter RSS {rss:.1f} MB "
        f"(simulator {sim_rss:.1f} MB), {len(driver.watched)} flows, {driver.finished} runs finished",
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


_EMPTY: dict[str, dict] = {"runs": {}, "sums": {}, "run_errors": {}, "error_records": {}}


def peaks(samples: list[dict], key: str, warmup: float) -> tuple[int, int, int]:
    """The peak of a measure in the first `warmup` hours, to the end, and in the last hour."""
    last = samples[-1]["h"] - 1
    return (
        max(x[key] for x in samples if x["h"] <= warmup),
        max(x[key] for x in samples),
        max(x[key] for x in samples if x["h"] >= last),
    )


def change(before: float, after: float) -> str:
    """after against before, in percent (n/a: nothing to compare, as pymalloc's counts under
    PYTHONMALLOC=malloc)."""
    return f"{(after / before - 1) * 100:+.1f}%" if before else "n/a"


def per_hour(samples: list[dict], key: str, unit: int, digits: int = 0) -> str:
    hourly: dict[int, int] = {}
    for x in samples:
        hourly[int(x["h"])] = max(hourly.get(int(x["h"]), 0), x[key])
    return ", ".join(f"{hourly[h] / unit:.{digits}f}" for h in sorted(hourly))


def report(args: argparse.Namespace, r: dict) -> tuple[str, bool]:
    """The result as Markdown, and whether it passed."""
    samples, w = r["samples"], args.warmup
    warm, peak, last_hour = peaks(samples, "rss", w)
    anon_warm, anon_peak, _ = peaks(samples, "anon", w)
    file_warm, file_peak, _ = peaks(samples, "file", w)
    threads_warm, threads_peak, _ = peaks(samples, "threads", w)
    blocks_warm, _, blocks_end = peaks(samples, "blocks", w)
    sim_warm, sim_peak, sim_last = peaks(samples, "sim", w)
    series_warm, _, series_end = peaks(samples, "series", w)
    growth = peak / warm - 1
    c, d = r["check"], r["driver"]
    ok = growth < 0.05 and not c["differ"] and not c["unbaselined"] and not c["lingering"]
    lines = [
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}. "
        f"{args.hours:g} simulated hours in {r['real_seconds']:.0f} s real ({r['cycles']} cycles, "
        f"{args.strategy}, poll every {args.poll_interval:g} s simulated). The exporter runs in a process "
        "of its own (bench/soak_exporter.py); the simulated Adobe and the driver in another.",
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
        f"| exporter RSS peak in the first {w:g} h / to the end / in the last hour | {warm / 1024:.1f} / "
        f"{peak / 1024:.1f} / {last_hour / 1024:.1f} MB | |",
        f"| growth of the exporter's peak after the first {w:g} h | **{growth * 100:+.1f}%** (limit +5%) | "
        f"{'met' if growth < 0.05 else '**not met**'} |",
        f"| of which anonymous (heap), peak in the first {w:g} h / to the end | {anon_warm / 1024:.1f} / "
        f"{anon_peak / 1024:.1f} MB ({change(anon_warm, anon_peak)}) | |",
        f"| of which file-backed (code, libraries), peak in the first {w:g} h / to the end | "
        f"{file_warm / 1024:.1f} / {file_peak / 1024:.1f} MB | |",
        f"| exporter's threads, most in the first {w:g} h / to the end | {threads_warm} / {threads_peak} | |",
        f"| exporter's live Python objects (pymalloc blocks), peak in the first {w:g} h / in the last hour | "
        f"{blocks_warm:,} / {blocks_end:,} ({change(blocks_warm, blocks_end)}) | |",
        f"| series on /metrics, most in the first {w:g} h / in the last hour | {series_warm:,} / {series_end:,} "
        f"({change(series_warm, series_end)}) | |",
        f"| simulator + driver RSS peak in the first {w:g} h / to the end / in the last hour | "
        f"{sim_warm / 1024:.1f} / {sim_peak / 1024:.1f} / {sim_last / 1024:.1f} MB "
        f"({change(sim_warm, sim_peak)}) | |",
        f"| IMS tokens issued / API retries (1% 5xx) | {r['tokens_issued']} / {r['retries']:.0f} | |",
        f"| most runs held at once: simulator / exporter's ledger | {r['held']['simulator']:,} / "
        f"{r['held']['ledger']:,} | |",
        "",
        f"Real seconds per cycle: poll {r['spent']['poll'] / r['cycles']:.2f}, save + render "
        f"{r['spent']['after_cycle'] / r['cycles']:.2f}, the simulated world {r['spent']['world'] / r['cycles']:.2f}.",
        "",
        "Exporter RSS peak per simulated hour (MB): " + per_hour(samples, "rss", 1024),
        "",
        "Exporter anonymous RSS peak per simulated hour (MB): " + per_hour(samples, "anon", 1024, 1),
        "",
        "Exporter file-backed RSS peak per simulated hour (MB): " + per_hour(samples, "file", 1024, 1),
        "",
        *[
            f"Exporter heap, {what} (MB) per simulated hour: " + per_hour(samples, k, 1024, 1) + "\n"
            for k, what in ALLOCATORS.items()
        ],
        "Exporter's live pymalloc blocks, peak per simulated hour (thousands): " + per_hour(samples, "blocks", 1000),
        "",
        "Series on /metrics, most per simulated hour (thousands): " + per_hour(samples, "series", 1000, 1),
        "",
        "Simulator + driver RSS peak per simulated hour (MB): " + per_hour(samples, "sim", 1024),
    ]
    for flow_id, (got, want) in list(c["differ"].items())[:5]:
        lines += ["", f"- flow {flow_id}: served {got}, truth {want}"]
    growth_lists = r.get("growth") or {}
    for title, key in (("Allocation sites", "sites"), ("Files", "files"), ("Live objects by type", "types")):
        if key in growth_lists:
            lines += ["", f"{title} that grew most in the exporter after the warm-up (tracemalloc):", ""]
            lines += [f"    {line}" for line in growth_lists[key]]
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
    with tempfile.TemporaryDirectory(prefix="aep-soak-") as tmp:
        result = asyncio.run(soak(args, tmp))
    text, ok = report(args, result)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
