"""The scale benchmark: the simulator with N flows over S sandboxes, latency injected into every
request and runs starting and finishing all along; the exporter (a real process) against it.

    make bench                 # all scales, both profiles: bench/results.md, bench/results-hostile.md
    .venv/bin/python bench/run.py --scales 100 1000 --latency 0.1
    .venv/bin/python bench/run.py --profile hostile   # Adobe's undocumented details at their worst

`--profile` picks how the simulated Flow Service behaves where Adobe's documentation is silent
(exporter/simulator/profile.py): `friendly` (the default, how the simulator always behaved) or
`hostile` (tokens that encode the query they continue, ~5 KB for 100 flows, an 8 KB request-line
limit refused by a bare HTML 400 naming no size, pages of 20 at most, Adobe's clock 10 minutes
behind) or `hostile_position_tokens` (the earlier hostile: 6 KB tokens that do not repeat the
filters, the limit answered 414).

Per scale it measures, for the batched strategy at the given latency:
- API requests per steady-state cycle, and the cycle's wall time against its lower bound
  ceil(requests / max_concurrency) × latency;
- /metrics latency p50/p99 under load (wrk, on loopback), next to a plain aiohttp handler that
  returns a static body of the same size, in the same run;
- exposition size, series, render time per cycle; peak RSS; CPU seconds per cycle; the event
  loop's worst stall;
and for the per-flow strategy the requests per steady-state cycle (at the same latency where that
fits in the time budget, else with no latency: the count does not depend on it).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.simulator import BASE_PATH, PROFILES, TOKEN_PATH, Simulator, World, start_simulator  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_world(world: World, flows: int, sandboxes: int, seed: int = 1, period: float | None = None) -> World:
    """Flows that run every 10-20 minutes (or every `period` seconds, ±10%), each with two
    completed runs in the last hour. The world is already served, so its times are on the
    simulated Adobe's clock."""
    rng = random.Random(seed)
    now = world.now_ms()
    for i in range(flows):
        every = rng.uniform(600, 1200) if period is None else rng.uniform(0.9 * period, 1.1 * period)
        f = world.add_flow(f"sb{i % sandboxes}", f"flow-{i:05d}", period=every, script=[])
        for k in (1, 2):
            r = world.start_run(f.id, created_ms=now - int(rng.uniform(k * 900, k * 1800) * 1000))
            world.finish_run(
                r.id,
                rng.choice(["success", "success", "success", "partial", "failed"]),
                completed_ms=r.created_ms + 60_000,
            )
    return world


def full_histories(path: Path, world: World, origin: str, runs: int) -> None:
    """A state file in which every flow of the world already has `runs` completed runs in its
    history (a restart of an exporter that has run for a while: the default history of 50 fills
    after half a day of 15-minute runs, which no bench run reaches). Nothing else is in it: the
    exporter counts the world's runs as new ones."""
    import uuid

    from exporter.ledger.history import PastRun, of
    from exporter.ledger.ledger import Ledger
    from exporter.ledger.store import StateStore

    rng = random.Random(7)
    now = world.now_ms() / 1000
    ledger = Ledger()
    for f in world.flows.values():
        state = ledger.flow(f.sandbox, f.id)
        state.baselined = True
        past = []
        for k in range(runs, 0, -1):
            created = now - 3 * 3600 - k * 900
            status = rng.choice(["success", "success", "success", "partialSuccess", "failed"])
            errors = (("CONNECTOR-1001-500", "The source connection failed: timed out"),) if status == "failed" else ()
            n = rng.randint(100, 100_000)
            past.append(
                PastRun(str(uuid.uuid4()), created, created + 5, created + 65, status, n, n, 0, n * 200, errors)
            )
        state.history = of(past)
    StateStore(str(path), world.org_id, f"{origin}{BASE_PATH}").save_now(ledger)


