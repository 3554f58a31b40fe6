"""The exporter as a user runs it (the CLI, in its own process) against the simulated Flow
Service over real HTTP; /metrics parsed with prometheus_client's parser."""

from __future__ import annotations

import gzip
import signal

import aiohttp
import pytest
from conftest import ExporterProcess, counted, cycles, eventually, ready, run_cli, scrape, series, value

from exporter.simulator import SEED_FLOW_ID

SEED = {"sandbox": "prod", "flow_id": SEED_FLOW_ID}


async def test_seed_run_numbers_on_metrics(sim, config_file, tmp_path):
    async with ExporterProcess("--config.file", config_file(), log_path=str(tmp_path / "log")) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        m = await scrape(exp.url)
    g = lambda name, **lbl: value(m, name, **SEED, **lbl)  # noqa: E731
    assert g("aep_flow_last_completed_run_input_records") == 100
    assert g("aep_flow_last_completed_run_output_records") == 99
    assert g("aep_flow_last_completed_run_failed_records") == 1
    assert g("aep_flow_last_completed_run_input_bytes") == 24012
    assert g("aep_flow_last_completed_run_output_bytes") == 17128
    assert g("aep_flow_last_completed_run_input_files") == 1
    assert g("aep_flow_last_completed_run_output_files") == 1
    assert g("aep_flow_last_completed_run_duration_seconds") == pytest.approx(55.108)
    assert g("aep_flow_last_completed_run_start_timestamp_seconds") == pytest.approx(1596656058.198)
    assert g("aep_flow_last_completed_run_end_timestamp_seconds") == pytest.approx(1596656113.306)
    assert g("aep_flow_last_completed_run_window_end_timestamp_seconds") == 1596655508
    assert g("aep_flow_last_success_timestamp_seconds") == pytest.approx(1596656113.306)
    assert g("aep_flow_last_run_created_timestamp_seconds") == pytest.approx(1596656079.576)
    assert {dict(k)["status"]: v for k, v in series(m, "aep_flow_last_run_status", **SEED).items()} == {
        "success": 1,
        "failed": 0,
        "inProgress": 0,
        "scheduled": 0,
    }
    assert {dict(k)["code"] for k, v in series(m, "aep_flow_last_completed_run_error", **SEED).items() if v == 1} == {
        "CONNECTOR-2001-500",
        "INGEST-1212-400",
        "MAPPER-3700-400",
    }
    assert {dict(k)["code"]: v for k, v in series(m, "aep_flow_last_completed_run_error_records", **SEED).items()} == {
        "MAPPER-3700-400": 1
    }
    assert g("aep_flow_last_completed_run_activity_duration_seconds", activity="copyActivity") == pytest.approx(31.452)
    assert g("aep_flow_last_completed_run_activity_failed_records", activity="promotionActivity") == 1
    assert g("aep_flow_last_completed_run_activity_input_records", activity="copyActivity") is None  # {}: absent
    info = series(m, "aep_flow_info", **SEED)
    assert [dict(k) for k in info] == [
        {
            **SEED,
            "flow_name": "Monitoring Dataflow",
            "state": "enabled",
            "flow_spec_id": "9753525b-82c7-4dce-8a9b-5ccfce2b9876",
            "source_connection_spec_id": "ecadc60c-7455-4d87-84dc-2a0e293d997b",
            "target_connection_spec_id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c",
            "frequency": "once",
            "source_name": "Amazon S3",
            "target_name": "Data Lake",
            "dataset_id": "5f3c3cedb2805c194ff0b69a",
            "dataset_name": "Monitoring Dataflow dataset",
        }
    ]
    assert g("aep_flow_enabled") == 1 and g("aep_flow_runs_in_flight") == 0
    # Completed before the first poll: remembered, not counted.
    assert g("aep_flow_runs_total", status="success") == 0 and g("aep_flow_runs_total", status="failed") == 0
    assert g("aep_flow_input_records_total") == 0 and g("aep_flow_run_duration_seconds_count") == 0
    assert series(m, "aep_flow_run_errors_total", **SEED) == {}
    assert g("aep_exporter_flow_up") == 1
    assert value(m, "aep_exporter_flows", sandbox="prod") == 1
    assert series(m, "aep_exporter_build_info")


