"""`aep-flow-exporter trigger` against the simulator: body, both answer shapes, every validation
error, Adobe's refusals, and --wait to success, to failure and to a timeout."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timezone

import pytest
from conftest import run_cli

from exporter.simulator import BASE_PATH

NOW = int(time.time())


@pytest.fixture
def flows(world):
    table = world.add_flow("prod", "crm-accounts", table_based=True)
    files = world.add_flow("prod", "s3-orders")
    return table, files


@pytest.fixture
def config(config_file, flows):
    return config_file()


async def trigger(config: str | None, *args: str, stdout=asyncio.subprocess.PIPE) -> tuple[int, str, str]:
    result = await run_cli("trigger", *(["--config.file", config] if config else []), *args, stdout=stdout, timeout=60)
    return result.code, result.out, result.err


def window(start: int = NOW - 7200, end: int = NOW - 3600) -> list[str]:
    return ["--window-start", str(start), "--window-end", str(end)]


async def test_dry_run_prints_the_request_and_sends_nothing(sim, config, flows):
    table, _ = flows
    code, out, err = await trigger(
        config,
        "--sandbox",
        "prod",
        "--flow",
        table.id,
        *window(),
        "--start-time",
        str(NOW),
        "--delta-column",
        "DOB",
        "--dry-run",
    )
    assert code == 0, err
    head, body = out.split("\n\n", 1)
    assert head.splitlines()[0] == f"POST {sim.origin}{BASE_PATH}/runs"
    assert "Authorization: Bearer [REDACTED]" in head and "x-sandbox-name: prod" in head
    assert json.loads(body) == {
        "flowId": table.id,
        "params": {
            "startTime": str(NOW),
            "windowStartTime": str(NOW - 7200),
            "windowEndTime": str(NOW - 3600),
            "deltaColumn": {"name": "DOB"},
        },
    }
    assert sim.requests == []


async def test_table_based_first_run_with_delta_column(sim, config, flows):
    table, _ = flows
    start = datetime.fromtimestamp(NOW - 7200, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, err = await trigger(
        config,
        "--sandbox",
        "prod",
        "--flow",
        table.id,
        "--window-start",
        start,
        "--window-end",
        str(NOW - 3600),
        "--delta-column",
        "DOB",
    )
    assert code == 0, err
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["id"] in sim.world.runs and lines["etag"].startswith('"')
    post = [r for r in sim.requests if r["method"] == "POST" and r["path"].startswith(BASE_PATH)]
    assert len(post) == 1 and post[0]["path"] == BASE_PATH + "/runs"
    run = sim.world.runs[lines["id"]]
    assert run.params["windowStartTime"] == str(NOW - 7200)  # ISO-8601 in, unix-second string out
    assert run.params["deltaColumn"] == {"name": "DOB"}


async def test_whole_run_answer_shape(sim, config, flows):
    _, files = flows
    code, out, err = await trigger(config, "--sandbox", "prod", "--flow", files.id, *window())
    assert code == 0, err
    run_id = out.splitlines()[0].split(": ")[1]
    assert run_id in sim.world.runs and "etag: " in out


async def test_adobe_refusals_are_printed_and_exit_2(sim, config, flows):
    table, _ = flows
    code, out, err = await trigger(config, "--sandbox", "prod", "--flow", table.id, *window())
    assert code == 2 and "deltaColumn is required for the first flow run" in err
    code, _, err = await trigger(config, "--sandbox", "prod", "--flow", table.id, *window(), "--delta-column", "DOB")
    assert code == 0, err
    code, _, err = await trigger(config, "--sandbox", "prod", "--flow", table.id, *window(), "--delta-column", "ID")
    assert code == 2 and "deltaColumn cannot be changed" in err
    code, _, err = await trigger(
        config, "--sandbox", "prod", "--flow", "00000000-0000-4000-8000-000000000000", *window()
    )
    assert code == 2 and "FLOW-1439-404" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (window(NOW - 3600, NOW - 7200), "--window-end must be after --window-start"),
        (window(NOW - 3600, NOW - 3600), "--window-end must be after --window-start"),
        (
            window(1651584991, 16515859567),
            "--window-end 16515859567 is more than a day in the future (in the year 2493)",
        ),
        (window(NOW - 3600, NOW) + ["--start-time", str(NOW + 3 * 86400)], "--start-time"),
        (window(651584991, NOW), "--window-start 651584991 is before 2000 (in the year 1990)"),
        (["--window-start", "yesterday", "--window-end", str(NOW)], "neither unix seconds nor an ISO-8601 time"),
        (window() + ["--wait-timeout", "forever"], "--wait-timeout"),
    ],
)
async def test_validation_errors_exit_2_before_any_request(sim, config, flows, args, message):
    table, _ = flows
    code, out, err = await trigger(config, "--sandbox", "prod", "--flow", table.id, *args, "--delta-column", "X")
    assert code == 2 and message in err, err
    assert "Traceback" not in err and sim.requests == []


async def test_validation_of_flow_id_and_config(sim, config, flows):
    code, _, err = await trigger(config, "--sandbox", "prod", "--flow", "crm-accounts", *window())
    assert code == 2 and "--flow: not a flow ID" in err
    code, _, err = await trigger("/nonexistent.yaml", "--sandbox", "prod", "--flow", flows[0].id, *window())
    assert code == 2 and "cannot read config file" in err


async def test_force_allows_odd_times(sim, config, flows):
    code, out, err = await trigger(
        config, "--sandbox", "prod", "--flow", flows[1].id, *window(1651584991, 16515859567), "--force", "--dry-run"
    )
    assert code == 0 and '"windowEndTime": "16515859567"' in out


async def test_wait_to_success(sim, config, flows, ticking):
    _, files = flows
    files.script = ["success"]
    code, out, err = await trigger(
        config, "--sandbox", "prod", "--flow", files.id, *window(), "--wait", "--wait-interval", "200ms"
    )
    assert code == 0, out + err
    assert "status=scheduled" in out or "status=inProgress" in out
    assert "\r" not in out  # not a terminal: plain lines
    assert "finished: success" in out and "error codes: none" in out


async def test_wait_to_failure_prints_the_error_codes(sim, config, flows, ticking):
    _, files = flows
    files.script = ["failed"]
    code, out, err = await trigger(
        config, "--sandbox", "prod", "--flow", files.id, *window(), "--wait", "--wait-interval", "200ms"
    )
    assert code == 1
    assert "finished: failed" in out and "CONNECTOR-1001-500" in out


async def test_wait_timeout(sim, config, flows):
    _, files = flows  # nothing ticks: the run never finishes
    code, out, err = await trigger(
        config,
        "--sandbox",
        "prod",
        "--flow",
        files.id,
        *window(),
        "--wait",
        "--wait-interval",
        "200ms",
        "--wait-timeout",
        "1s",
    )
    assert code == 1 and "timed out after" in out and "last status scheduled" in out


async def test_wait_on_a_terminal_shows_a_live_line(sim, config, flows, ticking):
    import pty

    _, files = flows
    files.script = ["success"]
    master, slave = pty.openpty()
    try:
        code, _, err = await trigger(
            config,
            "--sandbox",
            "prod",
            "--flow",
            files.id,
            *window(),
            "--wait",
            "--wait-interval",
            "200ms",
            stdout=slave,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    screen = b"".join(chunks).decode()
    assert code == 0, err
    assert "\rstatus=" in screen and "elapsed=" in screen and "records=" in screen
    assert "finished: success" in screen


# --- params as strings (the tutorials) or integers (the spec) ----------------------------------------


def time_params(body: dict) -> list:
    return [body["params"][k] for k in ("startTime", "windowStartTime", "windowEndTime")]


def created_id(out: str) -> str:
    return dict(line.split(": ", 1) for line in out.splitlines())["id"]


@pytest.mark.parametrize("status", [400, 422])
async def test_trigger_creates_a_run_against_an_api_that_wants_integers(sim, config, flows, status):
    table, files = flows
    sim.profile = sim.profile.but(run_params="integer", run_params_status=status)
    for flow, extra in ((files, []), (table, ["--delta-column", "DOB"])):
        sim.run_bodies.clear()
        code, out, err = await trigger(config, "--sandbox", "prod", "--flow", flow.id, *window(), *extra)
        assert code == 0, err
        run_id = created_id(out)
        assert run_id in sim.world.runs and sim.world.runs[run_id].flow_id == flow.id  # the spec's {id, etag}
        first, second = sim.run_bodies  # strings first, as the seeds; then the same values as integers
        assert time_params(first)[1:] == [str(NOW - 7200), str(NOW - 3600)]
        assert time_params(second)[1:] == [NOW - 7200, NOW - 3600] and isinstance(time_params(second)[0], int)
        assert second["params"].get("deltaColumn") == first["params"].get("deltaColumn")
        assert "refused the run with the time params as strings" in err and "as integers" in err
        assert "params.startTime: expected type integer" in err
    assert len(sim.created) == 2  # one run each: the refused POST created nothing


async def test_trigger_creates_a_run_against_an_api_that_wants_strings(sim, config, flows):
    table, files = flows
    for flow, extra in ((files, []), (table, ["--delta-column", "DOB"])):  # whole run, then {"items": [...]}
        sim.run_bodies.clear()
        code, out, err = await trigger(config, "--sandbox", "prod", "--flow", flow.id, *window(), *extra)
        assert code == 0, err
        assert created_id(out) in sim.world.runs
        [body] = sim.run_bodies
        assert time_params(body)[1:] == [str(NOW - 7200), str(NOW - 3600)]
        assert "integers" not in err


@pytest.mark.parametrize(
    "wants, forced, created",
    [
        ("integer", "integer", True),
        ("integer", "string", False),
        ("string", "string", True),
        ("string", "integer", False),
    ],
)
async def test_params_as_forces_one_form_and_never_falls_back(sim, config, flows, wants, forced, created):
    _, files = flows
    sim.profile = sim.profile.but(run_params=wants)
    code, out, err = await trigger(config, "--sandbox", "prod", "--flow", files.id, *window(), "--params-as", forced)
    [body] = sim.run_bodies  # one POST, whatever the answer
    assert all(isinstance(v, int if forced == "integer" else str) for v in time_params(body))
    if created:
        assert code == 0 and created_id(out) in sim.world.runs, err
    else:
        assert code == 2 and sim.created == [] and "Adobe refused the run" in err
        assert f"try --params-as {wants}" in err


async def test_a_wordless_refusal_of_the_strings_is_tried_as_integers(sim, config, flows):
    """Whether a refusal was about the params' form is learned by sending the other form, never
    read from the refusal's words: here the strings meet a bare "Bad request"."""
    _, files = flows
    sim.profile = sim.profile.but(run_params="integer")
    sim.inject(400, f"={BASE_PATH}/runs", body={"error_code": "400", "title": "Bad request"})
    code, out, err = await trigger(config, "--sandbox", "prod", "--flow", files.id, *window())
    assert code == 0, err
    assert [r.id for r in sim.created] == [created_id(out)]
    posts = [r for r in sim.requests if r["method"] == "POST" and r["path"].startswith(BASE_PATH)]
    [body] = sim.run_bodies  # the injected refusal answered the first POST before the service read it
    assert len(posts) == 2 and isinstance(time_params(body)[0], int)
    assert "sending them once more as integers" in err


