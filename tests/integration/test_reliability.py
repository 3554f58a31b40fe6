"""Restarts, signals, reloads, caps and hardening: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import signal
import time

import aiohttp
import pytest
from conftest import ExporterProcess, config_yaml, counted, cycles, eventually, ready, run_cli, scrape, series, value

from exporter.exposition.render import RenderCache
from exporter.exposition.server import make_app, start_http, stop_http
from exporter.simulator import SEED_FLOW_ID


@pytest.fixture
def setup(tmp_path, world, config_file):
    """A flow with one run in flight, and a config whose state file lives in tmp_path."""
    flow = world.add_flow("prod", "crm-contacts")
    state = tmp_path / "state.json"

    def write(extra: str = "", flows=None) -> str:
        return config_file(flows, f"state_file: {state}\n" + extra)

    return flow, state, write, {"sandbox": "prod", "flow_id": flow.id}


async def test_restart_continues_counters_and_counts_runs_finished_while_down(setup, world, tmp_path, strategy):
    flow, state, write, key = setup
    a = world.start_run(flow.id, created_ms=world.now_ms() - 60_000)
    path = write(f"fetch_strategy: {strategy}\n")
    async with ExporterProcess("--config.file", path, cwd=str(tmp_path)) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        world.finish_run(a.id, input_records=100)
        await eventually(lambda: counted(exp, key, 1), what="A counted")
        b = world.start_run(flow.id, created_ms=world.now_ms() - 30_000)
        await eventually(lambda: _in_flight(exp, key, 1), what="B seen in flight")
        assert await exp.stop(signal.SIGTERM) == 0
    assert json.loads(state.read_text())["format"] == "aep-flow-exporter-state"

    world.finish_run(b.id, input_records=10)  # completes while the exporter is down
    c = world.start_run(flow.id)  # created and completed while down
    world.finish_run(c.id, input_records=1)

    async with ExporterProcess("--config.file", path, cwd=str(tmp_path)) as exp:
        m = await scrape(exp.url)  # before the first poll: the saved counters are served
        assert value(m, "aep_flow_runs_total", status="success", **key) == 1
        await eventually(lambda: counted(exp, key, 3), what="B and C counted after the restart")
        await cycles(exp, 3)
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_total", status="success", **key) == 3
        assert value(m, "aep_flow_input_records_total", **key) == 111


async def _in_flight(exp: ExporterProcess, key: dict, n: int) -> bool:
    return value(await scrape(exp.url), "aep_flow_runs_in_flight", **key) == n


def counters(m: dict) -> dict:
    """The flow counters of a scrape: every aep_flow_*_total series and the duration histogram."""
    return {k: v for k, v in m.items() if re.fullmatch(r"aep_flow_\w+_total|aep_flow_run_duration_seconds_\w+", k[0])}


def went_down(before: dict, after: dict) -> dict:
    """Counter series lower (or gone) in `after` than in `before`: what Prometheus reads as a reset."""
    return {k: (v, after.get(k)) for k, v in counters(before).items() if after.get(k) is None or after[k] < v}


async def saved_since(exp: ExporterProcess, since: float) -> dict | None:
    m = await scrape(exp.url)
    saved = value(m, "aep_exporter_state_last_save_timestamp_seconds")
    return m if saved is not None and saved > since else None


async def test_kill_9_and_restart_lose_nothing_and_count_nothing_twice(setup, world, tmp_path, strategy):
    flow, state, write, key = setup
    path = write(f"fetch_strategy: {strategy}\n")
    async with ExporterProcess("--config.file", path, cwd=str(tmp_path)) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        runs = [world.start_run(flow.id, created_ms=world.now_ms() - 1000 * i) for i in range(1, 5)]
        for r in runs[:2]:
            world.finish_run(r.id, input_records=5)
        await eventually(lambda: counted(exp, key, 2), what="two runs counted")
        world.finish_run(runs[2].id, input_records=5)
        await eventually(lambda: counted(exp, key, 3), what="three runs counted")
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_in_flight", **key) == 1
        # Kill only once a save that began after the third run was counted has finished: the
        # state file then holds the three runs and the fourth in flight, whatever the timing.
        counted_by = value(m, "aep_exporter_state_last_save_timestamp_seconds") or 0.0
        before = await eventually(lambda: saved_since(exp, counted_by), what="a state save after the count")
        assert value(before, "aep_flow_runs_total", status="success", **key) == 3
        assert len(counters(before)) > 10, counters(before)  # runs, sums, histogram: all checked below
        assert await exp.stop(signal.SIGKILL) == -signal.SIGKILL  # no shutdown save
    world.finish_run(runs[3].id, input_records=5)
    async with ExporterProcess("--config.file", path, cwd=str(tmp_path)) as exp:
        first = await scrape(exp.url)  # the restored counters (or already a poll later)
        assert not went_down(before, first)
        await eventually(lambda: counted(exp, key, 4), what="all four counted after kill -9")
        await cycles(exp, 3)
        m = await scrape(exp.url)
        assert not went_down(before, m)
        assert value(m, "aep_flow_runs_total", status="success", **key) == 4
        assert value(m, "aep_flow_input_records_total", **key) == 20


@pytest.mark.parametrize(
    "content, tag",
    [
        (b"{not json", "corrupt"),
        (b'{"format": "aep-flow-exporter-state", "version": 99, "flows": []}', "version"),
        (
            b'{"format": "aep-flow-exporter-state", "version": 1, "org_id": "OTHER@AdobeOrg", '
            b'"base_url": "https://platform.adobe.io/data/foundation/flowservice", "flows": []}',
            "other-org",
        ),
        (
            b'{"format": "aep-flow-exporter-state", "version": 1, "org_id": "0123456789ABCDEF@AdobeOrg", '
            b'"base_url": "BASE", "flows": [{"sandbox": "prod", "flow_id": "FLOW", "seen": 5}]}',
            "corrupt",
        ),
    ],
)
async def test_bad_state_files_are_moved_aside_and_the_exporter_starts_fresh(setup, sim, tmp_path, content, tag):
    flow, state, write, key = setup
    state.write_bytes(
        content.replace(b"BASE", (sim.origin + "/data/foundation/flowservice").encode()).replace(
            b"FLOW", flow.id.encode()
        )
    )
    log = tmp_path / "log"
    async with ExporterProcess("--config.file", write(), cwd=str(tmp_path), log_path=str(log)) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        assert value(await scrape(exp.url), "aep_flow_runs_total", status="success", **key) == 0
        moved = glob.glob(f"{state}.{tag}-*")
        assert len(moved) == 1, moved
        await eventually(state.exists, what="a fresh state file")
    assert "moved aside" in log.read_text()


async def test_once_and_check_neither_read_nor_write_the_state_file(setup, world, tmp_path):
    flow, state, write, key = setup
    state.write_text("sentinel")
    path = write()
    for mode in ("--once", "--check"):
        result = await run_cli(
            "--config.file", path, mode, cwd=str(tmp_path), env={"TEST_AEP_SECRET": world.client_secret}
        )
        assert result.code == 0
    assert state.read_text() == "sentinel"
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "state.json"]


async def test_sighup_reloads_the_config(setup, world, tmp_path):
    flow, state, write, key = setup
    seed = {"sandbox": "prod", "flow_id": SEED_FLOW_ID}
    path = write(flows={"prod": [SEED_FLOW_ID]})
    log = tmp_path / "log"
    async with ExporterProcess("--config.file", path, cwd=str(tmp_path), log_path=str(log)) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        assert value(await scrape(exp.url), "aep_flow_runs_total", status="success", **key) is None

        write(flows={"prod": [flow.id]})  # the seed flow out, the new flow in
        exp.proc.send_signal(signal.SIGHUP)

        async def swapped():
            m = await scrape(exp.url)
            return (
                value(m, "aep_flow_runs_total", status="success", **key) == 0
                and not series(m, "aep_flow_info", **seed)
                and m
            )

        m = await eventually(swapped, what="the reloaded flows")
        assert value(m, "aep_exporter_config_last_reload_successful") == 1

        (tmp_path / "config.yaml").write_text("adobe: {}\n")  # invalid
        exp.proc.send_signal(signal.SIGHUP)

        async def rejected():
            m = await scrape(exp.url)
            return value(m, "aep_exporter_config_last_reload_successful") == 0 and m

        m = await eventually(rejected, what="the invalid reload to be rejected")
        assert value(m, "aep_flow_runs_total", status="success", **key) == 0  # the old config goes on
        await cycles(exp, 1)
    assert "config not reloaded, keeping the previous one" in log.read_text()


async def test_sigterm_exits_within_10s_while_adobe_hangs(sim, tmp_path):
    sim.delay = 120
    (tmp_path / "c.yaml").write_text(config_yaml(sim))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml"), cwd=str(tmp_path)) as exp:
        await scrape(exp.url)  # serving, while the first poll hangs on Adobe
        started = time.monotonic()
        assert await exp.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 10


async def test_error_codes_beyond_the_cap_become_other(setup, world, tmp_path):
    flow, state, write, key = setup
    async with ExporterProcess("--config.file", write("max_error_codes_per_flow: 3\n"), cwd=str(tmp_path)) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        run = world.start_run(flow.id)
        world.finish_run(run.id, "failed")
        run.run_errors = [{"code": f"RAW-{i}", "message": f"row {i} bad", "recordCount": 1} for i in range(5)]

        async def other():
            m = await scrape(exp.url)
            return value(m, "aep_flow_run_errors_total", code="other", **key) == 1 and m

        m = await eventually(other, what="codes past the cap to go to other")
        codes = {dict(k)["code"] for k in series(m, "aep_flow_run_errors_total", **key)}
        assert codes == {"RAW-0", "RAW-1", "RAW-2", "other"}
        assert value(m, "aep_flow_error_records_total", code="other", **key) == 2
        assert {dict(k)["code"] for k in series(m, "aep_flow_last_completed_run_error", **key)} == codes
        assert value(m, "aep_exporter_error_codes_capped_total", sandbox="prod") == 2
        assert not any("row" in str(k) for k in m)  # message text never becomes a label


async def test_403_marks_the_flow_down_and_says_why(setup, sim, tmp_path):
    flow, state, write, key = setup
    log = tmp_path / "log"
    sim.inject(
        403,
        path=f"/flows/{flow.id}",
        times=1000,
        body={"type": "https://ns.adobe.com/aep/errors/FLOW-2120-403", "title": "Forbidden"},
    )
    async with ExporterProcess(
        "--config.file", write("fetch_strategy: per_flow\n"), cwd=str(tmp_path), log_path=str(log)
    ) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        m = await scrape(exp.url)
        assert value(m, "aep_exporter_flow_up", **key) == 0
        assert value(m, "aep_exporter_flow_up", sandbox="prod", flow_id=SEED_FLOW_ID) == 1
    assert "the credential lacks permission" in log.read_text()
    # One new token on the first 403 (the spec lists 403 for an unusable token), none after: a
    # forbidden flow does not cost a token request a cycle.
    assert value(m, "aep_exporter_api_retries_total", endpoint="flow", reason="403") == 1


async def test_a_literal_secret_in_a_readable_file_is_warned_about(sim, world, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(config_yaml(sim).replace("${TEST_AEP_SECRET}", world.client_secret))
    path.chmod(0o644)
    result = await run_cli("--config.file", str(path), "--check")
    assert result.code == 0
    assert "holds a literal client_secret and is readable by other users" in result.err
    assert world.client_secret not in result.err
    path.chmod(0o600)
    result = await run_cli("--config.file", str(path), "--check")
    assert "readable by other users" not in result.err


async def test_client_side_rate_limit(sim, world, tmp_path):
    for i in range(19):
        world.add_flow("prod", f"flow-{i}")
    (tmp_path / "c.yaml").write_text(
        config_yaml(sim, extra="max_requests_per_second: 10\nmax_concurrency: 16\nfetch_strategy: per_flow\n")
    )
    await run_cli(
        "--config.file",
        str(tmp_path / "c.yaml"),
        "--once",
        stdout=asyncio.subprocess.DEVNULL,
        env={"TEST_AEP_SECRET": world.client_secret},
        timeout=60,
    )
    times = [r["time"] for r in sim.requests if r["path"].startswith("/data/")]
    # 20 flows x (GET /flows/{id} + GET /runs), then the names: one list of connection specs, one
    # of target connections and one of Catalog's datasets.
    assert len(times) == 43
    # A bucket of 10 a second, 10 deep: 43 requests cannot take less than (43 - 10) / 10 s.
    assert times[-1] - times[0] >= 3.2


async def test_server_answers_get_and_head_only_and_caps_requests():
    from prometheus_client import CollectorRegistry

    app = make_app(RenderCache(CollectorRegistry()), lambda: True)
    runner, server, (host, port) = await start_http(app, "127.0.0.1", 0, header_timeout=0.5)
    try:
        base = f"http://{host}:{port}"
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/metrics", data=b"x") as r:
                assert r.status == 405
            async with s.head(base + "/metrics") as r:
                assert r.status == 200
            async with s.get(base + "/metrics", data=b"x" * 100_000) as r:
                assert r.status == 413
            async with s.get(base + "/metrics", headers={f"X-H{i}": "v" for i in range(100)}) as r:
                assert r.status in (400, 431)
        # A client that trickles its headers is cut off after the header timeout.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()
    finally:
        await stop_http(runner, server)
