"""Names people read (exporter/fetch/names.py): each flow's source and target connector names and
its dataset, on aep_flow_info, the status page and --check. Names are decoration: a lookup that
fails changes nothing else (the flow stays up, counters stay exact)."""

from __future__ import annotations

import json

import pytest
from conftest import FAST_RETRY, exposition, make_config, run_cli, series, value

from exporter.config import DiscoverConfig, SandboxConfig
from exporter.exposition import status_page as status
from exporter.runtime import open_exporter
from exporter.simulator import HOSTILE, HOSTILE_POSITION_TOKENS, SEED_FLOW_ID, World

SEED = {"sandbox": "prod", "flow_id": SEED_FLOW_ID}
SEED_NAMES = {"source_name": "Amazon S3", "target_name": "Data Lake", "dataset_id": "5f3c3cedb2805c194ff0b69a"}
GCS = "32e8f412-cdf7-464c-9885-78184cb113fd"
SALESFORCE = "cfc0fee1-7dc0-40ef-b73e-d8b134c436f5"


def info(samples: dict, **key: str) -> dict[str, str]:
    found = [dict(k) for k in series(samples, "aep_flow_info", **key)]
    assert len(found) == 1, found
    return found[0]


def requests(sim, path: str) -> list[dict]:
    return [r for r in sim.requests if r["path"].endswith(path) or f"{path}/" in r["path"]]


def api_requests(samples: dict, endpoint: str) -> float:
    return sum(v for k, v in series(samples, "aep_exporter_api_requests_total", endpoint=endpoint).items())


async def test_seed_flow_shows_its_names_on_metrics_and_the_status_page(sim, world: World, strategy):
    s3 = world.add_flow("prod", "s3-orders", source_spec_id="ecadc60c-7455-4d87-84dc-2a0e293d997b")
    gcs = world.add_flow("prod", "gcs-events", source_spec_id=GCS)
    out = world.add_flow("prod", "to-s3", is_destination=True, source_spec_id=SALESFORCE)
    config = make_config(sim, fetch_strategy=strategy)
    async with open_exporter(config, FAST_RETRY) as exp:
        await exp.poller.poll_once()
        m = exposition(exp.registry)
        page = status.page(status.snapshot(exp.ledger))
        await exp.poller.poll_once()
        again = exposition(exp.registry)
    labels = info(m, **SEED)
    assert {k: labels[k] for k in SEED_NAMES} == SEED_NAMES
    assert labels["source_connection_spec_id"] == "ecadc60c-7455-4d87-84dc-2a0e293d997b"  # kept beside
    assert info(m, flow_id=s3.id)["source_name"] == "Amazon S3"
    assert info(m, flow_id=gcs.id)["source_name"] == "Google Cloud Storage"
    assert len(info(m, flow_id=gcs.id)["dataset_id"]) == 24
    assert info(m, flow_id=out.id)["dataset_id"] == ""  # a destination writes to no dataset
    assert "Amazon S3 → Monitoring Dataflow dataset" in page  # Catalog's name for the dataset
    # The specs were asked once, in one list; the target connections in one list too. A second
    # cycle (metadata not yet due again) asks for nothing more.
    assert len(requests(sim, "/connectionSpecs")) == 1
    assert len(requests(sim, "/targetConnections")) == 1
    assert api_requests(again, "connection_specs") == 1 and api_requests(again, "target_connections") == 1


async def test_check_prints_the_names(sim, world, config_file):
    result = await run_cli("--config.file", config_file(), "--check", env={"TEST_AEP_SECRET": world.client_secret})
    assert result.code == 0, result.out
    line = next(x for x in result.out.splitlines() if SEED_FLOW_ID in x)
    assert "Monitoring Dataflow [enabled]" in line
    assert line.endswith("Amazon S3 → Data Lake (dataset 5f3c3cedb2805c194ff0b69a)"), line


