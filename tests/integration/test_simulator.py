"""The simulator itself: each ApiProfile switch does what it says, and a long-running simulator
(the demo's) forgets what is past its window, so its memory stays flat over days."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from exporter.simulator import BASE_PATH, TOKEN_PATH, ApiProfile, Simulator, World, demo_world, start_simulator
from exporter.simulator.app import SWEEP_EVERY


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Client:
    """Just enough of a Flow Service client to look at raw answers."""

    def __init__(self, sim: Simulator, origin: str, session: aiohttp.ClientSession) -> None:
        self.sim, self.origin, self.session = sim, origin, session
        self.token = ""

    async def login(self) -> None:
        w = self.sim.world
        form = {"grant_type": "client_credentials", "client_id": w.client_id, "client_secret": w.client_secret}
        async with self.session.post(self.origin + TOKEN_PATH, data={**form, "scope": "openid"}) as r:
            self.token = (await r.json())["access_token"]

    async def get(self, path_or_href: str, params: list[tuple[str, str]] | None = None) -> tuple[int, Any]:
        w = self.sim.world
        headers = {
            "Authorization": f"Bearer {self.token}",
            "x-api-key": w.client_id,
            "x-gw-ims-org-id": w.org_id,
            "x-sandbox-name": "prod",
        }
        url = path_or_href if path_or_href.startswith("http") else self.origin + path_or_href
        async with self.session.get(url, params=params or [], headers=headers) as r:
            return r.status, await r.json(content_type=None) if r.status != 414 else await r.text()

    async def all_pages(self, params: list[tuple[str, str]], resend: bool = True) -> tuple[list[str], list[str]]:
        """Ids of every item of a /runs listing, and every next href followed."""
        status, body = await self.get(BASE_PATH + "/runs", params)
        assert status == 200, body
        ids, hrefs = [i["id"] for i in body["items"]], []
        while body["_links"].get("next"):
            href = body["_links"]["next"]["href"]
            hrefs.append(href)
            split = urlsplit(href)
            query = parse_qsl(split.query)
            extra = params if resend and not any(k == "property" for k, _ in query) else []
            path = split.path if split.path.startswith(BASE_PATH) else BASE_PATH + split.path
            base = f"{split.scheme}://{split.netloc}" if split.netloc else self.origin
            status, body = await self.get(base + path, extra + query)
            assert status == 200, body
            ids += [i["id"] for i in body["items"]]
        return ids, hrefs


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def served(clock):
    """(sim, client, flow ids): two flows of 7 runs each in sandbox prod, a minute apart."""
    world = World(clock=clock)
    flows = [world.add_flow("prod", f"f{i}").id for i in range(2)]
    for flow_id in flows:
        for i in range(7):
            world.finish_run(world.start_run(flow_id, created_ms=world.now_ms() - 60_000 * (i + 1)).id)
    sim = Simulator(world)
    runner, origin = await start_simulator(sim)
    async with aiohttp.ClientSession() as session:
        client = Client(sim, origin, session)
        await client.login()
        yield sim, client, flows
    await runner.cleanup()


def runs_of(world: World, *flow_ids: str) -> set[str]:
    return {r.id for r in world.runs.values() if r.flow_id in flow_ids}


@pytest.mark.parametrize("form", ["host", "base", "absolute", "mixed"])
async def test_page_cap_and_next_link_forms(served, form):
    sim, client, flows = served
    sim.profile = ApiProfile(page_cap=3, next_link=form, repeat_query=form == "absolute")
    ids, hrefs = await client.all_pages([("property", f"flowId=={flows[0]}"), ("limit", "100")])
    assert sorted(ids) == sorted(runs_of(sim.world, flows[0])) and len(hrefs) == 2  # 3 + 3 + 1
    for i, href in enumerate(hrefs):
        if form == "absolute":
            assert href.startswith(client.origin + BASE_PATH + "/runs?") and "property=flowId" in href
        elif form == "host" or (form == "mixed" and i == 0):
            assert href.startswith(BASE_PATH + "/runs?continuationToken=")
        else:
            assert href.startswith("/runs?continuationToken=")


async def test_long_tokens_that_forget_the_filters(served):
    sim, client, flows = served
    sim.profile = ApiProfile(page_cap=3, token_length=5000, token_carries_query=False)
    params = [("property", f"flowId=={flows[0]}")]
    ids, hrefs = await client.all_pages(params)
    assert sorted(ids) == sorted(runs_of(sim.world, flows[0]))
    assert all(len(dict(parse_qsl(urlsplit(h).query))["continuationToken"]) == 5000 for h in hrefs)
    ids, _ = await client.all_pages(params, resend=False)  # the filters not sent again: unfiltered
    assert set(ids) & runs_of(sim.world, flows[1])
    status, body = await client.get(BASE_PATH + "/runs", [("continuationToken", hrefs[0][-5000:-1] + "x")])
    assert status == 400 and body["type"].endswith("FLOW-1431-400")


@pytest.mark.parametrize("status", [400, 414])
async def test_request_line_limit(served, status):
    sim, client, flows = served
    sim.profile = ApiProfile(max_request_line=200, request_line_status=status)
    line = len(f"GET {BASE_PATH}/runs?property=flowId%3D%3D{flows[0]} HTTP/1.1")
    got, _ = await client.get(BASE_PATH + "/runs", [("property", f"flowId=={flows[0]}")])
    assert got == (200 if line <= 200 else status)
    padding = 200 - line - len("&limit=")  # exactly at the limit: accepted; one byte more: refused
    got, _ = await client.get(BASE_PATH + "/runs", [("property", f"flowId=={flows[0]}"), ("limit", "1" * padding)])
    assert got == 200
    got, body = await client.get(
        BASE_PATH + "/runs", [("property", f"flowId=={flows[0]}"), ("limit", "1" * (padding + 1))]
    )
    assert got == status and ("Too Large" in body if status == 414 else "too long" in body["detail"])


async def test_orderby_ignored_and_created_after_ignored(served):
    sim, client, flows = served
    asked = [("property", f"flowId=={flows[0]}"), ("orderby", "-createdAt")]
    _, body = await client.get(BASE_PATH + "/runs", asked)
    created = [i["createdAt"] for i in body["items"]]
    assert created == sorted(created, reverse=True)
    sim.profile = ApiProfile(orderby=False, created_after=False)
    recent = [("property", f"createdAt>{sim.world.now_ms() - 150_000}")]
    _, body = await client.get(BASE_PATH + "/runs", asked + recent)
    assert [i["id"] for i in body["items"]] == sorted(runs_of(sim.world, flows[0]))  # its own order: by id
    sim.profile = ApiProfile()
    _, body = await client.get(BASE_PATH + "/runs", asked + recent)
    assert len(body["items"]) == 2


async def test_comma_lists_refused_or_read_literally(served):
    sim, client, flows = served
    both = [("property", f"flowId=={flows[0]},{flows[1]}")]
    _, body = await client.get(BASE_PATH + "/runs", both)
    assert len(body["items"]) == 14
    sim.profile = ApiProfile(comma_lists="refuse")
    status, body = await client.get(BASE_PATH + "/runs", both)
    assert status == 400 and body["type"].endswith("FLOW-1443-400") and body["report"]["detailed-message"]
    sim.profile = ApiProfile(comma_lists="literal", list_fields=frozenset({"flowId"}))
    status, body = await client.get(BASE_PATH + "/runs", both)
    assert status == 200 and body["items"] == []
    odd = sim.world.add_flow("prod", "odd", flow_id="a,b")
    run = sim.world.start_run(odd.id)
    _, body = await client.get(BASE_PATH + "/runs", [("property", "flowId==a,b")])
    assert [i["id"] for i in body["items"]] == [run.id]
    _, body = await client.get(BASE_PATH + "/runs", [("property", f"id=={run.id},{run.id}")])  # not flowId: lists
    assert [i["id"] for i in body["items"]] == [run.id]


async def test_clock_offset_and_runs_listed_late(served, clock):
    sim, client, flows = served
    sim.profile = ApiProfile(clock_offset=-600, listing_delay=5)
    run = sim.world.start_run(flows[0])
    assert run.created_ms == (clock.now - 600) * 1000
    _, body = await client.get(BASE_PATH + "/runs", [("property", f"id=={run.id}")])
    assert body["items"] == []
    clock.now += 5
    _, body = await client.get(BASE_PATH + "/runs", [("property", f"id=={run.id}")])
    assert [i["createdAt"] for i in body["items"]] == [run.created_ms]


async def test_next_link_that_leads_to_another_collection(served):
    sim, client, flows = served
    sim.profile = ApiProfile(page_cap=3, foreign_next_every=2)
    _, hrefs = await client.all_pages([("property", f"flowId=={flows[0]}")])
    assert hrefs[0].startswith(BASE_PATH + "/runs?") and hrefs[1].startswith("/connections?")
    status, body = await client.get(BASE_PATH + hrefs[1])
    assert status == 200 and body["items"] and all("connectionSpec" in i and "flowId" not in i for i in body["items"])


async def test_a_stray_link_whose_token_continues_the_collection_asked_for(served):
    sim, client, flows = served
    sim.profile = ApiProfile(page_cap=3, foreign_next_every=1, foreign_token_continues=True)
    query = [("property", f"flowId=={flows[0]}")]
    _, first = await client.get(BASE_PATH + "/runs", query)
    href = first["_links"]["next"]["href"]
    assert href.startswith(BASE_PATH + "/connections?")
    token = href.split("continuationToken=", 1)[1]
    status, second = await client.get(BASE_PATH + "/runs", [*query, ("continuationToken", token)])
    assert status == 200 and second["items"] and all(i["flowId"] == flows[0] for i in second["items"])
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


async def test_run_deleted_in_flight(served):
    sim, client, flows = served
    run = sim.world.start_run(flows[0])
    sim.world.delete_run(run.id)
    _, body = await client.get(BASE_PATH + "/runs", [("property", f"id=={run.id}")])
    assert body["items"] == []
    ids, _ = await client.all_pages([("property", f"flowId=={flows[0]}")])
    assert run.id not in ids and len(ids) == 7


def test_deleted_runs_and_deleted_flows_leave_the_index(clock):
    """A flow deleted with its runs in flight (the soak does it every few hours) leaves no empty
    list behind in the listing index, and a sweep as often as `sweep_every` drops what is old."""
    world = World(clock=clock)
    sim = Simulator(world, retention=600)
    sim.sweep_every = 60
    flow = world.add_flow("prod", "gone").id
    done = world.finish_run(world.start_run(flow).id, "success")
    live = world.start_run(flow)
    world.flows.pop(flow)
    world.delete_run(live.id)
    only_live = world.add_flow("prod", "deleted with its one run in flight").id
    world.delete_run(world.start_run(only_live).id)
    assert only_live not in world.runs_by_flow
    clock.now += 700
    sim.forget()
    assert done.id not in world.runs and flow not in world.runs_by_flow
    world.flows[flow] = world.add_flow("prod", "other", flow)
    world.finish_run(world.start_run(flow).id, "success")
    clock.now += 700  # less than SWEEP_EVERY since the last sweep, more than sweep_every
    sim.forget()
    assert not world.runs and not world.runs_by_flow


async def test_demo_simulator_forgets_what_is_past_its_window(clock):
    """Three simulated days of the demo's autopilot, polled every 5 minutes with paged listings and
    a new token each time: what the simulator holds after day 3 is no more than after day 2."""
    world = demo_world(clock=clock)
    sim = Simulator(world, autopilot=True, max_page_size=2)
    runner, origin = await start_simulator(sim)
    sizes = []
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(sim, origin, session)
            for minute in range(3 * 24 * 60):
                for _ in range(6):
                    clock.now += 10
                    sim.tick()
                if minute % 5 == 0:
                    await client.login()
                    flow = next(f.id for f in world.flows.values() if f.period)
                    _, body = await client.get(BASE_PATH + "/runs", [("property", f"flowId=={flow}")])
                    await client.get(body["_links"]["next"]["href"])  # host-relative first: a cursor
                if minute % (24 * 60) == 24 * 60 - 1:
                    sizes.append(
                        {
                            "runs": len(world.runs),
                            "indexed runs": sum(len(v) for v in world.runs_by_flow.values()),
                            "tokens": len(world.tokens),
                            "cursors": len(sim.cursors),
                            "requests": len(sim.requests),
                        }
                    )
    finally:
        await runner.cleanup()
    _, day2, day3 = sizes  # the retention (26 h) is full from day 2 on
    assert day2["runs"] > 1000 and day2["cursors"] > 5 and day2["requests"] > 3 and day2["tokens"] > 100
    for what, n in day3.items():
        assert n <= day2[what] * 1.05 + 5, (what, day2, day3)
    assert len(sim.token_requests) <= 1000
    # What is inside the window is still there: the runs of the last day are listed.
    assert sim.retention is not None
    oldest = min(r.created_ms for r in world.runs.values()) / 1000
    assert clock.now - sim.retention - SWEEP_EVERY - 120 <= oldest <= clock.now - sim.retention + 120


async def post_action(client: Client, run_id: str, op: str) -> tuple[int, Any]:
    w = client.sim.world
    headers = {
        "Authorization": f"Bearer {client.token}",
        "x-api-key": w.client_id,
        "x-gw-ims-org-id": w.org_id,
        "x-sandbox-name": "prod",
    }
    url = f"{client.origin}{BASE_PATH}/runs/{run_id}/action"
    async with client.session.post(url, params=[("op", op)], headers=headers, json={}) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("accepted", ["re-trigger", "RE_TRIGGER"])
async def test_retry_in_the_spelling_and_shape_of_either_document(served, accepted):
    sim, client, flows = served
    sim.profile = ApiProfile(retrigger_op=accepted)
    world = sim.world
    failed = world.finish_run(world.start_run(flows[0]).id, "failed")
    other = "RE_TRIGGER" if accepted == "re-trigger" else "re-trigger"
    status, body = await post_action(client, failed.id, other)
    assert status == 400 and "query parameter op" in body["errorMessage"] and sim.created == []
    status, body = await post_action(client, failed.id, accepted)
    assert status == 200 and [r.retry_of for r in sim.created] == [failed.id]
    new = sim.created[0]
    if accepted == "re-trigger":  # the tutorial's answer
        assert body == {"id": new.id, "etag": f'"{new.id[:8]}"'}
    else:  # the spec's: the flow run
        assert body["id"] == new.id and body["flowId"] == flows[0] and "metrics" in body


async def test_retry_refuses_runs_adobe_would_not_retry(served):
    sim, client, flows = served
    world = sim.world
    ingested = world.finish_run(world.start_run(flows[0]).id, "success", input_records=5, output_records=5)
    running = world.start_run(flows[0])
    empty = world.finish_run(world.start_run(flows[0]).id, "success", input_records=0, output_records=0)
    for run in (ingested, running):
        status, body = await post_action(client, run.id, "re-trigger")
        assert status == 400 and "cannot be re-triggered" in body["errorMessage"], body
    status, body = await post_action(client, "0f5e2b1c-0000-4000-8000-000000000000", "re-trigger")
    assert status == 404 and body["type"].endswith("FLOW-1439-404")
    status, _ = await post_action(client, empty.id, "re-trigger")
    assert status == 200 and [r.retry_of for r in sim.created] == [empty.id]
