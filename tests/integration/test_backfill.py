"""`aep-flow-exporter backfill` against the simulator, as a user runs it (its own process): a range to
success, a failing window retried, kills (SIGKILL) and Ctrl-C in the middle and the resumes after
them (the simulator's record of created runs shows exactly one run per window), a create whose
answer is lost, Adobe's refusal, validation before any request, and the progress bar on a pty."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone

import pytest
from conftest import config_yaml, eventually

from exporter.simulator import BASE_PATH

DAY = 86400
FROM = (int(time.time()) // DAY - 8) * DAY  # midnight UTC, eight days ago
TO = FROM + 7 * DAY
SEVEN = [(FROM + i * DAY, FROM + (i + 1) * DAY) for i in range(7)]
ENV = {**os.environ, "TEST_AEP_SECRET": "demo-secret-not-for-production"}


@pytest.fixture
def flows(world):
    files = world.add_flow("prod", "s3-orders")
    table = world.add_flow("prod", "crm-accounts", table_based=True)
    return files, table


@pytest.fixture
def config(sim, tmp_path, flows):
    sim.on_demand_times = (0.05, 0.15)  # on-demand runs finish within a few ticks
    path = tmp_path / "c.yaml"
    path.write_text(config_yaml(sim, extra=f"state_file: {tmp_path / 'state.json'}\n"))
    return str(path)


class Ticker:
    """Moves the simulator's runs along, as Adobe does, once started (some tests hold it back)."""

    def __init__(self, world) -> None:
        self.world = world
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        async def tick():
            while True:
                self.world.tick()
                await asyncio.sleep(0.02)

        self.task = asyncio.create_task(tick())


@pytest.fixture
async def ticker(world):
    t = Ticker(world)
    yield t
    if t.task:
        t.task.cancel()


@pytest.fixture
async def ticking(ticker):
    ticker.start()
    return ticker


def args_for(flow_id: str, *extra: str) -> list[str]:
    return ["--sandbox", "prod", "--flow", flow_id, "--from", str(FROM), "--to", str(TO), "--window", "1d",
            "--wait-interval", "50ms", *extra]  # fmt: skip


async def start(config: str | None, *args: str, stdout=asyncio.subprocess.PIPE, cwd=None) -> asyncio.subprocess.Process:
    cmd = [sys.executable, "-m", "exporter", "backfill", *(["--config.file", config] if config else []), *args]
    return await asyncio.create_subprocess_exec(*cmd, stdout=stdout, stderr=asyncio.subprocess.PIPE, env=ENV, cwd=cwd)


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, (out or b"").decode(), err.decode()


async def backfill(config: str | None, *args: str, **kw) -> tuple[int, str, str]:
    return await finish(await start(config, *args, **kw))


def created_windows(sim, flow_id: str) -> list[tuple[int, int]]:
    return [
        (int(r.params["windowStartTime"]), int(r.params["windowEndTime"])) for r in sim.created if r.flow_id == flow_id
    ]


