"""Exactly once for months: lookback changes, clock steps, flows that leave, discovery blips, a
state file that cannot be written. Each test drives one exporter in process (open_exporter, the
wiring the daemon uses) against the simulator and reads what /metrics would serve."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
from conftest import FAST_RETRY, make_config
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import DiscoverConfig, SandboxConfig
from exporter.runtime import open_exporter

HOUR = 3600.0


def served(exp) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition /metrics serves now (the last rendering)."""
    body, _ = exp.render.body("text/plain", "")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }


def totals(samples: dict) -> dict:
    return {k: v for k, v in samples.items() if k[0].startswith("aep_flow_") and k[0].endswith("_total")}


async def cycle(exp) -> dict:
    await exp.poller.poll_once()
    await exp.after_cycle()
    return served(exp)


def history(world, flow_id: str, hours: float, every: float = 1.5) -> None:
    """Completed runs of the flow over the past `hours`, one every `every` hours."""
    t = every
    while t < hours:
        run = world.start_run(flow_id, created_ms=world.now_ms() - int(t * HOUR * 1000))
        world.finish_run(run.id, "success")
        t += every


@pytest.fixture
def flows(world):
    world.runs.clear()
    world.runs_by_flow.clear()
    world.flows.clear()
    ids = [world.add_flow("prod", f"flow-{i}").id for i in range(3)]
    for f in ids:
        history(world, f, 47)
    return ids


async def test_lookback_shrinking_and_growing_again_recounts_nothing(sim, world, flows, strategy):
    config = make_config(sim, lookback=48 * HOUR, fetch_strategy=strategy, state_file=None)
    async with open_exporter(config, FAST_RETRY) as exp:
        await cycle(exp)
        run = world.start_run(flows[0])
        world.finish_run(run.id, "success")
        before = totals(await cycle(exp))
        assert before[("aep_flow_runs_total", (("flow_id", flows[0]), ("sandbox", "prod"), ("status", "success")))] == 1
        exp.reload(dataclasses.replace(config, lookback=1 * HOUR))
        await cycle(exp)
        exp.reload(config)  # 48h again: Adobe lists the runs of the past two days again
        after = totals(await cycle(exp))
        after = totals(await cycle(exp))
    assert after == before


async def test_a_clock_step_backwards_recounts_nothing(sim, world, flows, strategy):
    config = make_config(sim, lookback=6 * HOUR, fetch_strategy=strategy, state_file=None)
    async with open_exporter(config, FAST_RETRY) as exp:
        await cycle(exp)
        before = totals(await cycle(exp))
        exp.poller.clock = lambda: time.time() + 12 * HOUR  # a step forward: the old runs fall out of lookback
        await cycle(exp)
        exp.poller.clock = time.time  # and back: Adobe lists them again
        after = totals(await cycle(exp))
    assert after == before


async def test_capped_error_codes_counter_keeps_what_a_retired_flow_contributed(sim, world, flows):
    config = make_config(sim, max_error_codes_per_flow=1, state_file=None)
    async with open_exporter(config, FAST_RETRY) as exp:
        await cycle(exp)
        run = world.start_run(flows[0])
        world.finish_run(run.id, "failed")
        world.runs[run.id].run_errors = [{"code": f"CODE-{i}", "message": "x"} for i in range(4)]
        key = ("aep_exporter_error_codes_capped_total", (("sandbox", "prod"),))
        capped = (await cycle(exp))[key]
        assert capped > 0
        exp.reload(dataclasses.replace(config, sandboxes=(SandboxConfig("prod", tuple(flows[1:])),)))
        assert (await cycle(exp))[key] == capped


async def test_a_flow_missing_from_one_discovery_listing_keeps_its_counters(sim, world, flows, strategy):
    discover = SandboxConfig("prod", (), DiscoverConfig())
    config = make_config(sim, sandboxes=(discover,), discovery_interval=0.0, fetch_strategy=strategy, state_file=None)
    async with open_exporter(config, FAST_RETRY) as exp:
        await cycle(exp)
        run = world.start_run(flows[0])
        world.finish_run(run.id, "success")
        key = ("aep_flow_runs_total", (("flow_id", flows[0]), ("sandbox", "prod"), ("status", "success")))
        assert (await cycle(exp))[key] == 1
        world.flows[flows[0]].state = "disabled"  # briefly out of the listing (disabled, renamed…)
        await cycle(exp)
        world.flows[flows[0]].state = "enabled"
        run = world.start_run(flows[0])
        world.finish_run(run.id, "success")
        assert (await cycle(exp))[key] == 2


async def test_counters_do_not_run_ahead_of_a_state_file_that_cannot_be_written(sim, world, flows, tmp_path, strategy):
    path = tmp_path / "state" / "state.json"
    config = make_config(sim, fetch_strategy=strategy, state_file=str(path))
    key = ("aep_flow_runs_total", (("flow_id", flows[0]), ("sandbox", "prod"), ("status", "success")))
    status = ("aep_flow_last_run_status", (("flow_id", flows[0]), ("sandbox", "prod"), ("status", "failed")))
    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        await cycle(exp)
        first = world.finish_run(world.start_run(flows[0]).id, "success")
        assert (await cycle(exp))[key] == 1
        # A read-only volume (root ignores modes: the files also become directories, so neither the
        # state file nor its journal can be written).
        journal = path.with_name(path.name + ".journal")
        os.chmod(path.parent, 0o500)
        for p in (path, journal):
            p.unlink(missing_ok=True)
            p.mkdir()
        try:
            # Created after the run counted before (and before now: the listing shows them).
            world.finish_run(world.start_run(flows[0], created_ms=first.created_ms + 1).id, "success")
            world.finish_run(world.start_run(flows[0], created_ms=first.created_ms + 2).id, "failed")  # the latest
            m = await cycle(exp)
            assert m[key] == 1  # not past what is saved
            assert m[status] == 1  # the gauges still update
            assert m[("aep_exporter_state_save_failures_total", ())] >= 1
        finally:
            path.rmdir()
            journal.rmdir()
            os.chmod(path.parent, 0o700)
        assert (await cycle(exp))[key] == 2  # saved again: counted, once
    async with open_exporter(config, FAST_RETRY, persist=True) as exp:
        assert served(exp)[key] == 2


async def test_a_retry_after_of_an_hour_ends_the_cycle_with_flows_down_not_a_frozen_exporter(sim, world, flows):
    """Retry-After is capped at poll_interval: Adobe asking for an hour's pause costs the flows a
    cycle (down), not the exporter an hour of looking up."""
    import asyncio

    from exporter.support.retry import RetryPolicy

    config = make_config(sim, poll_interval=1.0, state_file=None)
    async with open_exporter(config, RetryPolicy(max_attempts=3, max_elapsed=10.0, base_delay=0.01)) as exp:
        await cycle(exp)
        sim.inject(429, path="/runs", times=1000, headers={"Retry-After": "3600"})
        await asyncio.wait_for(exp.poller.poll_once(), timeout=15)
        await exp.after_cycle()
        m = served(exp)
        assert all(m[("aep_exporter_flow_up", (("flow_id", f), ("sandbox", "prod")))] == 0 for f in flows)
        sim.faults.clear()
        await asyncio.wait_for(exp.poller.poll_once(), timeout=15)  # the hold is over by now
        await exp.after_cycle()
        m = served(exp)
        assert all(m[("aep_exporter_flow_up", (("flow_id", f), ("sandbox", "prod")))] == 1 for f in flows)
