"""Objectives as code against promtool: the rules generated from the example objectives and from a
file with every kind and selector pass `promtool check rules`, and the tests generated beside them
pass `promtool test rules` (a budget burning at each workbook rate fires that pair's alert and none
of the other severity; a healthy flow fires none; a sparse flow does what docs/objectives.md says).
The generated cases can fail: a rule that burns at the wrong rate is caught. And a real Prometheus
evaluates the example's rules against the demo's kinds of flow: the failing ones burn budget.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml
from conftest import ExporterProcess, config_yaml, eventually, free_port, need, prometheus_query

from exporter.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "example": ROOT / "deploy" / "objectives.example.yaml",
    "every kind and selector": Path(__file__).resolve().parent / "objectives-every-kind.yaml",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([need("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def generate(objectives: Path, out: Path, *extra: str) -> None:
    assert main(["rules", "--objectives", str(objectives), "--out", str(out), *extra]) == 0


def test_the_shipped_rules_and_tests_are_the_generators_output(tmp_path, monkeypatch):
    """deploy/prometheus/objectives.{rules,tests}.yml, which the compose stack loads, are the example's:
    after editing deploy/objectives.example.yaml, run from the repository root
    `aep-flow-exporter rules --objectives deploy/objectives.example.yaml --out deploy/prometheus`."""
    monkeypatch.chdir(ROOT)
    generate(Path("deploy/objectives.example.yaml"), tmp_path)
    for name in ("objectives.rules.yml", "objectives.tests.yml"):
        shipped = (ROOT / "deploy" / "prometheus" / name).read_text()
        assert shipped == (tmp_path / name).read_text(), f"deploy/prometheus/{name} is stale: regenerate it"


@pytest.mark.parametrize("name", list(FILES))
def test_generated_rules_pass_promtool_check_and_their_generated_tests(name, tmp_path):
    need("promtool")
    generate(FILES[name], tmp_path)
    check = promtool("check", "rules", "objectives.rules.yml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = yaml.safe_load((tmp_path / "objectives.tests.yml").read_text())["tests"]
    objectives = {o["name"] for o in yaml.safe_load(FILES[name].read_text())["objectives"]}
    assert {t["name"].split(":")[0] for t in tests} == objectives  # every objective has its cases
    run = promtool("test", "rules", "objectives.tests.yml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "SUCCESS" in run.stdout


def test_the_generated_tests_catch_a_rule_that_burns_at_the_wrong_rate(tmp_path):
    need("promtool")
    generate(FILES["example"], tmp_path, "--exporter-url", "https://exporter.example.com")
    tests = yaml.safe_load((tmp_path / "objectives.tests.yml").read_text())
    page = next(t for t in tests["tests"] if t["name"].startswith("crm-runs: healthy for"))
    (tmp_path / "one.tests.yml").write_text(yaml.safe_dump(dict(tests, tests=[page]), allow_unicode=True))
    assert promtool("test", "rules", "one.tests.yml", cwd=tmp_path).returncode == 0
    rules = tmp_path / "objectives.rules.yml"
    text = rules.read_text()
    assert text.count("> 0.144\n") >= 1
    rules.write_text(text.replace("> 0.144\n", "> 0.5\n"))  # the 14.4x page, made a 50x one
    failed = promtool("test", "rules", "one.tests.yml", cwd=tmp_path)
    assert failed.returncode != 0 and "AepObjectiveFastBurn" in failed.stdout + failed.stderr


SALESFORCE = "cfc0fee1-7dc0-40ef-b73e-d8b134c436f5"


def demo_flows(world) -> dict[str, object]:
    """The demo's kinds of flow (exporter/simulator: demo_world), selected by the example objectives
    (orders-fresh: prod's s3-orders*; crm-runs: Salesforce sources), running every few seconds."""
    now = world.now_ms()
    flows = {
        "crm healthy": world.add_flow(
            "prod", "crm-salesforce-contacts", period=3, script=["success"], source_spec_id=SALESFORCE
        ),
        "crm failing": world.add_flow(
            "prod", "crm-salesforce-leads", period=3, script=["failed"], source_spec_id=SALESFORCE
        ),
        "orders fresh": world.add_flow("prod", "s3-orders-hourly", period=3, script=["success"]),
        # Its last success three hours ago (older than orders-fresh's 2h), every run since failed.
        "orders stale": world.add_flow("prod", "s3-orders-eu", period=3, script=["failed"]),
    }
    old = world.start_run(flows["orders stale"].id, created_ms=now - 3 * 3600_000)
    world.finish_run(old.id, "success", completed_ms=old.created_ms + 60_000)
    return flows


async def test_a_real_prometheus_burns_the_budget_of_the_demos_failing_flows_only(sim, world, tmp_path):
    """The example's generated rules in a real Prometheus scraping the exporter over the simulated
    Flow Service: the failing and the stale flow burn budget and fire their page, the healthy do not."""
    prometheus = need("prometheus")
    flows = demo_flows(world)
    generate(FILES["example"], tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra="state_file: null\nexperience_tenant: acme\n"))

    async def tick():
        while True:
            world.tick()
            await asyncio.sleep(0.2)

    ticker = asyncio.create_task(tick())
    async with ExporterProcess("--config.file", str(config), cwd=str(tmp_path)) as exp:
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {tmp_path / 'objectives.rules.yml'}\n"
            "scrape_configs:\n  - job_name: aep-flow-exporter\n"
            f"    static_configs:\n      - targets: ['{exp.base.split('://', 1)[1]}']\n"
        )
        proc = await asyncio.create_subprocess_exec(
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),
        )
        try:

            async def by_flow(expr: str) -> dict[str, float]:
                body = await prometheus_query(port, expr)
                if not body or body.get("status") != "success":
                    return {}
                return {r["metric"]["flow_id"]: float(r["value"][1]) for r in body["data"]["result"]}

            ids = {name: f.id for name, f in flows.items()}

            async def budgets():
                got = await by_flow("aep_objective:error_budget:remaining")
                return set(ids.values()) <= set(got) and got

            budget = await eventually(budgets, timeout=90, what="every demo flow's budget in Prometheus")
            assert budget[ids["crm healthy"]] == 1 and budget[ids["orders fresh"]] == 1, budget
            assert budget[ids["crm failing"]] < 0 and budget[ids["orders stale"]] < 0, budget

            async def paged():
                got = await by_flow('ALERTS{alertname="AepObjectiveFastBurn", alertstate="firing"}')
                return {ids["crm failing"], ids["orders stale"]} <= set(got) and got

            firing = await eventually(paged, timeout=90, what="the page for the failing and the stale flow")
            assert ids["crm healthy"] not in firing and ids["orders fresh"] not in firing
            assert not set(await by_flow('ALERTS{alertname="AepObjectiveSlowBurn"}')) - {
                ids["crm failing"],
                ids["orders stale"],
            }
            ratio = await by_flow("aep_objective:error_ratio:rate5m")
            assert ratio[ids["crm healthy"]] == 0 and ratio[ids["orders fresh"]] == 0, ratio
            assert ratio[ids["crm failing"]] == 1 and ratio[ids["orders stale"]] == 1, ratio

            # The page names the flow and links to its page on the exporter, which answers.
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/api/v1/alerts") as r:
                    alerts = (await r.json())["data"]["alerts"]
                page = next(
                    a
                    for a in alerts
                    if a["labels"]["alertname"] == "AepObjectiveFastBurn"
                    and a["labels"]["flow_id"] == ids["crm failing"]
                )
                assert (
                    page["labels"]["flow_name"] == "crm-salesforce-leads" and page["labels"]["objective"] == "crm-runs"
                )
                assert page["labels"]["source_name"] == "Salesforce" and page["labels"]["severity"] == "critical"
                assert 'Dataflow "crm-salesforce-leads"' in page["annotations"]["description"]
                assert page["annotations"]["flow_page"] == f"{exp.base}/flows/{ids['crm failing']}"
                adobe = f"https://experience.adobe.com/#/@acme/sname:prod/platform/source/dataflows/{ids['crm failing']}/activity"
                assert page["annotations"]["description"].endswith(f"In Adobe: {adobe}"), page["annotations"]
                async with session.get(page["annotations"]["flow_page"]) as r:
                    assert r.status == 200 and "crm-salesforce-leads" in await r.text()
        finally:
            ticker.cancel()
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=30)