async def test_a_failed_name_lookup_changes_nothing_else(sim, world: World, strategy):
    """/connectionSpecs and /targetConnections answer 500 (every retry): the flows stay up, every
    run is counted once, the labels are empty; when Adobe answers again, the names come."""
    flow = world.add_flow("prod", "s3-orders")
    run = world.start_run(flow.id, created_ms=world.now_ms() - 60_000)
    config = make_config(sim, fetch_strategy=strategy, metadata_refresh=0.0)
    sim.inject(500, "/connectionSpecs", times=1000)
    sim.inject(500, "/targetConnections", times=1000)
    async with open_exporter(config, FAST_RETRY) as exp:
        await exp.poller.poll_once()
        world.finish_run(run.id, input_records=7)
        await exp.poller.poll_once()
        m = exposition(exp.registry)
        assert value(m, "aep_exporter_flow_up", **SEED) == 1
        assert value(m, "aep_exporter_flow_up", sandbox="prod", flow_id=flow.id) == 1
        assert value(m, "aep_flow_runs_total", status="success", sandbox="prod", flow_id=flow.id) == 1
        assert value(m, "aep_flow_input_records_total", sandbox="prod", flow_id=flow.id) == 7
        assert {k: info(m, **SEED)[k] for k in SEED_NAMES} == dict.fromkeys(SEED_NAMES, "")
        sim.faults.clear()
        await exp.poller.poll_once()
        m = exposition(exp.registry)
    assert {k: info(m, **SEED)[k] for k in SEED_NAMES} == SEED_NAMES
    assert value(m, "aep_flow_runs_total", status="success", sandbox="prod", flow_id=flow.id) == 1


async def test_lists_refused_are_asked_one_by_one(sim, world: World):
    world.add_flow("prod", "gcs-events", source_spec_id=GCS)
    sim.reject_batched = True  # 400 to every comma list: flows, runs, specs, target connections
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        m = exposition(exp.registry)
    assert info(m, **SEED)["source_name"] == "Amazon S3"
    assert {dict(k)["source_name"] for k in series(m, "aep_flow_info")} == {"Amazon S3", "Google Cloud Storage"}
    singles = [r["path"] for r in requests(sim, "/connectionSpecs") if not r["path"].endswith("/connectionSpecs")]
    assert len(singles) == 3  # S3, GCS, Data Lake


async def test_spec_names_outlive_a_restart_in_the_state_file(sim, world: World, tmp_path):
    path = tmp_path / "state.json"
    config = make_config(sim, state_file=str(path))
    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        await exp.poller.poll_once()
        await exp.save_state()
    saved = json.loads(path.read_text())
    assert saved["connection_specs"]["ecadc60c-7455-4d87-84dc-2a0e293d997b"][0] == "Amazon S3"
    before = len(requests(sim, "/connectionSpecs"))
    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        await exp.poller.poll_once()
        m = exposition(exp.registry)
    assert info(m, **SEED)["source_name"] == "Amazon S3"
    assert len(requests(sim, "/connectionSpecs")) == before  # from the cache: not asked again
    # A file of the previous version (no connection_specs key) still loads.
    del saved["connection_specs"]
    path.write_text(json.dumps(saved))
    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        assert value(exposition(exp.registry), "aep_flow_runs_total", status="success", **SEED) == 0
        await exp.poller.poll_once()
        assert info(exposition(exp.registry), **SEED)["source_name"] == "Amazon S3"


