"""Announced runs through the ledger (exporter/events/intake.py), in process: what is counted,
what is a duplicate, what is ignored, as the exporter's /metrics would show it; Adobe's envelopes;
missed runs and the poll interval."""

from __future__ import annotations

import json

from conftest import FAST_RETRY, exposition, make_config, value

from exporter.config import EventsConfig
from exporter.events.envelope import announcement, parse_body
from exporter.runtime import open_exporter
from exporter.simulator import JOURNAL_PATH, SEED_FLOW_ID

EVENTS = EventsConfig(journal_url="http://127.0.0.1:9/journal", sweep_interval=600.0, quiet_after=60.0)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def legacy(run: dict, client: str = "demo-client") -> dict:
    return {"event_id": "e-" + run["id"], "event": run, "recipient_client_id": client}


def cloudevent(run: dict) -> dict:
    return {"specversion": "1.0", "type": "x", "id": "c-" + run["id"], "time": "t", "data": run}


async def test_counted_once_duplicates_and_what_is_ignored(esim):
    world = esim.world
    flow = world.add_flow("prod", "a")
    world.add_flow("prod", "b")  # watched below only by the config of esim's world: all flows
    config = make_config(esim, events=EVENTS, lookback=3600.0)
    async with open_exporter(config, retry=FAST_RETRY) as exp:
        assert exp.events is not None
        apply = exp.events.apply
        early = world.finish_run(world.start_run(flow.id).id, "failed")
        # before the flow's first poll (its baseline) an announcement is ignored: polling makes the baseline
        assert await apply("journal", [announcement(legacy(world.run_json(early)))], lambda: None) == ["ignored"]
        await exp.poller.poll_once()  # the baseline: `early` is remembered, not counted
        done = world.finish_run(world.start_run(flow.id).id, "success")
        flying = world.start_run(flow.id)
        old = world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 7_200_000).id, "success")
        other_sandbox = {**world.run_json(done), "sandboxName": "dev"}
        upper = {**world.run_json(done), "flowId": flow.id.upper()}
        outcomes = await apply(
            "webhook",
            [
                announcement(cloudevent(world.run_json(done))),
                announcement(legacy(world.run_json(done))),  # the same run again
                announcement(legacy(upper)),  # and in capitals
                announcement(legacy(world.run_json(early))),  # in the baseline
                announcement(legacy(world.run_json(flying))),  # not finished
                announcement(legacy(world.run_json(old))),  # older than lookback
                announcement(legacy(other_sandbox)),  # a flow of that ID is not watched in dev
                announcement(legacy({**world.run_json(done), "flowId": "00000000-0000-0000-0000-000000000000"})),
                announcement({"event_id": "x", "event": {"assetId": "not a run"}}),  # another provider's event
            ],
            lambda: None,
        )
        assert outcomes == ["counted", "duplicate", "duplicate", "duplicate"] + ["ignored"] * 5
        m = exposition(exp.registry)
        key = {"sandbox": "prod", "flow_id": flow.id}
        assert value(m, "aep_flow_runs_total", status="success", **key) == 1
        assert value(m, "aep_flow_runs_total", status="failed", **key) == 0
        assert value(m, "aep_events_received_total", source="webhook", outcome="counted") == 1
        assert value(m, "aep_events_received_total", source="webhook", outcome="duplicate") == 3
        assert value(m, "aep_events_received_total", source="webhook", outcome="ignored") == 5
        assert value(m, "aep_events_received_total", source="journal", outcome="ignored") == 1
        # the poll that follows finds the announced run counted already: nothing moves
        await exp.poller.poll_once()
        m = exposition(exp.registry)
        assert value(m, "aep_flow_runs_total", status="success", **key) == 1
        # a flow whose last poll failed stays down when one of its runs is announced
        exp.ledger.mark_down(exp.ledger.flows[("prod", flow.id)])
        later = world.finish_run(world.start_run(flow.id).id, "failed")
        assert await apply("journal", [announcement(legacy(world.run_json(later)))], lambda: None) == ["counted"]
        m = exposition(exp.registry)
        assert value(m, "aep_exporter_flow_up", **key) == 0
        assert value(m, "aep_flow_runs_total", status="failed", **key) == 1


