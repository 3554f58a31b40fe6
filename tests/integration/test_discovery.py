"""Discovery: flows found by listing GET /flows, with server- and client-side filters."""

from __future__ import annotations

from conftest import ExporterProcess, counted, eventually, ready, scrape, series, value

SPEC_A = "9753525b-82c7-4dce-8a9b-5ccfce2b9876"
SPEC_B = "14518937-270c-4525-bdec-c2ba7cce3860"


def discover_config(sim, tmp_path, discover: str, extra: str = "") -> str:
    w = sim.world
    path = tmp_path / "config.yaml"
    path.write_text(
        f"adobe:\n  client_id: {w.client_id}\n  client_secret: ${{TEST_AEP_SECRET}}\n  org_id: {w.org_id}\n"
        f"  token_url: {sim.origin}/ims/token/v3\n  base_url: {sim.origin}/data/foundation/flowservice\n"
        f"sandboxes:\n  - name: prod\n    discover:\n{discover}\n"
        f"poll_interval: 1s\ndiscovery_interval: 1s\nlookback: 1d\nstate_file: null\n{extra}"
    )
    return str(path)


async def watched(exp) -> dict[str, str]:
    m = await scrape(exp.url)
    return {dict(k)["flow_id"]: dict(k)["flow_name"] for k in series(m, "aep_flow_info", sandbox="prod")}


def populate(world):
    world.flows.clear()
    world.runs.clear()
    crm = [world.add_flow("prod", f"crm-{i:02d}").id for i in range(12)]  # enough for several pages
    disabled = world.add_flow("prod", "crm-disabled", state="disabled").id
    other = world.add_flow("prod", "s3-orders").id
    dest = world.add_flow("prod", "crm-to-s3-export", is_destination=True).id
    other_spec = world.add_flow("prod", "crm-spec-b", flow_spec_id=SPEC_B).id
    world.add_flow("dev", "crm-in-another-sandbox")
    return crm, disabled, other, dest, other_spec


async def test_discovery_filters_and_pages(sim, world, tmp_path):
    sim.max_page_size = 5
    crm, disabled, other, dest, other_spec = populate(world)
    path = discover_config(
        sim, tmp_path, f"      name_regex: '^crm-'\n      flow_spec_ids: [{SPEC_A}]\n      exclude: [{crm[0]}]"
    )
    async with ExporterProcess("--config.file", path, log_path=str(tmp_path / "log")) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        found = await watched(exp)
        assert set(found) == set(crm[1:])  # not excluded, not disabled, not s3, not a destination, spec A
        m = await scrape(exp.url)
        assert value(m, "aep_exporter_flows", sandbox="prod") == 11
        assert value(m, "aep_exporter_discovery_last_success_timestamp_seconds", sandbox="prod") > 0
    listing = [r for r in sim.requests if r["path"].endswith("/flows")]
    first = listing[0]["query"]
    assert ("property", "state==enabled") in first and ("property", f"flowSpec.id=={SPEC_A}") in first
    assert any(k == "continuationToken" for r in listing[1:3] for k, _ in r["query"])  # it paged
    assert not [r for r in sim.requests if r["path"].endswith(tuple(crm[1:]))]  # metadata came with the list


async def test_empty_discover_means_every_enabled_source_flow(sim, world, tmp_path):
    crm, disabled, other, dest, other_spec = populate(world)
    async with ExporterProcess("--config.file", discover_config(sim, tmp_path, "      {}")) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        assert set(await watched(exp)) == {*crm, other, other_spec}
    path = discover_config(sim, tmp_path, "      states: [enabled, disabled]")
    with open(path) as f:
        text = f.read().replace("    discover:", "    include_destination_flows: true\n    discover:")
    with open(path, "w") as f:
        f.write(text)
    async with ExporterProcess("--config.file", path) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        assert set(await watched(exp)) == {*crm, other, other_spec, disabled, dest}


async def test_flows_that_appear_are_polled_and_flows_that_vanish_leave(sim, world, tmp_path):
    crm, *_ = populate(world)
    async with ExporterProcess("--config.file", discover_config(sim, tmp_path, "      name_regex: '^crm-0'")) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        assert set(await watched(exp)) == set(crm[:10])
        new = world.add_flow("prod", "crm-0new")
        world.finish_run(world.start_run(new.id).id)
        world.flows.pop(crm[3])

        async def changed():
            now = await watched(exp)
            return new.id in now and crm[3] not in now

        await eventually(changed, what="discovery to pick up the changes")
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_total", sandbox="prod", flow_id=new.id, status="success") == 0
        assert value(m, "aep_exporter_flows", sandbox="prod") == 10


async def test_discovery_errors_keep_the_previous_list(sim, world, tmp_path):
    crm, *_ = populate(world)
    log = tmp_path / "log"
    async with ExporterProcess(
        "--config.file", discover_config(sim, tmp_path, "      name_regex: '^crm-'"), log_path=str(log)
    ) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        before = await watched(exp)
        sim.inject(503, path="flowservice/flows", times=10_000)
        stamp = value(await scrape(exp.url), "aep_exporter_discovery_last_success_timestamp_seconds", sandbox="prod")

        async def failing():
            return "discovery failed, keeping the previous" in log.read_text()

        await eventually(failing, what="a failed discovery")
        m = await scrape(exp.url)
        assert await watched(exp) == before
        assert value(m, "aep_exporter_discovery_last_success_timestamp_seconds", sandbox="prod") == stamp
        assert all(v == 1 for v in series(m, "aep_exporter_flow_up", sandbox="prod").values()), (
            series(m, "aep_exporter_flow_up", sandbox="prod"),
            [r["path"] for r in sim.requests[-30:]],
        )


async def test_restart_with_discovery_failing_keeps_discovered_flows_counting(sim, world, tmp_path):
    import signal

    crm, *_ = populate(world)
    extra = f"state_file: {tmp_path / 'state.json'}\n"
    path = discover_config(sim, tmp_path, "      name_regex: '^crm-00$'")
    with open(path) as f:
        text = f.read().replace("state_file: null\n", extra)
    with open(path, "w") as f:
        f.write(text)
    key = {"sandbox": "prod", "flow_id": crm[0]}
    async with ExporterProcess("--config.file", path, cwd=str(tmp_path)) as exp:
        await eventually(lambda: ready(exp), what="/ready")
        world.finish_run(world.start_run(crm[0]).id)
        await eventually(lambda: counted(exp, key, 1), what="a run counted")
        assert await exp.stop(signal.SIGTERM) == 0
    sim.inject(503, path="=/data/foundation/flowservice/flows", times=10_000)  # the listing only
    world.finish_run(world.start_run(crm[0]).id)
    async with ExporterProcess("--config.file", path, cwd=str(tmp_path)) as exp:
        await eventually(lambda: counted(exp, key, 2), what="the restored flow to go on counting while discovery fails")
        m = await scrape(exp.url)
        assert value(m, "aep_exporter_discovery_last_success_timestamp_seconds", sandbox="prod") is None
        assert set(await watched(exp)) == {crm[0]}
