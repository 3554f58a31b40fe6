"""The flow pages' JSON view over the simulator: `/api/v1/flows` lists every watched flow,
`/api/v1/flows/{id}` gives one with its completed runs newest first, with the numbers and error
messages the simulator served; links into Adobe only with a tenant configured; basic auth and the
page's CSP as on `/`."""

from __future__ import annotations

import aiohttp
from conftest import ExporterProcess, eventually, scrape, series

from exporter.simulator import World


async def _json(url: str) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        json_body = r.status == 200 and r.content_type == "application/json"
        return r.status, (await r.json() if json_body else {}), dict(r.headers)


async def _runs(exp: ExporterProcess, flow_id: str, n: int) -> dict | None:
    status, doc, _ = await _json(f"{exp.base}/api/v1/flows/{flow_id}")
    return doc["flow"] if status == 200 and len(doc["flow"]["runs"]) >= n else None


async def test_the_json_view_gives_runs_as_the_simulator_served_them(sim, world: World, config_file):
    flow = world.add_flow("prod", "orders")
    ok = world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 120_000).id, input_records=40)
    bad = world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 60_000).id, "failed")
    path = config_file(extra="experience_tenant: acme\n")
    async with ExporterProcess("--config.file", path) as exp:
        doc = await eventually(lambda: _runs(exp, flow.id, 2), what="the flow's two runs")
        listing = (await _json(exp.base + "/api/v1/flows"))[1]
        status, _, _ = await _json(exp.base + "/api/v1/flows/00000000-0000-4000-8000-000000000000")
        _, _, headers = await _json(f"{exp.base}/flows/{flow.id}")
        m = await scrape(exp.url)
    assert status == 404
    [link] = [dict(k) for k in series(m, "aep_flow_adobe_link_info", flow_id=flow.id)]
    assert link["url"] == doc["adobe_url"]  # what alerts and dashboards link to
    assert {f["id"] for f in listing["flows"]} == set(world.flows)
    assert "runs" not in listing["flows"][0]
    assert [r["id"] for r in doc["runs"]] == [bad.id, ok.id]  # newest first
    newest, older = doc["runs"]
    assert (older["status"], older["input_records"], older["output_records"]) == ("success", 40, ok.output_records)
    assert older["duration_seconds"] == (ok.completed_ms - ok.started_ms) / 1000
    assert newest["status"] == "failed"
    assert newest["errors"] == [{"code": "CONNECTOR-1001-500", "message": "Error in copying the data from Source."}]
    assert doc["name"] == "orders" and doc["dataset_name"] == "orders dataset"
    assert doc["adobe_url"] == (
        f"https://experience.adobe.com/#/@acme/sname:prod/platform/source/dataflows/{flow.id}/activity"
    )
    assert newest["adobe_url"] == doc["adobe_url"] + "/" + bad.id
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_without_a_tenant_there_are_no_links(sim, world: World, config_file):
    flow = world.add_flow("prod", "orders")
    world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 60_000).id)
    async with ExporterProcess("--config.file", config_file()) as exp:
        doc = await eventually(lambda: _runs(exp, flow.id, 1), what="the flow's run")
        m = await scrape(exp.url)
    assert series(m, "aep_flow_adobe_link_info") == {}
    assert doc["adobe_url"] is None and doc["runs"][0]["adobe_url"] is None
