"""The scale benchmark: the simulator with N flows over S sandboxes, latency injected into every
request and runs starting and finishing all along; the exporter (a real process) against it.

    make bench                 # all scales, both profiles: bench/results.md, bench/results-hostile.md
    .venv/bin/python bench/run.py --scales 100 1000 --latency 0.1
    .venv/bin/python bench/run.py --profile hostile   # Adobe's undocumented details at their worst

`--profile` picks how the simulated Flow Service behaves where Adobe's documentation is silent
(exporter/simulator/profile.py): `friendly` (the default, how the simulator always behaved) or
`hostile` (tokens of 6 KB that do not repeat the filters, an 8 KB request-line limit answered 414,
pages of 20 at most, Adobe's clock 10 minutes behind).

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


def build_world(world: World, flows: int, sandboxes: int, seed: int = 1) -> World:
    """Flows that run every 10-20 minutes, each with two completed runs in the last hour. The
    world is already served, so its times are on the simulated Adobe's clock."""
    rng = random.Random(seed)
    now = world.now_ms()
    for i in range(flows):
        f = world.add_flow(f"sb{i % sandboxes}", f"flow-{i:05d}", period=rng.uniform(600, 1200), script=[])
        for k in (1, 2):
            r = world.start_run(f.id, created_ms=now - int(rng.uniform(k * 900, k * 1800) * 1000))
            world.finish_run(
                r.id,
                rng.choice(["success", "success", "success", "partial", "failed"]),
                completed_ms=r.created_ms + 60_000,
            )
    return world


def config_text(sim_origin: str, world: World, strategy: str, concurrency: int, poll: float, state: Path) -> str:
    sandboxes: dict[str, list[str]] = {}
    for f in world.flows.values():
        sandboxes.setdefault(f.sandbox, []).append(f.id)
    lines = [
        "adobe:",
        f"  client_id: {world.client_id}",
        f"  client_secret: {world.client_secret}",
        f"  org_id: {world.org_id}",
        f"  token_url: {sim_origin}{TOKEN_PATH}",
        f"  base_url: {sim_origin}{BASE_PATH}",
        "sandboxes:",
    ]
    for name, ids in sandboxes.items():
        lines += [f"  - name: {name}", "    flows:"] + [f"      - {i}" for i in ids]
    lines += [
        f"poll_interval: {poll}",
        "lookback: 2h",
        f"max_concurrency: {concurrency}",
        f"fetch_strategy: {strategy}",
        "request_timeout: 60s",
        f"state_file: {state}",
    ]
    return "\n".join(lines) + "\n"


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, peak RSS in MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return cpu, int(hwm.group(1)) / 1024 if hwm else 0.0


async def get_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as r:
        return await r.text()


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


NAMES = ("connection_specs", "target_connections")  # the names' endpoints (exporter/fetch/names.py)


