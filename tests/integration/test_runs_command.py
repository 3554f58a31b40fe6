"""`aep-flow-exporter runs` against the simulator, as a user runs it: a flow's runs over several
pages, newest first, as lines and as Adobe's JSON; the filters; a listing that ignores a filter
is checked against the question; Adobe's words made printable."""

from __future__ import annotations

import json

import pytest
from conftest import config_yaml, run_cli

from exporter.simulator import BASE_PATH, FRIENDLY

HOUR_MS = 3_600_000


@pytest.fixture
def flows(sim, world):
    """65 runs of one flow, one an hour back from now (every fifth failed), 10 days of them older
    than a week, and runs of another flow beside them; pages of 20."""
    sim.profile = FRIENDLY.but(page_cap=20)
    flow = world.add_flow("prod", "s3-orders")
    other = world.add_flow("prod", "crm-accounts")
    now = world.now_ms()
    for i in range(65):
        hours = i if i < 55 else 24 * 8 + i  # the last ten: more than a week ago
        run = world.start_run(flow.id, created_ms=now - hours * HOUR_MS - 60_000)
        world.finish_run(run.id, "failed" if i % 5 == 0 else "success", completed_ms=run.created_ms + 125_500)
    for i in range(5):
        run = world.start_run(other.id, created_ms=now - i * HOUR_MS)
        world.finish_run(run.id, "failed")
    return flow, other


@pytest.fixture
def config(sim, tmp_path, flows):
    path = tmp_path / "c.yaml"
    path.write_text(config_yaml(sim))
    return str(path)


async def runs(config: str, *args: str) -> tuple[int, str, str]:
    result = await run_cli("runs", "--config.file", config, "--sandbox", "prod", *args, timeout=60)
    return result.code, result.out, result.err


def newest(world, flow_id: str, n: int, status: str | None = None) -> list[str]:
    week_ago = world.now_ms() - 7 * 24 * HOUR_MS
    mine = [r for r in world.runs_by_flow[flow_id] if r.created_ms > week_ago and status in (None, r.status)]
    return [r.id for r in sorted(mine, key=lambda r: r.created_ms, reverse=True)][:n]


def listing_pages(sim) -> int:
    return sum(1 for r in sim.requests if r["method"] == "GET" and r["path"] == BASE_PATH + "/runs")


async def test_lines_newest_first_over_several_pages(sim, world, config, flows):
    flow, _ = flows
    code, out, err = await runs(config, "--flow", flow.id, "--limit", "100")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["run", "created", "(UTC)", "duration", "status", "records", "in/out/failed", "errors"]
    assert [line.split()[0] for line in lines[1:]] == newest(world, flow.id, 100)  # 55: the week's, not older
    assert listing_pages(sim) == 3  # 55 runs in pages of 20
    failed = next(line for line in lines[1:] if " failed " in line)
    assert "2m05s" in failed and "0/0/0" in failed
    assert failed.endswith("CONNECTOR-1001-500: Error in copying the data from Source.")
    ok = next(line for line in lines[1:] if " success " in line)
    assert ok.endswith(" -")  # no errors


async def test_json_is_what_adobe_returned(sim, world, config, flows):
    flow, _ = flows
    code, out, err = await runs(config, "--flow", flow.id, "--limit", "30", "--json")
    assert code == 0, err
    doc = json.loads(out)
    ids = newest(world, flow.id, 30)
    assert [item["id"] for item in doc["items"]] == ids
    assert doc["items"] == [world.run_json(world.runs[i]) for i in ids]


async def test_filters_status_since_and_limit(sim, world, config, flows):
    flow, _ = flows
    code, out, err = await runs(config, "--flow", flow.id, "--status", "failed", "--limit", "100")
    assert code == 0, err
    shown = [line.split()[0] for line in out.splitlines()[1:]]
    assert shown == newest(world, flow.id, 100, "failed") and len(shown) == 11
    code, out, err = await runs(config, "--flow", flow.id, "--since", "10h", "--limit", "100")
    assert code == 0, err
    assert len(out.splitlines()) - 1 == 10  # created 1m, 1h1m … 9h1m ago
    code, out, err = await runs(config, "--flow", flow.id)  # default --limit 20
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == newest(world, flow.id, 20)
    code, out, err = await runs(config, "--flow", flow.id, "--status", "cancelled")
    assert code == 0 and out == "no runs\n"


async def test_a_listing_that_ignores_a_filter_is_checked_against_the_question(sim, world, config, flows):
    flow, _ = flows
    sim.profile = FRIENDLY.but(page_cap=20, created_after=False)  # createdAt> silently dropped
    code, out, err = await runs(config, "--flow", flow.id, "--limit", "100")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == newest(world, flow.id, 100)
    assert "left out 10 listed item(s)" in err


async def test_adobe_words_are_made_printable(sim, world, config, flows):
    flow, _ = flows
    run = world.start_run(flow.id)
    world.finish_run(run.id, "failed")
    run.run_errors = [{"code": "X-1\x1b[2J", "message": "bad\x1b]0;owned\x07 row"}]
    code, out, err = await runs(config, "--flow", flow.id, "--limit", "1")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert out.splitlines()[1].endswith("X-1\\x1b[2J: bad\\x1b]0;owned\\x07 row")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--flow", "s3-orders"], "--flow: not a flow ID"),
        (["--flow", "c9cef9cb-c934-4467-8ef9-cbc934546741", "--since", "lately"], "--since:"),
        (["--flow", "c9cef9cb-c934-4467-8ef9-cbc934546741", "--limit", "0"], "--limit must be at least 1"),
    ],
)
async def test_bad_input_exits_2_before_any_request(sim, config, args, message):
    code, out, err = await runs(config, *args)
    assert code == 2 and message in err and sim.requests == []
