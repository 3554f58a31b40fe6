"""The fault suite: every fault at once, then the counters must equal the ground truth exactly.

Faults, together: 10% 5xx, 5% 429 with Retry-After, 1% truncated JSON, IMS tokens that expire
every 3 s, a flow deleted midway, and a kill -9 + restart midway. Runs start and finish all the
while. At the end, every `aep_flow_*_total` on /metrics is compared with the simulator's own
record of completed runs: equal, not close. /metrics must have answered throughout (but for the
moments the process was down), and the secret and tokens must appear nowhere.
"""

from __future__ import annotations

import asyncio
import random
import signal

import aiohttp
from conftest import ExporterProcess, config_yaml, cycles, eventually, run_cli, scrape, series, value

from exporter.simulator import Chaos, World

STEPS = 40
KILL_AT = 25
DELETE_AT = 12
# The counted sums, spelled out here on purpose: the ground truth must not share the exporter's table.
SUMS = (
    "input_records",
    "output_records",
    "failed_records",
    "input_bytes",
    "output_bytes",
    "input_files",
    "output_files",
)


def truth(world: World, flow_id: str, baseline: set[str]) -> dict:
    """What the counters must say, from the simulator's records, computed independently of the
    exporter's code: completed runs not already completed at the exporter's first poll."""
    t: dict = {
        "runs": {"success": 0, "failed": 0},
        "sums": dict.fromkeys(SUMS, 0),
        "run_errors": {},
        "error_records": {},
        "duration_count": 0,
    }
    for run in world.completed_runs(flow_id):
        if run.id in baseline:
            continue
        t["runs"][run.status] = t["runs"].get(run.status, 0) + 1
        for k in t["sums"]:
            v = getattr(run, k)
            if v is not None and v >= 0:  # -1 is Adobe's "unknown": adds nothing
                t["sums"][k] += v
        codes = {e["code"] for e in run.run_errors + run.activity_errors}
        for c in codes:
            t["run_errors"][c] = t["run_errors"].get(c, 0) + 1
        for e in run.activity_errors:
            if "recordCount" in e:
                t["error_records"][e["code"]] = t["error_records"].get(e["code"], 0) + e["recordCount"]
        if run.started_ms and run.completed_ms:
            t["duration_count"] += 1
    return t


def observed(m: dict, sandbox: str, flow_id: str) -> dict:
    key = {"sandbox": sandbox, "flow_id": flow_id}
    by = lambda name, label: {dict(k)[label]: v for k, v in series(m, name, **key).items()}  # noqa: E731
    return {
        "runs": by("aep_flow_runs_total", "status"),
        "sums": {k: value(m, f"aep_flow_{k}_total", **key) for k in SUMS},
        "run_errors": by("aep_flow_run_errors_total", "code"),
        "error_records": by("aep_flow_error_records_total", "code"),
        "duration_count": value(m, "aep_flow_run_duration_seconds_count", **key),
    }


def step(world: World, rng: random.Random, flows: list[str]) -> None:
    """One tick of the world: new runs, runs starting, runs finishing."""
    for flow_id in flows:
        if flow_id not in world.flows:
            continue
        if rng.random() < 0.4:
            world.start_run(flow_id, status=rng.choice(["scheduled", "inProgress"]))
    for run in list(world.runs.values()):
        if run.completed or run.flow_id not in world.flows:
            continue
        roll = rng.random()
        if run.status == "scheduled" and roll < 0.5:
            run.status, run.started_ms = "inProgress", world.now_ms()
        elif run.status == "inProgress" and roll < 0.35:
            world.finish_run(run.id, rng.choice(["success", "success", "partial", "failed"]))