def by_endpoint(text: str) -> dict[str, float]:
    """aep_exporter_api_requests_total summed by endpoint (token excluded)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'aep_exporter_api_requests_total\{.*endpoint="([^"]+)".*\} (\S+)$', line)
        if m and m.group(1) != "token":
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


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
) -> dict:
    world = World(seed=1)
    sim = Simulator(world, autopilot=True, profile=PROFILES[profile])
    build_world(world, flows, sandboxes)
    sim.delay = latency
    runner, origin = await start_simulator(sim)
    tmp = Path(tempfile.mkdtemp(prefix="aep-bench-"))
    (tmp / "config.yaml").write_text(config_text(origin, world, strategy, concurrency, poll, tmp / "state.json"))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "--config.file",
        str(tmp / "config.yaml"),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(tmp / "exporter.log", "wb"),
        cwd=str(ROOT),
    )
    url = f"http://127.0.0.1:{port}/metrics"
    result: dict = {"flows": flows, "strategy": strategy}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
            # Renders are per cycle: each new value of the cycle counter is a finished cycle.
            seen: list[dict] = []
            deadline = time.monotonic() + 600
            while len(seen) < cycles + 2 and time.monotonic() < deadline:
                if proc.returncode is not None:
                    raise RuntimeError(f"the exporter exited: {(tmp / 'exporter.log').read_text()[-2000:]}")
                try:
                    text = await get_text(s, url)
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
                    continue
                stamp = sample(text, "aep_exporter_cycle_duration_seconds ")
                if stamp and (not seen or requests_of(text) != seen[-1]["requests"]):
                    cpu, _ = proc_stats(proc.pid)
                    seen.append(
                        {
                            "requests": requests_of(text),
                            "cycle": stamp,
                            "cpu": cpu,
                            "render": sample(text, "aep_exporter_render_duration_seconds "),
                            "lag": sample(text, "aep_exporter_event_loop_lag_max_seconds "),
                            "text": text,
                        }
                    )
                await asyncio.sleep(0.2)
            steady = seen[2:]  # seen[0] is the baseline cycle, seen[1] the first incremental one
            if len(steady) < 1:
                raise RuntimeError(f"{flows} flows {strategy}: not enough cycles ({len(seen)})")
            deltas = [b["requests"] - a["requests"] for a, b in zip(seen[1:], seen[2:])]
            result["requests"] = statistics.median(deltas)
            # Cycle 1 resolves every flow's names (all metadata is new): what a metadata refresh costs.
            first, last, base = (by_endpoint(seen[i]["text"]) for i in (0, -1, 1))
            result["first_requests"] = sum(first.values())
            result["first_names"] = sum(first.get(e, 0.0) for e in NAMES)
            result["steady_names"] = sum(last.get(e, 0.0) - base.get(e, 0.0) for e in NAMES) / max(1, len(seen) - 2)
            result["cycle"] = statistics.median(c["cycle"] for c in steady)
            result["cpu_per_cycle"] = (seen[-1]["cpu"] - seen[1]["cpu"]) / max(1, len(seen) - 2)
            result["render"] = statistics.median(c["render"] for c in steady)
            result["lag"] = max(c["lag"] for c in steady)
            body = seen[-1]["text"].encode()
            result["bytes"] = len(body)
            result["series"] = sum(1 for line in seen[-1]["text"].splitlines() if line and not line.startswith("#"))
            result["up"] = sample(seen[-1]["text"], "aep_exporter_flow_up{")  # a cheap cycle of down flows is no win
            if http_seconds:
                (tmp / "body.txt").write_bytes(body)
                static_port = free_port()
                static = subprocess.Popen(
                    [sys.executable, str(ROOT / "bench" / "static_server.py"), str(tmp / "body.txt"), str(static_port)]
                )
                try:
                    for _ in range(100):
                        try:
                            await get_text(s, f"http://127.0.0.1:{static_port}/metrics")
                            break
                        except aiohttp.ClientError:
                            await asyncio.sleep(0.1)
                    lag_before = sample(await get_text(s, url), "aep_exporter_event_loop_lag_max_seconds ")
                    result["metrics_p50"], result["metrics_p99"] = await asyncio.to_thread(wrk, url, http_seconds)
                    result["static_p50"], result["static_p99"] = await asyncio.to_thread(
                        wrk, f"http://127.0.0.1:{static_port}/metrics", http_seconds
                    )
                    result["lag_loaded"] = max(
                        lag_before, sample(await get_text(s, url), "aep_exporter_event_loop_lag_max_seconds ")
                    )
                finally:
                    static.terminate()
                    static.wait(10)
            _, result["rss"] = proc_stats(proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except asyncio.TimeoutError:
                proc.kill()
        await runner.cleanup()
        if not os.environ.get("AEP_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)
    return result


def fmt_ms(v: float) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=int, nargs="+", default=[100, 1000, 5000, 10000])
    p.add_argument("--sandboxes", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument(
        "--per-flow-latency-max",
        type=int,
        default=1000,
        help="largest scale whose per-flow run uses the real latency (larger: 0 s, counts only)",
    )
    p.add_argument("--http-seconds", type=int, default=5)
    p.add_argument("--profile", choices=sorted(PROFILES), default="friendly", help="the simulated Adobe's behaviour")
    p.add_argument("--out", help="default: bench/results.md (friendly), bench/results-<profile>.md (others)")
    a = p.parse_args()
    out = a.out or str(ROOT / "bench" / ("results.md" if a.profile == "friendly" else f"results-{a.profile}.md"))
    if a.http_seconds and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian package wrk; `make bench` installs it)")
    started = time.monotonic()
    rows = []
    for n in a.scales:
        poll = max(3.0, n / 400)
        b = await run_scale(n, a.sandboxes, a.latency, "batched", a.concurrency, poll, 2, a.http_seconds, a.profile)
        pf_latency = a.latency if n <= a.per_flow_latency_max else 0.0
        pf = await run_scale(n, a.sandboxes, pf_latency, "per_flow", a.concurrency, 1.0, 1, 0, a.profile)
        b["per_flow_requests"], b["per_flow_cycle"], b["per_flow_latency"] = pf["requests"], pf["cycle"], pf_latency
        rows.append(b)
        print(f"{n} flows done at {time.monotonic() - started:.0f}s: {b}", file=sys.stderr, flush=True)

    lines = [
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}. "
        f"Simulator profile `{a.profile}`. "
        f"{a.sandboxes} sandboxes, {a.latency * 1000:.0f} ms injected per request, max_concurrency "
        f"{a.concurrency}. Took {time.monotonic() - started:.0f} s.",
        "",
        "| flows | flows up (batched) | requests/cycle batched | per-flow | fewer | cycle (s) | lower bound (s) |"
        " cycle / bound | per-flow cycle (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bound = math.ceil(r["requests"] / a.concurrency) * a.latency
        pf_cycle = (
            f"{r['per_flow_cycle']:.1f}"
            if r["per_flow_latency"]
            else f"≥ {math.ceil(r['per_flow_requests'] / a.concurrency) * a.latency:.1f} (bound)"
        )
        lines.append(
            f"| {r['flows']:,} | {r['up']:,.0f} | {r['requests']:.0f} | {r['per_flow_requests']:.0f} | "
            f"{r['per_flow_requests'] / max(1, r['requests']):.0f}× | {r['cycle']:.2f} | {bound:.2f} | "
            f"{r['cycle'] / bound if bound else float('nan'):.2f} | {pf_cycle} |"
        )
    lines += [
        "",
        "| flows | exposition | series | series/flow | bytes/flow | render/cycle (s) | /metrics p50/p99 (ms) |"
        " static body p50/p99 (ms) | p99 / static | peak RSS (MB) | CPU s/cycle | worst loop stall (ms) |"
        " stall under wrk (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['flows']:,} | {r['bytes'] / 1e6:.1f} MB | {r['series']:,} | {r['series'] / r['flows']:.1f} | "
            f"{r['bytes'] / r['flows']:.0f} | {r['render']:.2f} | {fmt_ms(r.get('metrics_p50'))} / "
            f"{fmt_ms(r.get('metrics_p99'))} | {fmt_ms(r.get('static_p50'))} / {fmt_ms(r.get('static_p99'))} | "
            f"{r.get('metrics_p99', float('nan')) / r.get('static_p99', float('nan')):.2f} | {r['rss']:.0f} | "
            f"{r['cpu_per_cycle']:.2f} | {r['lag'] * 1000:.0f} | {r.get('lag_loaded', float('nan')) * 1000:.0f} |"
        )
    lines += [
        "",
        "Names (`source_name`, `target_name`, `dataset_id`): their requests are made for flows whose metadata is"
        " new or refreshed, so cycle 1 (every flow new) shows what each `metadata_refresh` costs.",
        "",
        "| flows | requests cycle 1 | of which names | names share | names requests/steady cycle |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['flows']:,} | {r['first_requests']:.0f} | {r['first_names']:.0f} | "
            f"{r['first_names'] / max(1, r['first_requests']):.1%} | {r['steady_names']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
