"""A real Prometheus scrapes the exporter, and promtool lints what it serves.

The programs come from Debian's `prometheus` package, which .ci/run installs. Where they are
missing the tests skip on a developer's machine and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import subprocess

import aiohttp
from conftest import ExporterProcess, config_yaml, eventually, free_port, need, prometheus_query

from exporter.simulator import SEED_FLOW_ID


async def fetch_text(url: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200
            return await r.text()


async def test_promtool_check_metrics_on_a_real_scrape(sim, world, tmp_path):
    promtool = need("promtool")
    flow = world.add_flow("dev", 'quotes "and" \\backslashes\\ and\nnewlines ünïcode')
    world.finish_run(world.start_run(flow.id).id, "partial")
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim))
    async with ExporterProcess("--config.file", str(config)) as exp:

        async def ready():
            text = await fetch_text(exp.url)
            return "aep_flow_info{" in text and flow.id in text and text

        text = await eventually(ready, what="flow metrics")
    from prometheus_client.parser import text_string_to_metric_families

    names = {
        s.labels["flow_name"]
        for f in text_string_to_metric_families(text)
        if f.name == "aep_flow_info"
        for s in f.samples
    }
    assert flow.name in names  # escaped on the way out, the same string on the way back in
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


async def test_prometheus_scrapes_the_exporter(sim, tmp_path):
    prometheus = need("prometheus")
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim))
    async with ExporterProcess("--config.file", str(config)) as exp:
        target = exp.base.split("://", 1)[1]
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: aep-flow-exporter\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        proc = await asyncio.create_subprocess_exec(
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),
        )
        try:

            async def query(expr: str):
                body = await prometheus_query(prom_port, expr)
                return body and body.get("status") == "success" and body["data"]["result"]

            up = await eventually(lambda: query('up{job="aep-flow-exporter"} == 1'), timeout=60, what="target up")
            assert up[0]["value"][1] == "1"
            seed = await eventually(
                lambda: query(f'aep_flow_last_completed_run_input_records{{flow_id="{SEED_FLOW_ID}"}}'),
                timeout=30,
                what="seed records in Prometheus",
            )
            assert seed[0]["value"][1] == "100"
            assert seed[0]["metric"]["sandbox"] == "prod"
            # The info join dashboards use: records by flow name.
            joined = await eventually(
                lambda: query(
                    "aep_flow_last_completed_run_input_records * on(sandbox, flow_id) group_left(flow_name) aep_flow_info"
                ),
                timeout=30,
                what="the info join",
            )
            assert joined[0]["metric"]["flow_name"] == "Monitoring Dataflow"
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=30)
