"""Exactly-once accounting across restarts, in process against the simulator: what a state file
carries over to the next exporter, and a start without one."""

from __future__ import annotations

from conftest import FAST_RETRY, exposition, make_config, value

from exporter.exposition.api import flow_doc
from exporter.exposition.flow_page import Links, view
from exporter.runtime import open_exporter


async def test_a_restart_continues_from_the_state_file_and_without_one_starts_at_zero(sim, world, tmp_path):
    """Real restarts: each exporter is a new one (new ledger, new poller) made by open_exporter, as
    the daemon makes it, restored from the state file the previous one wrote."""
    flow = world.add_flow("prod", "crm-contacts")
    key = {"sandbox": "prod", "flow_id": flow.id}
    world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 90_000).id, input_records=1000)
    b = world.start_run(flow.id, created_ms=world.now_ms() - 60_000)
    config = make_config(sim, state_file=str(tmp_path / "state.json"))

    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        await exp.poller.poll_once()  # baseline: the run already finished is not counted
        world.finish_run(b.id, input_records=10)
        await exp.poller.poll_once()
        c = world.start_run(flow.id, created_ms=world.now_ms() - 30_000)
        await exp.poller.poll_once()
        before = exposition(exp.registry)
        assert value(before, "aep_flow_runs_total", status="success", **key) == 1
        assert value(before, "aep_flow_runs_in_flight", **key) == 1
        await exp.save_state()

    world.finish_run(c.id, input_records=100)  # in flight when saved, completed while down
    world.finish_run(world.start_run(flow.id).id, input_records=1)  # started and completed while down

    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        restored = exposition(exp.registry)  # before any poll: the saved counters
        assert value(restored, "aep_flow_runs_total", status="success", **key) == 1
        assert value(restored, "aep_flow_input_records_total", **key) == 10
        for _ in range(3):
            await exp.poller.poll_once()
        after = exposition(exp.registry)
        assert value(after, "aep_flow_runs_total", status="success", **key) == 3
        assert value(after, "aep_flow_input_records_total", **key) == 111

    async with open_exporter(config, FAST_RETRY, persist=False) as exp:  # no state: starts at zero
        for _ in range(2):
            await exp.poller.poll_once()
        fresh_start = exposition(exp.registry)
        assert value(fresh_start, "aep_flow_runs_total", status="success", **key) == 0
        assert value(fresh_start, "aep_flow_runs_total", status="failed", **key) == 0
        assert value(fresh_start, "aep_flow_input_records_total", **key) == 0


async def test_the_run_history_outlives_a_restart_beyond_the_lookback(sim, world, tmp_path):
    """The flow page's history is in the state file: runs older than `lookback` (never listed again)
    are still there after a restart, the newest `run_history_per_flow` of them."""
    flow = world.add_flow("prod", "crm-contacts")
    old = [world.start_run(flow.id, created_ms=world.now_ms() - (5 - i) * 60_000) for i in range(4)]
    for run in old:
        world.finish_run(run.id, input_records=10)
    config = make_config(sim, state_file=str(tmp_path / "state.json"), run_history_per_flow=3)
    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        await exp.poller.poll_once()
        await exp.save_state()
    later = make_config(sim, state_file=str(tmp_path / "state.json"), run_history_per_flow=3, lookback=30.0)
    async with open_exporter(later, FAST_RETRY, persist=True) as exp:
        state = exp.ledger.flows[("prod", flow.id)]
        doc = flow_doc(view(state), Links(), True)
        await exp.poller.poll_once()  # the old runs are out of the lookback now: not listed again
        again = flow_doc(view(exp.ledger.flows[("prod", flow.id)]), Links(), True)
    assert [r["id"] for r in doc["runs"]] == [r.id for r in reversed(old)][:3]
    assert [r["input_records"] for r in doc["runs"]] == [10, 10, 10]
    assert again["runs"] == doc["runs"]