async def test_a_refusal_of_both_forms_answers_with_the_first(sim, config, flows):
    table, files = flows
    code, _, err = await trigger(config, "--sandbox", "prod", "--flow", table.id, *window())  # first run, no delta
    assert code == 2 and "deltaColumn is required" in err and "expected type" not in err
    assert len(sim.run_bodies) == 2  # strings, then integers once: both refused
    refusal = {"title": "Bad request", "errorMessage": "Flow is disabled: enable it before creating a run"}
    sim.inject(400, "/runs", body=refusal)
    code, _, err = await trigger(config, "--sandbox", "prod", "--flow", files.id, *window())
    assert code == 2 and "Flow is disabled" in err.splitlines()[-1]
    posts = [r for r in sim.requests if r["method"] == "POST" and r["path"].startswith(BASE_PATH)]
    assert len(posts) == 4 and sim.created == []  # each form once for each refusal, none sent again


async def test_dry_run_shows_the_forced_form(sim, config, flows):
    _, files = flows
    code, out, err = await trigger(
        config, "--sandbox", "prod", "--flow", files.id, *window(), "--start-time", str(NOW), "--dry-run",
        "--params-as", "integer",
    )  # fmt: skip
    assert code == 0, err
    body = json.loads(out.split("\n\n", 1)[1])
    assert time_params(body) == [NOW, NOW - 7200, NOW - 3600] and sim.requests == []