def table_rows(out: str) -> list[str]:
    """The end table's rows, one per window (the progress lines start with `[n/7]`)."""
    day = [datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%d %H:%M → ") for s, _ in SEVEN]
    return [line for line in out.splitlines() if line.startswith(tuple(day))]


def journal_of(tmp_path, flow_id: str) -> dict:
    return json.loads((tmp_path / f"backfill-{flow_id}-{FROM}-{TO}.json").read_text())


async def test_seven_windows_to_success(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success"]
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert created_windows(sim, files.id) == SEVEN  # one run per window, in order, the last ending at --to
    assert all(r.params["windowStartTime"].isdigit() for r in sim.created)  # trigger's body rules
    assert "\x1b" not in out and "\r" not in out  # not a terminal: plain lines
    assert "[7/7]" in out and "succeeded  run " in out
    rows = table_rows(out)
    assert len(rows) == 7 and all(" success " in r for r in rows)
    assert "7 of 7 windows succeeded" in out and "to resume" not in out
    journal = journal_of(tmp_path, files.id)  # the default journal: next to the state file
    assert [w["state"] for w in journal["windows"]] == ["succeeded"] * 7
    assert [w["run_id"] for w in journal["windows"]] == [r.id for r in sim.created]

    code, out, err = await backfill(config, *args_for(files.id))  # again: nothing left to do
    assert code == 0 and "7 already succeeded" in out, out + err
    assert len(sim.created) == 7


async def test_concurrency(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success"]
    in_flight: list[int] = []
    sim.after_create = lambda run: in_flight.append(sum(1 for r in sim.created if not r.completed))
    code, out, err = await backfill(config, *args_for(files.id, "--concurrency", "3"))
    assert code == 0, out + err
    assert sorted(created_windows(sim, files.id)) == SEVEN
    assert max(in_flight) == 3  # three at a time, never more


async def test_one_at_a_time_by_default(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success"]
    in_flight: list[int] = []
    sim.after_create = lambda run: in_flight.append(sum(1 for r in sim.created if not r.completed))
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert in_flight == [1] * 7


async def test_a_failed_window_is_retried(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success", "success", "failed"] + ["success"] * 5  # the third window's first run fails
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    made = created_windows(sim, files.id)
    assert len(made) == 8 and sorted(set(made)) == SEVEN and made.count(SEVEN[2]) == 2
    assert "failed  run " in out and "CONNECTOR-1001-500" in out  # the failure was shown as it happened
    window = journal_of(tmp_path, files.id)["windows"][2]
    assert window["state"] == "succeeded" and window["attempts"] == 2 and len(window["previous_runs"]) == 1


async def test_without_retries_a_failure_ends_in_exit_1_and_a_resume_retries_it(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success", "success", "failed"] + ["success"] * 5
    code, out, err = await backfill(config, *args_for(files.id, "--retry-failed", "0"))
    assert code == 1, out + err
    row = table_rows(out)[2]
    assert " failed " in row and "0/0/0" in row and "CONNECTOR-1001-500" in row
    assert "6 of 7 windows succeeded" in out and "to resume" in out
    assert "--retry-failed 1" in out.split("to resume")[1]  # the command shown does retry
    assert len(sim.created) == 7

    code, out, err = await backfill(config, *args_for(files.id))  # --retry-failed 1: the failed window only
    assert code == 0, out + err
    assert created_windows(sim, files.id)[7:] == [SEVEN[2]]


async def test_killed_while_creating_then_resumed_creates_no_duplicate(sim, config, flows, ticking, tmp_path):
    """SIGKILL after Adobe created the 4th run but before its answer arrived: the journal says
    `creating`, and the resume finds that run by listing instead of creating another."""
    files, _ = flows
    files.script = ["success"]
    proc = await start(config, *args_for(files.id))
    sim.after_create = lambda run: proc.kill() if len(sim.created) == 4 else None
    code, out, _ = await finish(proc)
    assert code == -signal.SIGKILL
    sim.after_create = None
    journal = journal_of(tmp_path, files.id)
    assert [w["state"] for w in journal["windows"]][:4] == ["succeeded"] * 3 + ["creating"]
    assert journal["windows"][3]["run_id"] is None

    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert created_windows(sim, files.id) == SEVEN  # exactly one per window
    assert journal_of(tmp_path, files.id)["windows"][3]["run_id"] == sim.created[3].id
    lookups = [r for r in sim.requests if r["method"] == "GET" and r["path"] == BASE_PATH + "/runs"]
    assert any(v.startswith("createdAt>") for r in lookups for k, v in r["query"] if k == "property")


async def test_killed_while_following_then_resumed_follows_the_same_run(sim, config, flows, ticker, tmp_path):
    files, _ = flows
    files.script = ["success"]
    proc = await start(config, *args_for(files.id))  # nothing ticks yet: the first run stays scheduled

    async def first_running():
        try:
            w = journal_of(tmp_path, files.id)["windows"][0]
        except (OSError, ValueError):
            return None
        return w if w["state"] == "running" else None

    window = await eventually(first_running, what="the first window's run in the journal")
    proc.kill()
    await finish(proc)
    assert len(sim.created) == 1 and window["run_id"] == sim.created[0].id

    ticker.start()
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert created_windows(sim, files.id) == SEVEN
    assert journal_of(tmp_path, files.id)["windows"][0]["run_id"] == window["run_id"]


async def test_a_run_still_going_at_wait_timeout_is_followed_on_resume(sim, config, flows, ticker, tmp_path):
    files, _ = flows
    files.script = ["success"]
    code, out, err = await backfill(config, *args_for(files.id, "--wait-timeout", "300ms"))
    assert code == 1 and "still scheduled after" in out and "to resume" in out, out + err
    assert "stopped creating runs: a run was still going after --wait-timeout" in out
    assert len(sim.created) == 1  # nothing created behind a run that does not end

    ticker.start()
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert created_windows(sim, files.id) == SEVEN
    assert "still scheduled" not in out.split("window (UTC)")[1]


async def test_ctrl_c_stops_creating_waits_for_nothing_and_says_how_to_resume(sim, config, flows, tmp_path):
    files, _ = flows
    proc = await start(config, *args_for(files.id))  # nothing ticks: the first run never ends

    async def created():
        return len(sim.created) == 1 and journal_of(tmp_path, files.id)["windows"][0]["state"] == "running"

    await eventually(created, what="the first run")
    proc.send_signal(signal.SIGINT)
    code, out, err = await finish(proc)
    assert code == 1, out + err
    assert "interrupted: no more runs were created" in out
    assert f"aep-flow-exporter backfill --config.file {config} --sandbox prod --flow {files.id}" in out
    assert "Traceback" not in err and len(sim.created) == 1


async def test_a_create_whose_answer_is_lost_is_looked_up_not_repeated(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success"]

    def fail_answer(run):
        if len(sim.created) == 2:
            raise RuntimeError("the run exists, the answer is a 500")

    sim.after_create = fail_answer
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert created_windows(sim, files.id) == SEVEN


async def test_a_refusal_stops_creating_and_exits_2(sim, config, flows, ticking):
    _, table = flows  # table-based, first run, no --delta-column
    code, out, err = await backfill(config, *args_for(table.id))
    assert code == 2 and "deltaColumn is required for the first flow run" in err
    posts = [r for r in sim.requests if r["method"] == "POST" and r["path"] == BASE_PATH + "/runs"]
    assert len(posts) == 2 and sim.created == []  # strings, then integers once: both refused, then nothing more
    code, out, err = await backfill(config, *args_for(table.id, "--delta-column", "DOB"))
    assert code == 0, out + err
    assert created_windows(sim, table.id) == SEVEN
    assert all(r.params["deltaColumn"] == {"name": "DOB"} for r in sim.created)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--to": str(FROM - DAY)}, "--to must be after --from"),
        ({"--to": "16515859567"}, "--to 16515859567 is more than a day in the future (in the year 2493)"),
        ({"--from": "yesterday"}, "--from: 'yesterday' is neither unix seconds nor an ISO-8601 time"),
        ({"--window": "forever"}, "--window:"),
        ({"--window": "500ms"}, "--window must be at least 1s"),
        ({"--window": "0s"}, "--window: duration must be positive"),
        ({"--window": "1m"}, "10080 windows of 1m: more than 10000"),
        ({"--concurrency": "0"}, "--concurrency must be between 1 and 32"),
        ({"--retry-failed": "-1"}, "--retry-failed must be 0 or more"),
        ({"--wait-interval": "soon"}, "--wait-interval:"),
        ({"--flow": "crm-accounts"}, "--flow: not a flow ID"),
    ],
)
async def test_validation_errors_exit_2_before_any_request(sim, config, flows, change, message):
    args = args_for(flows[0].id)
    for flag, value in change.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    code, out, err = await backfill(config, *args)
    assert code == 2 and message in err, err
    assert "Traceback" not in err and sim.requests == []


async def test_a_journal_of_another_plan_is_refused_before_any_request(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    journal = str(tmp_path / "j.json")
    files.script = ["success"]
    code, out, err = await backfill(config, *args_for(files.id, "--journal", journal, "--to", str(FROM + 2 * DAY)))
    assert code == 0, out + err
    sim.requests.clear()
    code, out, err = await backfill(config, *args_for(files.id, "--journal", journal))
    assert code == 2 and "was written for another backfill (end" in err and "Traceback" not in err
    assert sim.requests == []


async def test_dry_run_prints_every_request_and_sends_nothing(sim, config, flows, tmp_path):
    files, _ = flows
    code, out, err = await backfill(config, *args_for(files.id, "--dry-run"))
    assert code == 0, err
    bodies = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(int(b["params"]["windowStartTime"]), int(b["params"]["windowEndTime"])) for b in bodies] == SEVEN
    assert "Authorization: Bearer [REDACTED]" in out
    assert sim.requests == [] and not (tmp_path / f"backfill-{files.id}-{FROM}-{TO}.json").exists()


async def test_progress_bar_on_a_terminal(sim, config, flows, ticking):
    import fcntl
    import pty
    import struct
    import termios

    files, _ = flows
    files.script = ["success"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))

    def drain() -> bytes:
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    try:
        proc = await start(config, *args_for(files.id), stdout=slave)
        os.close(slave)
        reading = asyncio.ensure_future(asyncio.to_thread(drain))
        code, _, err = await finish(proc)
        screen = (await asyncio.wait_for(reading, timeout=30)).decode()
    finally:
        os.close(master)
    assert code == 0, err
    assert "\x1b[" in screen  # redrawn in place
    assert "backfill" in screen and "7/7" in screen and "windows · elapsed" in screen and "· left" in screen
    assert "━" in screen  # the bar
    assert "7 of 7 windows succeeded" in screen


async def test_an_api_that_wants_integer_params(sim, config, flows, ticking):
    """Strings first (the tutorials); once refused, integers for that window and every later one."""
    files, _ = flows
    files.script = ["success"]
    sim.profile = sim.profile.but(run_params="integer")
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert created_windows(sim, files.id) == SEVEN
    forms = [type(b["params"]["windowStartTime"]).__name__ for b in sim.run_bodies]
    assert forms == ["str"] + ["int"] * 7  # one refused POST, never repeated
    assert err.count("sending them once more as integers") == 1


async def test_params_as_is_forced_for_every_window(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success"]
    sim.profile = sim.profile.but(run_params="integer")
    code, out, err = await backfill(config, *args_for(files.id, "--params-as", "string"))
    assert code == 2 and "try --params-as integer" in err and sim.created == []
    assert len(sim.run_bodies) == 1  # refused: nothing more is created
    code, out, err = await backfill(
        config, *args_for(files.id, "--params-as", "integer", "--journal", str(tmp_path / "j"))
    )
    assert code == 0, out + err
    assert all(isinstance(b["params"]["startTime"], int) for b in sim.run_bodies[1:]) and len(sim.run_bodies) == 8


def posts_to(sim, suffix: str) -> list[dict]:
    return [
        r
        for r in sim.requests
        if r["method"] == "POST" and r["path"].startswith(BASE_PATH) and r["path"].endswith(suffix)
    ]


async def test_a_failed_window_is_retried_through_adobes_re_trigger(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success", "success", "failed"] + ["success"] * 5
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert len(posts_to(sim, "/runs")) == 7 and len(posts_to(sim, "/action")) == 1  # no new run for the retry
    window = journal_of(tmp_path, files.id)["windows"][2]
    failed, retried = window["previous_runs"][0], window["run_id"]
    assert window["retry_of"] == failed and sim.world.runs[retried].retry_of == failed  # both runs recorded
    assert posts_to(sim, "/action")[0]["path"] == f"{BASE_PATH}/runs/{failed}/action"
    assert f" {retried} " in table_rows(out)[2] and failed not in table_rows(out)[2]  # the table shows the last

    journal = tmp_path / f"backfill-{files.id}-{FROM}-{TO}.json"  # a plan file written before the field
    doc = json.loads(journal.read_text())
    for w in doc["windows"]:
        del w["retry_of"]
    journal.write_text(json.dumps(doc))
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0 and "7 already succeeded" in out, out + err


async def test_a_window_whose_re_trigger_adobe_refuses_gets_a_new_run(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success", "success", "failed"] + ["success"] * 5
    sim.inject(
        400,
        path="/action",
        body={"title": "Bad request", "errorMessage": "Retry is not supported for this source"},
        times=2,
    )
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert "Retry is not supported for this source" in err and "creating a new run for the window instead" in err
    # Both spellings of op refused (the words tell nothing), then a new run for the window.
    assert len(posts_to(sim, "/action")) == 2 and len(posts_to(sim, "/runs")) == 8
    window = journal_of(tmp_path, files.id)["windows"][2]
    assert window["retry_of"] is None and len(window["previous_runs"]) == 1 and window["attempts"] == 3


async def test_a_re_trigger_whose_answer_is_lost_is_looked_up_not_repeated(sim, config, flows, ticking, tmp_path):
    files, _ = flows
    files.script = ["success", "success", "failed"] + ["success"] * 5
    sim.lose_retry_answers = 1
    code, out, err = await backfill(config, *args_for(files.id))
    assert code == 0, out + err
    assert len(posts_to(sim, "/action")) == 1 and len(posts_to(sim, "/runs")) == 7
    window = journal_of(tmp_path, files.id)["windows"][2]
    assert window["run_id"] == sim.created[3].id and window["retry_of"] == window["previous_runs"][0]
