"""`aep-flow-exporter retry` against the simulator, as a user runs it: a failed run retried to
success with --wait; runs that cannot be retried refused with nothing sent; a retry whose answer
is lost, then the command run again, never retrying twice (the simulator records every POST);
the spec's spelling of the operation; --dry-run."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import run_cli

from exporter.simulator import BASE_PATH, FRIENDLY

NOW = int(time.time())


@pytest.fixture
def flow(sim, world):
    sim.on_demand_times = (0.05, 0.15)
    f = world.add_flow("prod", "s3-orders", script=["success"])
    world.add_flow("dev", "sftp-events")
    return f


@pytest.fixture
def config(config_file, tmp_path, flow):
    return config_file(extra=f"state_file: {tmp_path / 'state.json'}\n")


def finished_run(world, flow, outcome: str, **numbers):
    """A run of an on-demand window, finished with `outcome`."""
    run = world.start_run(flow.id, created_ms=world.now_ms() - 600_000)
    run.params = {"startTime": str(NOW - 600), "windowStartTime": str(NOW - 7200), "windowEndTime": str(NOW - 3600)}
    world.finish_run(run.id, outcome, **numbers)
    return run


async def retry(config: str, run_id: str, *args: str) -> tuple[int, str, str]:
    result = await run_cli(
        "retry", "--config.file", config, "--sandbox", "prod", "--run", run_id, "--wait-interval", "50ms", *args
    )
    return result.code, result.out, result.err


def posts(sim) -> list[dict]:
    """Every POST the Flow Service got (run creation and retries)."""
    return [r for r in sim.requests if r["method"] == "POST" and r["path"].startswith(BASE_PATH)]


def new_id(out: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("id: "))


async def test_a_failed_run_is_retried_to_success(sim, world, config, flow, ticking):
    failed = finished_run(world, flow, "failed")
    code, out, err = await retry(config, failed.id, "--wait")
    assert code == 0, out + err
    new = world.runs[new_id(out)]
    assert new.retry_of == failed.id and new.params == failed.params  # Adobe's link, the same window
    assert "finished: success" in out
    assert [(p["path"], p["query"]) for p in posts(sim)] == [
        (f"{BASE_PATH}/runs/{failed.id}/action", [("op", "re-trigger")])
    ]


async def test_a_success_with_no_records_ingested_can_be_retried(sim, world, config, flow):
    empty = finished_run(world, flow, "success", input_records=0, output_records=0)
    code, out, err = await retry(config, empty.id)
    assert code == 0, out + err
    assert world.runs[new_id(out)].retry_of == empty.id and len(posts(sim)) == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda w, f: finished_run(w, f, "success", input_records=10, output_records=10).id, "ingested 10 records"),
        (lambda w, f: w.start_run(f.id).id, "it has not finished (status inProgress)"),
        (lambda w, f: finished_run(w, f, "cancelled").id, "its status is cancelled"),
        (lambda w, f: "0f5e2b1c-0000-4000-8000-000000000000", "no run 0f5e2b1c-0000-4000-8000-000000000000 in"),
        (lambda w, f: w.start_run(next(x.id for x in w.flows.values() if x.sandbox == "dev")).id, "no run"),
    ],
)
async def test_a_run_that_cannot_be_retried_is_refused_and_nothing_is_sent(sim, world, config, flow, make, message):
    run_id = make(world, flow)
    code, out, err = await retry(config, run_id)
    assert code == 2 and message in err, out + err
    assert posts(sim) == [] and out == ""


async def test_a_lost_answer_is_looked_up_and_a_second_retry_sends_nothing(sim, world, config, flow, tmp_path):
    failed = finished_run(world, flow, "failed")
    sim.lose_retry_answers = 1
    sim.profile = FRIENDLY.but(listing_delay=2.0)  # the new run is not listed at once
    code, out, err = await retry(config, failed.id)
    assert code == 1 and "the retry's answer was lost" in err, out + err
    assert len(posts(sim)) == 1 and len(sim.created) == 1  # Adobe did retry it

    await asyncio.sleep(2.0)  # now it is listed
    code, out, err = await retry(config, failed.id)
    assert code == 0, out + err
    assert new_id(out) == sim.created[0].id and "already retried" in err
    assert len(posts(sim)) == 1  # nothing sent twice

    (tmp_path / f"retry-{failed.id}.json").unlink()  # from another machine: no note of ours
    code, out, err = await retry(config, failed.id)
    assert code == 0 and new_id(out) == sim.created[0].id, out + err
    assert len(posts(sim)) == 1


async def test_a_lost_answer_found_by_the_same_start(sim, world, config, flow, tmp_path):
    failed = finished_run(world, flow, "failed")
    failed.params = None  # a scheduled run: no window to match, the note's time alone
    sim.lose_retry_answers = 1
    code, out, err = await retry(config, failed.id)
    assert code == 0, out + err
    assert new_id(out) == sim.created[0].id and len(posts(sim)) == 1
    note = json.loads((tmp_path / f"retry-{failed.id}.json").read_text())
    assert note["new_run_id"] == sim.created[0].id
    code, out, err = await retry(config, failed.id)
    assert code == 0 and "already retried" in err and len(posts(sim)) == 1


async def test_the_spec_spelling_is_sent_after_a_refusal_of_the_tutorials(sim, world, config, flow, ticking):
    sim.profile = FRIENDLY.but(retrigger_op="RE_TRIGGER")  # answers the whole run, as its spec does
    failed = finished_run(world, flow, "failed")
    code, out, err = await retry(config, failed.id, "--wait")
    assert code == 0, out + err
    assert [p["query"] for p in posts(sim)] == [[("op", "re-trigger")], [("op", "RE_TRIGGER")]]
    assert "Adobe refused op=re-trigger" in err and "sending op=RE_TRIGGER" in err
    assert world.runs[new_id(out)].retry_of == failed.id and len(sim.created) == 1


async def test_a_refusal_is_printed_and_exits_2(sim, world, config, flow):
    failed = finished_run(world, flow, "failed")
    sim.inject(
        400,
        path="/action",
        body={"title": "Bad request", "errorMessage": "Streaming sources cannot be retried"},
        times=2,
    )
    code, out, err = await retry(config, failed.id)
    assert code == 2 and "Streaming sources cannot be retried" in err
    # The other spelling is tried once (a refusal's words tell nothing), refused too: nothing made.
    assert [p["query"] for p in posts(sim)] == [[("op", "re-trigger")], [("op", "RE_TRIGGER")]]
    assert sim.created == []


async def test_dry_run_sends_nothing(sim, world, config, flow):
    failed = finished_run(world, flow, "failed")
    code, out, err = await retry(config, failed.id, "--dry-run")
    assert code == 0, err
    assert out.splitlines()[0] == f"POST {sim.origin}{BASE_PATH}/runs/{failed.id}/action?op=re-trigger"
    assert "Authorization: Bearer [REDACTED]" in out and sim.requests == []
