"""Against a mock generated from Adobe's OpenAPI specs (tests/payloads/spec_examples.json: every
operation answers its spec example, whatever was asked, as a static mock server does), `--once`
reads the spec's example flow and its run, under both strategies.

The example answers are hostile in ways our simulator is not by default: the runs listing's
next link names another collection (`/connections?continuationToken=…`), and its token, taken
onto `/runs`, answers the same page again. The listing ends there with what it got: the run is
read, the flow is up, and nothing is concluded from what a cut listing lacks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from conftest import config_yaml, run_cli
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import BASE_PATH, World
from exporter.simulator.catalog import CATALOG_PATH

ASKED = web.AppKey("asked", list)
EXAMPLES = json.loads((Path(__file__).parents[1] / "payloads" / "spec_examples.json").read_text())
FLOW_ID = EXAMPLES["retrieveFlow"]["items"][0]["id"]
RUN = EXAMPLES["listFlowRuns"]["items"][0]
ROUTES = {
    "/runs": "listFlowRuns",
    "/runs/{id}": "retrieveFlowRun",
    "/flows": "listFlows",
    "/flows/{id}": "retrieveFlow",
    "/connectionSpecs": "listConnectionSpecs",
    "/connectionSpecs/{id}": "retrieveConnectionSpec",
    "/targetConnections": "getTargetConnections",
    "/targetConnections/{id}": "retrieveTargetConnection",
}


def spec_mock() -> web.Application:
    """Each operation's example answer, whatever the query."""
    app = web.Application()
    asked: list[str] = []
    app[ASKED] = asked

    def answer(operation: str):
        async def handler(request: web.Request) -> web.Response:
            asked.append(str(request.rel_url))
            return web.json_response(EXAMPLES[operation])

        return handler

    for path, operation in ROUTES.items():
        app.router.add_get(BASE_PATH + path, answer(operation))
    app.router.add_get(CATALOG_PATH + "/dataSets/{ids}", answer("retrieveDataset"))
    return app


@pytest.fixture
async def mock_origin(aiohttp_server):
    server = await aiohttp_server(spec_mock())
    return f"http://127.0.0.1:{server.port}", server.app[ASKED]


def samples(text: str, name: str) -> dict[str, float]:
    return {
        json.dumps(s.labels, sort_keys=True): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and s.labels.get("flow_id") == FLOW_ID
    }


@pytest.mark.parametrize("strategy", ["batched", "per_flow"])
async def test_once_reads_the_spec_example_flow_and_its_run(sim, world: World, tmp_path, mock_origin, strategy):
    origin, asked = mock_origin
    config = config_yaml(sim, flows={"prod": [FLOW_ID]}, extra=f"state_file: null\nfetch_strategy: {strategy}\n")
    config = config.replace(f"  base_url: {sim.origin}{BASE_PATH}", f"  base_url: {origin}{BASE_PATH}")
    (tmp_path / "c.yaml").write_text(config)
    once = await run_cli(
        "--config.file", str(tmp_path / "c.yaml"), "--once", env={"TEST_AEP_SECRET": world.client_secret}
    )
    assert once.code == 0, once.err
    assert list(samples(once.out, "aep_exporter_flow_up").values()) == [1.0]
    info = samples(once.out, "aep_flow_info")
    assert len(info) == 1 and json.loads(next(iter(info)))["flow_name"] == EXAMPLES["retrieveFlow"]["items"][0]["name"]
    # The example run: its status, and its records (2 in, 2 out) from the spec.
    assert list(samples(once.out, "aep_flow_last_run_created_timestamp_seconds").values()) == [RUN["createdAt"] / 1000]
    status = samples(once.out, "aep_flow_last_run_status")
    assert [json.loads(k)["status"] for k, v in status.items() if v == 1] == ["success"], status
    assert list(samples(once.out, "aep_flow_last_completed_run_output_records").values()) == [2.0]
    assert any(a.startswith(f"{BASE_PATH}/runs?") and "continuationToken=" in a for a in asked), asked
    assert not any("/connections" in a for a in asked)  # the stray link itself is never followed