async def test_run_seen_in_flight_then_completed_is_counted_once_and_restart_without_state_starts_at_zero(
    sim, world, config_file, strategy
):
    flow = world.add_flow("prod", "crm-contacts")
    done_before = world.start_run(flow.id, created_ms=world.now_ms() - 600_000)
    world.finish_run(done_before.id, input_records=500)
    running = world.start_run(flow.id)
    key = {"sandbox": "prod", "flow_id": flow.id}
    path = config_file(extra=f"state_file: null\nfetch_strategy: {strategy}\n")
    async with ExporterProcess("--config.file", path) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_in_flight", **key) == 1
        assert value(m, "aep_flow_runs_total", status="success", **key) == 0
        assert value(m, "aep_flow_last_run_status", status="inProgress", **key) == 1

        world.finish_run(
            running.id,
            "partial",
            input_records=1000,
            failed_records=7,
            input_bytes=4096,
            input_files=3,
            completed_ms=running.started_ms + 95_000,
        )
        await eventually(lambda: counted(exp, key, 1), what="the completed run to be counted")
        await cycles(exp, 3)  # and it stays counted once, cycle after cycle
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_total", status="success", **key) == 1
        assert value(m, "aep_flow_input_records_total", **key) == 1000
        assert value(m, "aep_flow_output_records_total", **key) == 993
        assert value(m, "aep_flow_failed_records_total", **key) == 7
        assert value(m, "aep_flow_input_bytes_total", **key) == 4096
        assert value(m, "aep_flow_input_files_total", **key) == 3
        assert value(m, "aep_flow_run_errors_total", code="MAPPER-3700-400", **key) == 1
        assert value(m, "aep_flow_error_records_total", code="MAPPER-3700-400", **key) == 7
        assert value(m, "aep_flow_run_duration_seconds_count", **key) == 1
        assert value(m, "aep_flow_run_duration_seconds_bucket", le="60.0", **key) == 0
        assert value(m, "aep_flow_run_duration_seconds_bucket", le="120.0", **key) == 1
        assert value(m, "aep_flow_run_duration_seconds_sum", **key) == pytest.approx(95)
        assert value(m, "aep_flow_runs_in_flight", **key) == 0
        assert await exp.stop(signal.SIGTERM) == 0

    async with ExporterProcess("--config.file", path) as exp:  # a restart with no state file: from 0
        await eventually(lambda: ready(exp), what="/ready after restart")
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_total", status="success", **key) == 0
        assert value(m, "aep_flow_input_records_total", **key) == 0
        assert value(m, "aep_flow_last_completed_run_input_records", **key) == 1000


async def test_endpoints_and_scrapes_never_wait_on_adobe(sim, config_file):
    sim.delay = 1.5  # every Adobe answer takes 1.5 s: the first cycle takes a while
    async with ExporterProcess("--config.file", config_file(), "--web.telemetry-path", "/prom") as exp:
        assert exp.url.endswith("/prom")
        async with aiohttp.ClientSession() as s:
            async with s.get(exp.base + "/ready") as r:
                assert r.status == 503
            async with s.get(exp.base + "/healthz") as r:
                assert r.status == 200
            async with s.get(exp.url) as r:  # answers at once with what it has
                assert r.status == 200
                assert "aep_exporter_build_info" in await r.text()
            async with s.get(exp.base + "/") as r:
                assert r.status == 200 and 'href="/prom"' in await r.text()
            async with s.get(exp.base + "/metrics") as r:
                assert r.status == 404
        await eventually(lambda: ready(exp), what="/ready")
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.get(
                exp.url, headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"}
            ) as r:
                assert r.headers["Content-Encoding"] == "gzip"
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                body = gzip.decompress(await r.read()).decode()
                assert body.rstrip().endswith("# EOF") and "aep_flow_info{" in body
            async with s.get(exp.url, headers={"Accept-Encoding": "identity"}) as r:
                assert r.headers["Content-Type"].startswith("text/plain") and "Content-Encoding" not in r.headers


async def test_gone_flow_leaves_metrics_and_comes_back(sim, world, config_file, strategy):
    flow = world.add_flow("prod", "to-be-deleted")
    world.finish_run(world.start_run(flow.id).id)
    key = {"sandbox": "prod", "flow_id": flow.id}
    async with ExporterProcess(
        "--config.file", config_file(extra=f"metadata_refresh: 1s\nfetch_strategy: {strategy}\n")
    ) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        assert value(await scrape(exp.url), "aep_flow_runs_total", status="success", **key) == 0
        removed = world.flows.pop(flow.id)

        async def gone():
            m = await scrape(exp.url)
            return not [k for (n, k) in m if dict(k).get("flow_id") == flow.id] and m

        m = await eventually(gone, what="the deleted flow's series to leave")
        assert value(m, "aep_exporter_flows_gone", sandbox="prod") == 1
        assert value(m, "aep_exporter_last_poll_success_timestamp_seconds", sandbox="prod") is not None
        world.flows[flow.id] = removed
        await eventually(lambda: counted(exp, key, 0), what="the flow to come back")


