"""Dataset names from Catalog Service beside the connector names: one lookup for many datasets,
only the name asked for, a failing Catalog that changes nothing but the name, a deleted dataset
whose name is dropped."""

from __future__ import annotations

from conftest import FAST_RETRY, exposition, make_config, series, value

from exporter.runtime import open_exporter
from exporter.simulator import SEED_FLOW_ID, World

SEED = {"sandbox": "prod", "flow_id": SEED_FLOW_ID}
SEED_DATASET = "5f3c3cedb2805c194ff0b69a"


def dataset_name(samples: dict, flow_id: str) -> str:
    [labels] = [dict(k) for k in series(samples, "aep_flow_info", flow_id=flow_id)]
    return labels["dataset_name"]


async def test_one_catalog_lookup_names_every_dataset(sim, world: World, strategy):
    flows = [world.add_flow("prod", f"orders-{i}") for i in range(3)]
    out = world.add_flow("prod", "to-s3", is_destination=True)
    async with open_exporter(make_config(sim, fetch_strategy=strategy), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        await exp.poller.poll_once()  # names are cached: no second lookup
        m = exposition(exp.registry)
    assert dataset_name(m, SEED_FLOW_ID) == "Monitoring Dataflow dataset"
    assert [dataset_name(m, f.id) for f in flows] == [f"orders-{i} dataset" for i in range(3)]
    assert dataset_name(m, out.id) == ""  # a destination writes to no dataset
    [asked] = sim.catalog.lookups  # one request for the four datasets
    assert sorted(asked) == sorted([SEED_DATASET, *(info_id(m, f.id) for f in flows)])
    assert sim.catalog.properties == ["name"]


def info_id(samples: dict, flow_id: str) -> str:
    [labels] = [dict(k) for k in series(samples, "aep_flow_info", flow_id=flow_id)]
    return labels["dataset_id"]


async def test_a_failing_catalog_changes_nothing_but_the_name(sim, world: World):
    flow = world.add_flow("prod", "orders")
    run = world.start_run(flow.id, created_ms=world.now_ms() - 60_000)
    sim.catalog.failing = True
    async with open_exporter(make_config(sim, metadata_refresh=0.0), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        world.finish_run(run.id, input_records=7)
        await exp.poller.poll_once()
        m = exposition(exp.registry)
        assert dataset_name(m, flow.id) == "" and info_id(m, flow.id) != ""  # the ID still comes
        assert value(m, "aep_exporter_flow_up", sandbox="prod", flow_id=flow.id) == 1
        assert value(m, "aep_flow_input_records_total", sandbox="prod", flow_id=flow.id) == 7
        sim.catalog.failing = False
        await exp.poller.poll_once()
        assert dataset_name(exposition(exp.registry), flow.id) == "orders dataset"
        # Failing again, with the cache expired: the name the flow had is kept.
        sim.catalog.failing = True
        exp.poller.capabilities["prod"].dataset_names.clear()
        await exp.poller.poll_once()
        assert dataset_name(exposition(exp.registry), flow.id) == "orders dataset"
    assert len(sim.catalog.lookups) >= 3


async def test_a_deleted_dataset_loses_its_name(sim, world: World):
    flow = world.add_flow("prod", "orders")
    async with open_exporter(make_config(sim, metadata_refresh=0.0), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        assert dataset_name(exposition(exp.registry), flow.id) == "orders dataset"
        sim.catalog.deleted.add(info_id(exposition(exp.registry), flow.id))
        exp.poller.capabilities["prod"].dataset_names.clear()  # as after a day
        await exp.poller.poll_once()
        m = exposition(exp.registry)
        assert dataset_name(m, flow.id) == ""  # Catalog no longer has it: no name to show
        assert dataset_name(m, SEED_FLOW_ID) == "Monitoring Dataflow dataset"  # the others keep theirs
        sim.catalog.deleted.add(SEED_DATASET)  # every one deleted: Catalog answers 404
        exp.poller.capabilities["prod"].dataset_names.clear()
        await exp.poller.poll_once()
        m = exposition(exp.registry)
    assert dataset_name(m, SEED_FLOW_ID) == "" and info_id(m, SEED_FLOW_ID) == SEED_DATASET
    assert value(m, "aep_exporter_flow_up", **SEED) == 1