def test_adobe_envelopes_and_batches_are_read_by_the_run_inside(esim):
    run = esim.world.run_json(esim.world.runs[next(iter(esim.world.runs))])
    as_string = {"specversion": "1.0", "id": "s", "data": json.dumps(run), "recipientclientid": "c"}
    nested = {"event_id": "n", "event": {"body": run}, "recipient_client_id": "c"}
    for envelope in (legacy(run, "c"), {**cloudevent(run), "recipientclientid": "c"}, as_string, nested):
        a = announcement(envelope)
        assert a.run is not None and a.run.id == run["id"] and a.run.flow_id == SEED_FLOW_ID
        assert a.recipient == "c" and a.sandbox == "prod"
    batch = parse_body(json.dumps([legacy(run), cloudevent(run)]).encode())
    assert [announcement(e).event_id for e in batch] == ["e-" + run["id"], "c-" + run["id"]]


async def test_missed_runs_and_the_poll_interval(esim):
    world = esim.world
    flow = world.add_flow("prod", "a")
    config = make_config(esim, events=EVENTS, poll_interval=30.0, lookback=3600.0)
    async with open_exporter(config, retry=FAST_RETRY) as exp:
        assert exp.events is not None
        intake = exp.events.intake
        clock = intake.clock = Clock(world.clock())
        assert intake.poll_interval() == 30.0  # no sign of events yet: polling as configured
        await exp.poller.poll_once()
        intake.alive("journal")
        assert intake.poll_interval() == 600.0  # events flow: polling is the sweep
        caught = world.finish_run(world.start_run(flow.id).id, "success")
        world.finish_run(world.start_run(flow.id).id, "success")  # never announced
        await exp.poller.poll_once()  # the sweep counts both before any announcement
        await exp.events.apply("journal", [announcement(legacy(world.run_json(caught)))], lambda: None)
        clock.t += EVENTS.announce_grace - 1
        assert intake.count_missed() == 0
        clock.t += 2
        intake.alive("journal")
        assert intake.count_missed() == 1  # `lost` was never announced
        m = exposition(exp.registry)
        assert value(m, "aep_events_missed_runs_total", sandbox="prod") == 1
        assert value(m, "aep_events_received_total", source="journal", outcome="duplicate") == 1
        assert intake.poll_interval() == 30.0  # runs were missed: polling is fast again...
        clock.t += EVENTS.quiet_after
        intake.alive("journal")
        assert intake.poll_interval() == 600.0  # ...until nothing was missed for quiet_after
        clock.t += EVENTS.quiet_after + 1
        assert intake.poll_interval() == 30.0  # and when the events fall silent
        assert JOURNAL_PATH  # (the simulator's journal is not read here: the service is not started)


async def test_a_run_announced_before_its_flows_baseline_is_not_missed(esim):
    """The announcement came while the flow's first poll was under way (so it was ignored), and the
    poll saw the run still in flight: the next sweep counts it, and it is not a missed run."""
    world = esim.world
    flow = world.add_flow("prod", "a")
    config = make_config(esim, events=EVENTS, lookback=3600.0)
    async with open_exporter(config, retry=FAST_RETRY) as exp:
        assert exp.events is not None
        intake = exp.events.intake
        clock = intake.clock = Clock(world.clock())
        run = world.start_run(flow.id)
        announced = {**world.run_json(run), "metrics": {"statusSummary": {"status": "success"}}}
        assert await exp.events.apply("webhook", [announcement(legacy(announced))], lambda: None) == ["ignored"]
        await exp.poller.poll_once()  # the baseline: in flight
        world.finish_run(run.id, "success")
        await exp.poller.poll_once()  # the sweep counts it
        m = exposition(exp.registry)
        assert value(m, "aep_flow_runs_total", status="success", sandbox="prod", flow_id=flow.id) == 1
        clock.t += EVENTS.announce_grace + 1
        assert intake.count_missed() == 0