async def test_failing_flow_is_down_and_keeps_its_last_values(sim, world, config_file):
    async with ExporterProcess("--config.file", config_file()) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        sim.inject(500, path="/runs", times=10_000)

        async def down():
            m = await scrape(exp.url)
            return value(m, "aep_exporter_flow_up", **SEED) == 0 and m

        m = await eventually(down, what="the flow to be marked down")
        assert value(m, "aep_flow_last_completed_run_input_records", **SEED) == 100
        sim.faults.clear()

        async def up():
            return value(await scrape(exp.url), "aep_exporter_flow_up", **SEED) == 1

        await eventually(up, what="the flow to be up again")


async def test_check_mode(sim, world, config_file, capsys):
    async def check(path: str, env: dict | None = None) -> tuple[int, str]:
        result = await run_cli(
            "--config.file", path, "--check", env={"TEST_AEP_SECRET": world.client_secret, **(env or {})}
        )
        return result.code, result.out

    code, out = await check(config_file())
    assert code == 0, out
    assert (
        f"ok    prod  {SEED_FLOW_ID}  Monitoring Dataflow [enabled]  Amazon S3 → Data Lake (dataset 5f3c3cedb2805c194ff0b69a)"
        in out
    )

    missing = "00000000-0000-4000-8000-000000000000"
    code, out = await check(config_file(flows={"prod": [SEED_FLOW_ID, missing]}))
    assert code == 1
    assert f"FAIL  prod  {missing}  not found (404)" in out and f"ok    prod  {SEED_FLOW_ID}" in out

    code, out = await check(config_file(), env={"TEST_AEP_SECRET": "not-the-secret-at-all"})
    assert code == 1 and out.startswith("FAIL  token") and "not-the-secret" not in out


async def test_once_prints_the_exposition(sim, config_file):
    from prometheus_client.parser import text_string_to_metric_families

    result = await run_cli("--config.file", config_file(), "--once", env={"TEST_AEP_SECRET": sim.world.client_secret})
    assert result.code == 0, result.err
    families = {f.name: f for f in text_string_to_metric_families(result.out)}
    sample = [
        s for s in families["aep_flow_last_completed_run_input_records"].samples if s.labels["flow_id"] == SEED_FLOW_ID
    ]
    assert sample[0].value == 100


async def test_demo_mode_serves_metrics_without_credentials():
    async with ExporterProcess("--demo", env={"AEP_CLIENT_SECRET": ""}) as exp:
        # The first line says where the metrics are and that the Flow Service is the simulated one.
        assert exp.url.startswith("http://127.0.0.1:") and exp.url.endswith("/metrics")
        assert "(demo mode: simulated Flow Service at http://127.0.0.1:" in exp.first_line, exp.first_line

        async def seed_visible():
            m = await scrape(exp.url)
            return value(m, "aep_flow_last_completed_run_input_records", **SEED) == 100 and m

        m = await eventually(seed_visible, what="the demo's seed flow")
        assert {dict(k)["sandbox"] for k in series(m, "aep_flow_info")} == {"prod", "dev"}
        assert await exp.stop(signal.SIGINT) == 0


async def test_pages_that_shift_mid_pagination_count_each_run_once(sim, world, config_file, strategy):
    """New runs appearing while the exporter pages through /runs shift later pages, so some runs
    come twice in one poll: each must still be counted once."""
    sim.max_page_size = 20
    flow = world.add_flow("prod", "busy")
    for i in range(45):
        world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 1000 * (i + 60)).id)
    key = {"sandbox": "prod", "flow_id": flow.id}
    added: list[str] = []

    def add_runs_between_pages(kind: str, offset: int) -> None:
        if kind == "runs" and offset > 0 and len(added) < 6:
            for _ in range(3):
                added.append(world.finish_run(world.start_run(flow.id).id, input_records=10).id)

    # From the first listing on (the baseline pages through all 45 runs; later batched listings
    # resume from the newest run seen and are one page, per-flow ones page again).
    sim.before_page = add_runs_between_pages
    async with ExporterProcess("--config.file", config_file(extra=f"fetch_strategy: {strategy}\n")) as exp:
        await eventually(lambda: ready(exp), what="/ready")

        async def all_counted():
            m = await scrape(exp.url)
            return len(added) == 6 and value(m, "aep_flow_runs_total", status="success", **key) == len(added)

        await eventually(all_counted, what="the runs added mid-pagination to be counted")
        overlapping = [r for r in sim.requests if r["path"].endswith("/runs")]
        assert len(overlapping) >= 3
        await cycles(exp, 2)
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_total", status="success", **key) == 6
        assert value(m, "aep_flow_input_records_total", **key) == 60