def adobe_and_flows(origin: str, world: World) -> list[str]:
    """The config's `adobe:` and `sandboxes:` for the simulator at `origin`, every flow named."""
    sandboxes: dict[str, list[str]] = {}
    for f in world.flows.values():
        sandboxes.setdefault(f.sandbox, []).append(f.id)
    lines = [
        "adobe:",
        f"  client_id: {world.client_id}",
        f"  client_secret: {world.client_secret}",
        f"  org_id: {world.org_id}",
        f"  token_url: {origin}{TOKEN_PATH}",
        f"  base_url: {origin}{BASE_PATH}",
        "sandboxes:",
    ]
    for name, ids in sandboxes.items():
        lines += [f"  - name: {name}", "    flows:"] + [f"      - {i}" for i in ids]
    return lines


def config_text(
    sim_origin: str,
    world: World,
    strategy: str,
    concurrency: int,
    poll: float,
    state: Path,
    lookback: str = "2h",
    overlap: float | None = None,
) -> str:
    lines = adobe_and_flows(sim_origin, world)
    lines += [
        f"poll_interval: {poll}",
        f"lookback: {lookback}",
        f"max_concurrency: {concurrency}",
        f"fetch_strategy: {strategy}",
        "request_timeout: 60s",
        f"state_file: {state}",
    ]
    if overlap is not None:
        lines.append(f"batch_overlap: {overlap:g}")
    return "\n".join(lines) + "\n"


def proc_stats(pid: int, field: str = "VmHWM") -> tuple[float, float]:
    """(CPU seconds so far, peak RSS in MiB: kB of /proc divided by 1024) of a process (VmRSS: the RSS now)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return cpu, int(hwm.group(1)) / 1024 if hwm else 0.0


async def get_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as r:
        return await r.text()


async def get_head(session: aiohttp.ClientSession, url: str) -> str:
    """The exposition's first part, up to the flow families: the self-metrics come first, and at
    10,000 flows reading the whole page every poll would make the bench compete with the exporter
    for the machine's cores."""
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as r:
        buf = b""
        while b"# HELP aep_exporter_flow_up " not in buf and len(buf) < 4_000_000:
            chunk = await r.content.read(65536)
            if not chunk:
                break
            buf += chunk
        r.close()  # the rest is not needed
    return buf.decode("utf-8", "replace").rsplit("\n", 1)[0]