async def test_fault_suite_counts_every_completed_run_exactly_once(sim, world, tmp_path, strategy):
    rng = random.Random(42)
    world.token_lifetime = 3
    world.runs.clear()
    world.flows.clear()
    flows = [world.add_flow(sb, f"flow-{sb}-{i}").id for sb in ("prod", "dev") for i in range(3)]
    for flow_id in flows:  # history: completed before the exporter starts, and some in flight
        for i in range(3):
            r = world.start_run(flow_id, created_ms=world.now_ms() - 60_000 * (i + 2))
            world.finish_run(r.id, rng.choice(["success", "failed"]))
        world.start_run(flow_id, created_ms=world.now_ms() - 30_000)
    baseline = {r.id for r in world.runs.values() if r.completed}
    deleted = flows[1]

    config = tmp_path / "config.yaml"
    config.write_text(
        config_yaml(
            sim,
            extra=(
                f"state_file: {tmp_path / 'state.json'}\nmetadata_refresh: 1s\nfetch_strategy: {strategy}\n"
                "retry: {max_attempts: 6, max_time: 20s, initial_backoff: 50ms, max_backoff: 500ms}\n"
            ),
        )
    )
    log = tmp_path / "exporter.log"
    args = ("--config.file", str(config), "--log.level", "debug")
    bodies: list[str] = []
    failures: list[str] = []
    down = asyncio.Event()  # set while the process is deliberately down

    async def watch(url_of) -> None:
        async with aiohttp.ClientSession() as s:
            while True:
                url = url_of()
                try:
                    async with s.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                        text = await r.text()
                        if r.status != 200:
                            failures.append(f"HTTP {r.status}")
                        bodies.append(text)
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    if not down.is_set():
                        failures.append(repr(e))
                await asyncio.sleep(0.1)

    exp = ExporterProcess(*args, log_path=str(log), cwd=str(tmp_path))
    await exp.__aenter__()
    current = {"url": exp.url}
    watcher = asyncio.create_task(watch(lambda: current["url"]))
    try:

        async def all_up():
            m = await scrape(exp.url)
            return all(value(m, "aep_exporter_flow_up", sandbox=world.flows[f].sandbox, flow_id=f) == 1 for f in flows)

        await eventually(all_up, what="every flow baselined")
        sim.chaos = Chaos(server_error=0.10, throttle=0.05, truncate=0.01, seed=7)

        for i in range(STEPS):
            step(world, rng, flows)
            if i == DELETE_AT:
                world.flows.pop(deleted)
            if i == KILL_AT:
                down.set()
                await exp.stop(signal.SIGKILL)
                await exp.__aexit__(None, None, None)
                exp = ExporterProcess(*args, log_path=str(log), cwd=str(tmp_path))
                await exp.__aenter__()
                current["url"] = exp.url
                down.clear()
            await asyncio.sleep(0.25)

        # Calm: no more faults, every run finishes, and the exporter catches up.
        sim.chaos = None
        for run in list(world.runs.values()):
            if not run.completed and run.flow_id in world.flows:
                world.finish_run(run.id, rng.choice(["success", "failed"]))

        remaining = [f for f in flows if f != deleted]

        async def matches():
            m = await scrape(exp.url)
            return all(observed(m, world.flows[f].sandbox, f) == truth(world, f, baseline) for f in remaining) and m

        try:
            m = await eventually(matches, timeout=60, what="counters to equal the ground truth")
        except AssertionError:
            m = await scrape(exp.url)
            for f in remaining:
                assert observed(m, world.flows[f].sandbox, f) == truth(world, f, baseline), f
            raise
        # And they stay equal.
        await cycles(exp, 1)
        m = await scrape(exp.url)
        for f in remaining:
            assert observed(m, world.flows[f].sandbox, f) == truth(world, f, baseline), f
        assert not series(m, "aep_flow_info", flow_id=deleted)  # the deleted flow left /metrics
        assert (
            sum(t["runs"]["success"] + t["runs"]["failed"] for t in (truth(world, f, baseline) for f in remaining)) > 20
        )  # the suite did exercise something
        # The faults did happen, and were survived.
        assert series(m, "aep_exporter_api_retries_total")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await exp.__aexit__(None, None, None)

    assert not failures, failures[:5]
    assert len(bodies) > 50
    # No secret anywhere: not in logs (debug level), not on /metrics.
    secrets = [world.client_secret, *world.tokens]
    logged = log.read_text()
    assert "level=debug" in logged and world.tokens_issued >= 3
    for secret in secrets:
        assert secret not in logged
        assert not any(secret in b for b in bodies)


async def test_check_and_once_under_faults_with_debug_logging_never_show_a_secret(sim, world, tmp_path):
    world.token_lifetime = 2
    world.add_flow("dev", "other")
    sim.chaos = Chaos(server_error=0.3, throttle=0.1, truncate=0.1, seed=3)
    sim.inject(401, path="/runs", times=2, body={"error_code": "401013", "message": "Oauth token is not valid"})
    config = tmp_path / "c.yaml"
    config.write_text(config_yaml(sim, extra="retry: {max_attempts: 3, initial_backoff: 10ms}\n"))
    outputs = []
    for mode in ("--once", "--check", "--once"):
        result = await run_cli(
            "--config.file",
            str(config),
            mode,
            "--log.level",
            "debug",
            env={"TEST_AEP_SECRET": world.client_secret},
            timeout=60,
        )
        outputs.append(result.out + result.err)
    text = "\n".join(outputs)
    assert "level=debug" in text and world.tokens
    for secret in (world.client_secret, *world.tokens):
        assert secret not in text