async def test_discovery_selects_flows_by_source_connector_name(sim, world: World):
    """`discover: {source_names: …}`: flows whose source connector's name matches. Names that cannot
    be looked up (the cache empty, as after a restart from an older state file) fail the discovery,
    and the previous list stays: no flow is dropped for want of a name."""
    world.flows.clear()
    world.runs.clear()
    world.add_flow("prod", "s3-orders")
    gcs = world.add_flow("prod", "gcs-events", source_spec_id=GCS).id
    crm = world.add_flow("prod", "crm-contacts", source_spec_id=SALESFORCE).id
    sandbox = SandboxConfig("prod", discover=DiscoverConfig(source_names="^(Google|Sales)"))
    config = make_config(sim, sandboxes=(sandbox,), discovery_interval=0.0)
    async with open_exporter(config, FAST_RETRY) as exp:
        await exp.poller.poll_once()
        assert {dict(k)["flow_id"] for k in series(exposition(exp.registry), "aep_flow_info")} == {gcs, crm}
        world.add_flow("prod", "blob-files", source_spec_id="4c10e202-c428-4796-9208-5f1f5732b1cf")
        exp.ledger.spec_names.clear()
        sim.inject(500, "/connectionSpecs", times=1000)
        await exp.poller.poll_once()
        m = exposition(exp.registry)
        assert {dict(k)["flow_id"] for k in series(m, "aep_flow_info")} == {gcs, crm}
        assert value(m, "aep_exporter_flow_up", sandbox="prod", flow_id=gcs) == 1


async def test_a_connector_adobe_does_not_know_has_no_name_and_is_not_asked_for_again(sim, world: World):
    odd = world.add_flow("prod", "custom-source", source_spec_id="11111111-2222-4333-8444-555555555555")
    async with open_exporter(make_config(sim, metadata_refresh=0.0), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        asked = len(requests(sim, "/connectionSpecs"))
        await exp.poller.poll_once()  # every flow's metadata is due again: names are resolved again
        m = exposition(exp.registry)
    assert info(m, flow_id=odd.id)["source_name"] == "" and info(m, flow_id=odd.id)["target_name"] == "Data Lake"
    assert info(m, **SEED)["source_name"] == "Amazon S3"
    assert len(requests(sim, "/connectionSpecs")) == asked  # the cache answers, "unknown" included
    assert len(requests(sim, "/targetConnections")) == 2  # target connections: with each refresh


@pytest.mark.parametrize("profile", [HOSTILE, HOSTILE_POSITION_TOKENS], ids=["hostile", "hostile_position_tokens"])
async def test_names_under_the_hostile_profiles(sim, world: World, profile):
    """Pages of 20 and an 8 KB request-line limit, with tokens that grow with the query (refused
    by a bare 400) or 6 KB tokens that hold a position (414): the target connections' lists are
    cut so that every page fits, and every flow gets its dataset."""
    flows = [world.add_flow("prod", f"flow-{i:02d}", source_spec_id=GCS) for i in range(100)]
    sim.profile = profile
    async with open_exporter(make_config(sim, max_url_length=8192), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        m = exposition(exp.registry)
    assert all(len(info(m, flow_id=f.id)["dataset_id"]) == 24 for f in flows)
    assert all(info(m, flow_id=f.id)["source_name"] == "Google Cloud Storage" for f in flows)
    assert not [r for r in requests(sim, "/targetConnections") if not r["path"].endswith("/targetConnections")]


async def test_a_failed_dataset_lookup_keeps_what_the_flow_had_and_the_connector_names_still_come(sim, world):
    async with open_exporter(make_config(sim, metadata_refresh=0.0), FAST_RETRY) as exp:
        await exp.poller.poll_once()
        assert info(exposition(exp.registry), **SEED)["dataset_id"] == SEED_NAMES["dataset_id"]
        exp.ledger.spec_names.clear()  # connector names asked for again, and answered
        sim.inject(500, "/targetConnections", times=1000)
        await exp.poller.poll_once()
        assert {k: info(exposition(exp.registry), **SEED)[k] for k in SEED_NAMES} == SEED_NAMES  # kept
    async with open_exporter(make_config(sim, metadata_refresh=0.0), FAST_RETRY) as exp:
        await exp.poller.poll_once()  # a new exporter: no dataset to keep, the names all the same
        m = exposition(exp.registry)
    assert {k: info(m, **SEED)[k] for k in SEED_NAMES} == {**SEED_NAMES, "dataset_id": ""}
