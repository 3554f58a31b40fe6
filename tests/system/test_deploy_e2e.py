"""The shipped Prometheus rules, alerts and Grafana dashboard against the real programs, on
loopback: the simulator with a flow scripted to fail, the exporter, Alertmanager with a webhook
receiver served here, and Prometheus with the shipped rule files."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

from aiohttp import web
from conftest import ExporterProcess, config_yaml, events_yaml, eventually, free_port, need, prometheus_query

from exporter.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SALESFORCE = "cfc0fee1-7dc0-40ef-b73e-d8b134c436f5"
# Objectives over every flow of the test, so that the dashboard's objectives row has data.
OBJECTIVES = """\
objectives:
  - {name: all-runs, kind: run_success, target: 99%}
  - {name: all-fresh, kind: freshness, target: 99%, threshold: 1h}
"""


def objective_rules(tmp_path: Path) -> Path:
    """`aep-flow-exporter rules` for OBJECTIVES: the rule file's path."""
    (tmp_path / "objectives.yaml").write_text(OBJECTIVES)
    assert main(["rules", "--objectives", str(tmp_path / "objectives.yaml"), "--out", str(tmp_path / "rules")]) == 0
    return tmp_path / "rules" / "objectives.rules.yml"


def dashboard_queries(source: str = ".*") -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, with Grafana's variables filled in
    as "All" (the source variable as `source`) and the rate interval made concrete."""
    dash = json.loads((DEPLOY / "grafana" / "aep-flow-exporter.json").read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$sandbox", ".*").replace("$flow", ".*")
            expr = expr.replace("$source", source)
            out.append((panel["title"], expr))
    return out


COUNTS = {"created": 3, "updated": 2, "skipped": 1, "deleted": 4}


def destination_run(flow_id: str, started_ms: int, counts: dict[str, int]) -> dict:
    """tests/payloads/destination_run.json (Adobe's documented destination run: no createdAt) for
    `flow_id`, started at `started_ms`, reporting each of `counts` as `<family>RecordCount`."""
    raw = json.loads((ROOT / "tests" / "payloads" / "destination_run.json").read_text())
    raw["id"], raw["flowId"] = str(uuid.uuid4()), flow_id
    raw["metrics"]["durationSummary"] = {"startedAtUTC": started_ms, "completedAtUTC": started_ms + 35_000}
    raw["metrics"]["recordSummary"].update({f"{k}RecordCount": v for k, v in counts.items()})
    return raw


async def start(*cmd: str, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL, stderr=open(log, "wb"))


async def test_alerts_reach_alertmanager_and_every_dashboard_panel_has_data(esim, world, tmp_path):
    prometheus, alertmanager = need("prometheus"), need("prometheus-alertmanager")
    sim = esim  # with Adobe I/O Events, so that the events row has data too

    failing = world.add_flow("prod", "crm-failing-nightly", frequency="day", source_spec_id=SALESFORCE)
    world.finish_run(world.start_run(failing.id, created_ms=world.now_ms() - 600_000).id, "failed")
    busy = world.add_flow("dev", "s3-events", period=3, script=["success", "partial", "failed"])
    world.finish_run(world.start_run(busy.id, created_ms=world.now_ms() - 60_000).id, "success")

    async def tick():
        while True:
            world.tick()
            await asyncio.sleep(0.2)

    # A destination dataflow, watched only because of include_destination_flows, whose run reports
    # the record families beyond in/out/failed (Adobe's documented destination run, made recent).
    destination = world.add_flow("prod", "activation-email", is_destination=True, frequency="once")
    world.serve_run(destination.id, destination_run(destination.id, world.now_ms() - 120_000, COUNTS))
    ticker = asyncio.create_task(tick())

    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    hook_runner = web.AppRunner(hook_app)
    await hook_runner.setup()
    hook_port = free_port()
    await web.TCPSite(hook_runner, "127.0.0.1", hook_port).start()

    config = tmp_path / "config.yaml"
    listed = {f.sandbox: [] for f in world.flows.values()}
    for f in world.flows.values():
        if not f.is_destination:
            listed[f.sandbox].append(f.id)
    text = config_yaml(sim, listed, extra="state_file: null\n" + events_yaml(sim, webhook=False))
    discover = "  - name: prod\n    discover: {}\n    include_destination_flows: true\n"
    config.write_text(text.replace("  - name: prod\n", discover))
    procs: list[asyncio.subprocess.Process] = []
    async with ExporterProcess("--config.file", str(config), cwd=str(tmp_path)) as exp:
        try:
            am_port, prom_port = free_port(), free_port()
            (tmp_path / "am.yml").write_text(
                "route:\n  receiver: hook\n  group_by: [alertname, flow_id]\n  group_wait: 1s\n"
                "  group_interval: 1s\n  repeat_interval: 1h\n"
                f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n"
            )
            procs.append(
                await start(
                    alertmanager,
                    f"--config.file={tmp_path / 'am.yml'}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    log=tmp_path / "alertmanager.log",
                )
            )
            target = exp.base.split("://", 1)[1]
            (tmp_path / "prometheus.yml").write_text(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                f"rule_files:\n  - {DEPLOY / 'prometheus' / 'rules.yml'}\n  - {DEPLOY / 'prometheus' / 'alerts.yml'}\n"
                f"  - {objective_rules(tmp_path)}\n"
                f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n"
                f"scrape_configs:\n  - job_name: aep-flow-exporter\n    static_configs:\n      - targets: ['{target}']\n"
            )
            procs.append(
                await start(
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    log=tmp_path / "prometheus.log",
                )
            )

            async def query(expr: str) -> dict | None:
                return await prometheus_query(prom_port, expr)

            async def target_up():
                body = await query('up{job="aep-flow-exporter"}')
                return (
                    body
                    and body["status"] == "success"
                    and body["data"]["result"]
                    and body["data"]["result"][0]["value"][1] == "1"
                )

            await eventually(target_up, timeout=60, what="the exporter target to be up in Prometheus")

            # Every panel's PromQL parses and returns data (a panel that shows nothing is a bug);
            # selecting a source type (the dashboard's $source variable) keeps only its flows.
            async def flows_of_source(source: str) -> set[str]:
                title, expr = dashboard_queries(source)[0]
                body = await query(expr)
                assert title == "Flow status" and body is not None, (title, body)
                return {r["metric"]["flow_id"] for r in body["data"]["result"]}

            await eventually(lambda: flows_of_source("Salesforce"), timeout=60, what="a flow of source Salesforce")
            assert await flows_of_source("Salesforce") == {failing.id}
            assert failing.id not in await flows_of_source("Amazon S3")
            queries = dashboard_queries()
            assert len(queries) >= 20
            empty: dict[str, str] = {}

            async def all_have_data():
                empty.clear()
                for title, expr in queries:
                    body = await query(expr)
                    assert body is not None and body["status"] == "success", (title, expr, body)
                    if not body["data"]["result"]:
                        empty[title] = expr
                return not empty

            try:
                await eventually(all_have_data, timeout=90, what="every dashboard query to return data")
            except AssertionError:
                raise AssertionError(f"panels without data: {json.dumps(empty, indent=1)}") from None

            # The destination flow's latest counts, as the record-families table shows them.
            for family, count in COUNTS.items():
                expr = f'aep_flow_last_completed_run_{family}_records{{flow_id="{destination.id}"}}'
                result = (await query(expr) or {}).get("data", {}).get("result", [])
                assert [float(r["value"][1]) for r in result] == [count], (expr, result)

            # The failed-run alert fires and reaches the webhook, naming the flow.
            def fired() -> list[dict]:
                return [
                    a
                    for msg in received
                    for a in msg["alerts"]
                    if a["labels"].get("alertname") == "AepFlowLastRunFailed"
                    and a["labels"].get("flow_id") == failing.id
                    and a["status"] == "firing"
                ]

            async def alert_arrived():
                return fired()

            alerts = await eventually(alert_arrived, timeout=60, what="AepFlowLastRunFailed at the webhook")
            alert = alerts[0]
            assert alert["labels"]["flow_name"] == "crm-failing-nightly"
            assert alert["labels"]["severity"] == "critical"
            assert "crm-failing-nightly" in alert["annotations"]["description"]
            # ... and its source and dataset, as the exporter resolved them (names.py).
            assert alert["labels"]["source_name"] == "Salesforce"
            assert "Salesforce → dataset " in alert["annotations"]["description"], alert["annotations"]
            assert alert["annotations"]["runbook_url"].endswith("runbook.md#aepflowlastrunfailed")
            # The flows that did not fail last raise no such alert.
            assert not [
                a
                for msg in received
                for a in msg["alerts"]
                if a["labels"].get("alertname") == "AepFlowLastRunFailed"
                and a["labels"].get("flow_name") == "Monitoring Dataflow"
            ]
        finally:
            ticker.cancel()
            for p in procs:
                p.terminate()
            for p in procs:
                await asyncio.wait_for(p.wait(), timeout=30)
            await hook_runner.cleanup()


def test_dashboard_queries_only_use_metrics_the_exporter_or_the_rules_define(tmp_path):
    from exporter.adobe.fields import RUN_FIELDS

    exported = set(
        re.findall(
            r'"(aep_[a-z0-9_]+)"',
            "".join(p.read_text() for p in (ROOT / "exporter").rglob("*.py") if "simulator" not in p.parts),
        )
    )
    exported |= {name for f in RUN_FIELDS for name in (f.total_metric, f.last_metric, f.activity_metric)}
    recorded = set(re.findall(r"record: (\S+)", (DEPLOY / "prometheus" / "rules.yml").read_text()))
    recorded |= set(re.findall(r"record: (\S+)", objective_rules(tmp_path).read_text()))
    known = {n + s for n in exported for s in ("", "_total", "_bucket", "_count", "_sum")} | recorded | {"up"}
    for title, expr in dashboard_queries():
        for name in re.findall(r"\b(aep_[a-z0-9_:]+|aep_flow:[a-z0-9_:]+)", expr):
            assert name in known, (title, name)