def sample(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def requests_of(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aep_exporter_api_requests_total{") and 'endpoint="token"' not in line
    )


def flow_ids(text: str) -> set[str]:
    return set(re.findall(r'^aep_exporter_flow_up\{[^}]*flow_id="([^"]+)"', text, re.M))


def wrk(url: str, seconds: int) -> tuple[float, float]:
    """p50 and p99 latency (ms) of GET url under wrk -t2 -c4."""
    out = subprocess.run(
        ["wrk", "-t2", "-c4", f"-d{seconds}s", "--latency", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    return ms("50%"), ms("99%")


async def start_exporter(tmp: Path, name: str, shard: str | None) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    args = ["--config.file", str(tmp / f"config-{name}.yaml"), "--web.listen-address", f"127.0.0.1:{port}"]
    if shard:
        args += ["--shard", shard]
    profile = os.environ.get("AEP_BENCH_PROFILE")  # a directory: each exporter runs under cProfile
    prefix = ["-m", "cProfile", "-o", str(Path(profile) / f"exporter-{name}.prof")] if profile else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *prefix,
        "-m",
        "exporter",
        *args,
        "--log.level",
        "warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(tmp / f"exporter-{name}.log", "wb"),
        cwd=str(ROOT),
    )
    return proc, f"http://127.0.0.1:{port}/metrics"


async def watch_cycles(
    s: aiohttp.ClientSession, proc: asyncio.subprocess.Process, url: str, cycles: int, log: Path
) -> dict:
    """Follow the exporter's cycles (each new request count with a cycle stamp is a finished
    cycle); seen[0] is the baseline cycle, seen[1] the first incremental one, the rest steady."""
    seen: list[dict] = []
    deadline = time.monotonic() + 900
    while len(seen) < cycles + 2 and time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"the exporter exited: {log.read_text()[-2000:]}")
        try:
            text = await get_head(s, url)
        except aiohttp.ClientError:
            await asyncio.sleep(0.5)
            continue
        stamp = sample(text, "aep_exporter_cycle_duration_seconds ")
        if stamp and (not seen or requests_of(text) != seen[-1]["requests"]):
            cpu, rss_now = proc_stats(proc.pid, "VmRSS")
            _, hwm = proc_stats(proc.pid)
            seen.append(
                {
                    "requests": requests_of(text),
                    "cycle": stamp,
                    "cpu": cpu,
                    "render": sample(text, "aep_exporter_render_duration_seconds "),
                    "rebuilt": sample(text, "aep_exporter_render_flows_rebuilt "),
                    "lag": sample(text, "aep_exporter_event_loop_lag_max_seconds "),
                    "rss_now": rss_now,
                    "hwm": hwm,
                }
            )
        await asyncio.sleep(0.5)
    steady = seen[2:]
    if len(steady) < 1:
        raise RuntimeError(f"not enough cycles ({len(seen)})")
    deltas = [b["requests"] - a["requests"] for a, b in zip(seen[1:], seen[2:])]
    return {
        "requests": statistics.median(deltas),
        "cycle": statistics.median(c["cycle"] for c in steady),
        "cpu_per_cycle": (seen[-1]["cpu"] - seen[1]["cpu"]) / max(1, len(seen) - 2),
        "render": statistics.median(c["render"] for c in steady),
        "rebuilt": statistics.median(c["rebuilt"] for c in steady),
        "lag": max(c["lag"] for c in steady),
        "rss_baseline": seen[0]["hwm"],  # the peak by the end of the baseline cycle (the whole lookback listed)
        "rss_steady": max(c["rss_now"] for c in steady),
    }


async def http_load(s: aiohttp.ClientSession, url: str, body: bytes, tmp: Path, http_seconds: int) -> dict:
    """/metrics under wrk, then a plain aiohttp handler serving the same bytes under the same load."""
    result: dict = {}
    (tmp / "body.txt").write_bytes(body)
    static_port = free_port()
    static = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "static_server.py"), str(tmp / "body.txt"), str(static_port)]
    )
    try:
        for _ in range(100):
            try:
                await get_head(s, f"http://127.0.0.1:{static_port}/metrics")
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        lag_before = sample(await get_head(s, url), "aep_exporter_event_loop_lag_max_seconds ")
        result["metrics_p50"], result["metrics_p99"] = await asyncio.to_thread(wrk, url, http_seconds)
        result["static_p50"], result["static_p99"] = await asyncio.to_thread(
            wrk, f"http://127.0.0.1:{static_port}/metrics", http_seconds
        )
        result["lag_loaded"] = max(
            lag_before, sample(await get_head(s, url), "aep_exporter_event_loop_lag_max_seconds ")
        )
    finally:
        static.terminate()
        static.wait(10)
    return result


async def run_scale(
    flows: int,
    sandboxes: int,
    latency: float,
    strategy: str,
    concurrency: int,
    poll: float,
    cycles: int,
    http_seconds: int,
    profile: str = "friendly",
    shards: int = 1,
    period: float | None = None,
    lookback: str = "2h",
    overlap: float | None = None,
    history: int = 0,
) -> list[dict]:
    """One simulator, `shards` exporters (`--shard i/N` when more than one); a result per exporter."""
    world = World(seed=1)
    sim = Simulator(world, autopilot=True, profile=PROFILES[profile])
    build_world(world, flows, sandboxes, period=period)
    sim.delay = latency
    runner, origin = await start_simulator(sim)
    tmp = Path(tempfile.mkdtemp(prefix="aep-bench-"))
    text = config_text(origin, world, strategy, concurrency, poll, tmp / "state-{shard}.json", lookback, overlap)
    for i in range(shards):  # each replica its own state file
        (tmp / f"config-{i}.yaml").write_text(text.replace("{shard}", str(i)))
        if history:
            full_histories(tmp / f"state-{i}.json", world, origin, history)
    procs: list[tuple[asyncio.subprocess.Process, str]] = []
    results: list[dict] = []
    try:
        for i in range(shards):
            procs.append(await start_exporter(tmp, str(i), f"{i}/{shards}" if shards > 1 else None))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
            watched = await asyncio.gather(
                *(watch_cycles(s, p, url, cycles, tmp / f"exporter-{i}.log") for i, (p, url) in enumerate(procs))
            )
            union: set[str] = set()
            overlap = 0
            for (proc, url), r in zip(procs, watched):
                text = await get_text(s, url)
                ids = flow_ids(text)
                overlap += len(union & ids)
                union |= ids
                body = text.encode()
                r.update(flows=len(ids) if shards > 1 else flows, strategy=strategy)
                r["bytes"] = len(body)
                r["series"] = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
                r["up"] = sample(text, "aep_exporter_flow_up{")  # a cheap cycle of down flows is no win
                del text
                if http_seconds:
                    r.update(await http_load(s, url, body, tmp, http_seconds))
                _, r["rss"] = proc_stats(proc.pid)
                results.append(r)
            if shards > 1:
                configured = {f.id for f in world.flows.values()}
                for r in results:
                    r["union_ok"] = union == configured and overlap == 0
    finally:
        for proc, _ in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except asyncio.TimeoutError:
                proc.kill()
        await runner.cleanup()
        if not os.environ.get("AEP_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)
    return results


def fmt_ms(v: float) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


def tables(rows: list[dict], a: argparse.Namespace) -> list[str]:
    lines = [
        "| flows | flows up | requests/cycle batched | per-flow | fewer | cycle (s) | lower bound (s) |"
        " cycle / bound | per-flow cycle (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bound = math.ceil(r["requests"] / a.concurrency) * a.latency
        if "per_flow_requests" in r:
            pf = f"{r['per_flow_requests']:.0f}"
            fewer = f"{r['per_flow_requests'] / max(1, r['requests']):.0f}×"
            pf_cycle = (
                f"{r['per_flow_cycle']:.1f}"
                if r["per_flow_latency"]
                else f"≥ {math.ceil(r['per_flow_requests'] / a.concurrency) * a.latency:.1f} (bound)"
            )
        else:
            pf, fewer, pf_cycle = f"({r['flows']})", "-", "-"
        lines.append(
            f"| {r['label']} | {r['up']:,.0f} | {r['requests']:.0f} | {pf} | {fewer} | {r['cycle']:.2f} | "
            f"{bound:.2f} | {r['cycle'] / bound if bound else float('nan'):.2f} | {pf_cycle} |"
        )
    lines += [
        "",
        "| flows | exposition | series | series/flow | flows rebuilt/cycle | render/cycle (s) | CPU s/cycle |"
        " /metrics p50/p99 (ms) | static body p50/p99 (ms) | p99 / static | peak RSS (MiB) | peak at baseline (MiB) |"
        " RSS steady (MiB) |"
        " worst loop stall (ms) | stall under wrk (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['bytes'] / 1e6:.1f} MB | {r['series']:,} | {r['series'] / max(1, r['flows']):.1f} | "
            f"{r['rebuilt']:,.0f} | {r['render']:.3f} | {r['cpu_per_cycle']:.2f} | {fmt_ms(r.get('metrics_p50'))} / "
            f"{fmt_ms(r.get('metrics_p99'))} | {fmt_ms(r.get('static_p50'))} / {fmt_ms(r.get('static_p99'))} | "
            f"{r.get('metrics_p99', float('nan')) / r.get('static_p99', float('nan')):.2f} | {r['rss']:.0f} | "
            f"{r['rss_baseline']:.0f} | {r['rss_steady']:.0f} | "
            f"{r['lag'] * 1000:.0f} | {r.get('lag_loaded', float('nan')) * 1000:.0f} |"
        )
    return lines


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=int, nargs="+", default=[1000, 5000, 10000])
    p.add_argument("--sandboxes", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument(
        "--per-flow-latency-max",
        type=int,
        default=1000,
        help="largest scale whose per-flow run uses the real latency (larger: 0 s, counts only)",
    )
    p.add_argument("--skip-per-flow", action="store_true", help="measure the batched strategy only")
    p.add_argument("--http-seconds", type=int, default=5)
    p.add_argument("--cycles", type=int, default=3, help="steady cycles to measure (after baseline and first)")
    p.add_argument("--poll", type=float, help="poll interval (default: max(3 s, flows / 400 s))")
    p.add_argument("--shards", type=int, default=1, help="exporters with --shard i/N against one simulator")
    p.add_argument(
        "--churn",
        type=float,
        help="flows run every poll/CHURN seconds (1: every flow has a new run every cycle; 0.005: about 1%% "
        "of flows change a cycle); default every 10-20 minutes",
    )
    p.add_argument("--lookback", default="2h")
    p.add_argument("--overlap", type=float, help="batch_overlap in seconds (default: the exporter's, 600)")
    p.add_argument(
        "--history",
        type=int,
        default=0,
        help="start each exporter from a state file in which every flow has this many runs in its history",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="friendly", help="the simulated Adobe's behaviour")
    p.add_argument("--out", help="default: bench/results.md (friendly), bench/results-<profile>.md (others)")
    a = p.parse_args()
    out = a.out or str(ROOT / "bench" / ("results.md" if a.profile == "friendly" else f"results-{a.profile}.md"))
    if a.http_seconds and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian package wrk; `make bench` installs it)")
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    rows = []
    for n in a.scales:
        poll = a.poll or max(3.0, n / a.shards / 400)
        period = poll / a.churn if a.churn else None
        shard_rows = await run_scale(
            n,
            a.sandboxes,
            a.latency,
            "batched",
            a.concurrency,
            poll,
            a.cycles,
            a.http_seconds,
            a.profile,
            a.shards,
            period,
            a.lookback,
            a.overlap,
            a.history,
        )
        for i, b in enumerate(shard_rows):
            b["label"] = f"{n:,}" if a.shards == 1 else f"{n:,} shard {i}/{a.shards} ({b['flows']:,})"
        if not a.skip_per_flow and a.shards == 1:
            pf_latency = a.latency if n <= a.per_flow_latency_max else 0.0
            pf = (await run_scale(n, a.sandboxes, pf_latency, "per_flow", a.concurrency, 1.0, 1, 0, a.profile))[0]
            b = shard_rows[0]
            b["per_flow_requests"], b["per_flow_cycle"], b["per_flow_latency"] = pf["requests"], pf["cycle"], pf_latency
        rows += shard_rows
        print(f"{n} flows done at {time.monotonic() - started:.0f}s: {shard_rows}", file=sys.stderr, flush=True)

    lines = [
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}. "
        f"Simulator profile `{a.profile}`. "
        f"{a.sandboxes} sandboxes, {a.latency * 1000:.0f} ms injected per request, max_concurrency "
        f"{a.concurrency}, lookback {a.lookback}, "
        f"{'runs every 10-20 min' if not a.churn else f'runs every poll/{a.churn:g}'}. "
        f"Command: `{' '.join(['bench/run.py', *sys.argv[1:]])}`. Took {time.monotonic() - started:.0f} s; "
        f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other work on the machine "
        "inflates wall-clock figures: latencies, stalls, cycle times; CPU seconds and RSS are the process's own).",
        "",
        *tables(rows, a),
    ]
    if a.shards > 1:
        total = sum(r["requests"] for r in rows)
        ok = all(r.get("union_ok") for r in rows)
        lines += [
            "",
            f"{a.shards} shards: {total:.0f} requests a cycle in all; the union of the shards' flows is "
            f"{'exactly' if ok else 'NOT'} the configured set{'' if ok else ' (overlap or gap)'}.",
        ]
    text = "\n".join(lines) + "\n"
    Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
