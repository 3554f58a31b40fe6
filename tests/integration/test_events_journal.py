"""Adobe I/O Events, pulled: the journal beside polling. Each run counts exactly once
however it is announced (twice, out of order, in either envelope, by both paths, or not at all);
the journal position is saved with the ledger and resumed; an expired position resets and the
next sweep covers the gap; a sweep that finds runs events missed says so and polling speeds up."""

from __future__ import annotations

import json
import random
import statistics

from conftest import ExporterProcess, config_yaml, events_yaml, eventually, ready, scrape, series, value

from exporter.simulator import BASE_PATH, JOURNAL_PATH, EventsChaos, Simulator


def write_config(tmp_path, sim: Simulator, poll: str = "1s", state: bool = False, **events) -> str:
    text = config_yaml(sim, flows={"prod": [f.id for f in sim.world.flows.values() if f.name != "unwatched"]})
    text = text.replace("poll_interval: 1s", f"poll_interval: {poll}")
    if state:
        text += f"state_file: {tmp_path / 'state.json'}\n"
    path = tmp_path / "config.yaml"
    path.write_text(text + events_yaml(sim, **events))
    return str(path)


def finish(sim: Simulator, flow_name: str, outcomes: list[str]) -> None:
    flow = next(f for f in sim.world.flows.values() if f.name == flow_name)
    for outcome in outcomes:
        sim.world.finish_run(sim.world.start_run(flow.id).id, outcome)


def expected(sim: Simulator, flow_name: str) -> dict[str, int]:
    flow = next(f for f in sim.world.flows.values() if f.name == flow_name)
    out: dict[str, int] = {}
    for r in sim.world.completed_runs(flow.id):
        out[r.status] = out.get(r.status, 0) + 1
    return out


async def totals(url: str, sim: Simulator, flow_name: str) -> dict[str, int]:
    flow = next(f for f in sim.world.flows.values() if f.name == flow_name)
    m = await scrape(url)
    got = series(m, "aep_flow_runs_total", flow_id=flow.id)
    return {dict(k)["status"]: int(v) for k, v in got.items() if v}


async def settled(url: str, sim: Simulator, names: list[str]) -> bool:
    return all([await totals(url, sim, n) == expected(sim, n) for n in names])


def journal_reads(sim: Simulator) -> list[dict[str, str]]:
    return [dict(r["query"]) for r in sim.requests if r["path"] == JOURNAL_PATH]


async def test_duplicates_shuffling_both_envelopes_and_unwatched_flows_count_once(esim, tmp_path):
    for name in ("a", "b", "unwatched"):
        esim.world.add_flow("prod", name)
    esim.events.chaos = EventsChaos(duplicate=0.5, shuffle=0.5, envelope="mixed", rng=random.Random(3))
    config = write_config(tmp_path, esim, poll="1h", webhook=False)
    async with ExporterProcess("--config.file", config) as exp:
        await eventually(lambda: ready(exp), what="the baseline")
        await eventually(lambda: journal_reads(esim), what="the first journal read")
        rng = random.Random(5)
        for _ in range(4):
            for name in ("a", "b", "unwatched"):
                finish(esim, name, rng.choices(["success", "failed", "partial"], k=3))
        await eventually(lambda: settled(exp.url, esim, ["a", "b"]), what="every run of a and b counted once")
        m = await scrape(exp.url)
        assert sum(expected(esim, "a").values()) + sum(expected(esim, "b").values()) == 24
        assert value(m, "aep_events_received_total", source="journal", outcome="counted") == 24
        assert value(m, "aep_events_received_total", source="journal", outcome="duplicate") >= 1
        assert value(m, "aep_events_received_total", source="journal", outcome="ignored") >= 12  # unwatched
        assert await totals(exp.url, esim, "unwatched") == {}
        # the journal was asked with our credentials, from the latest position first, then since=
        reads = journal_reads(esim)
        first = next(i for i, q in enumerate(reads) if "since" in q)
        assert first > 0 and all(q.get("latest") == "true" for q in reads[:first])
        assert all("since" in q for q in reads[first:])
        # every envelope kind was seen (the chaos mixes them), and no run was asked of the Flow Service
        kinds = {("event_id" in e) for _, _, e in esim.events.journal}
        assert kinds == {True, False}
        assert not [r for r in esim.requests if r["path"] == BASE_PATH + "/runs" and r["clock"] > m_time(m)]


def m_time(m) -> float:
    """When the baseline cycle ended (the sandbox's last successful poll)."""
    return value(m, "aep_exporter_last_poll_success_timestamp_seconds", sandbox="prod") or 0.0


async def test_both_paths_and_fast_polling_count_each_run_once(esim, tmp_path):
    """Journal, webhook and a poll every second all see the same runs: each counts once."""
    for name in ("a", "b"):
        esim.world.add_flow("prod", name)
    esim.events.chaos = EventsChaos(duplicate=0.3, shuffle=0.3, rng=random.Random(7))
    config = write_config(tmp_path, esim, sweep_interval="1s")
    async with ExporterProcess("--config.file", config) as exp:
        esim.events.webhook_url = exp.base + "/adobe-io-events"
        await eventually(lambda: ready(exp), what="the baseline")
        rng = random.Random(9)
        for _ in range(10):
            finish(esim, rng.choice(["a", "b"]), [rng.choice(["success", "failed"])])
            esim.tick()
        await eventually(lambda: settled(exp.url, esim, ["a", "b"]), what="every run counted once")

        async def all_announced():
            m = await scrape(exp.url)
            n = sum(
                value(m, "aep_events_received_total", source=s, outcome=o) or 0
                for s in ("journal", "webhook")
                for o in ("counted", "duplicate")
            )
            return n >= 20 and m

        m = await eventually(all_announced, what="both paths to have announced every run")
        assert await settled(exp.url, esim, ["a", "b"])  # still exactly once
        counted = sum(
            value(m, "aep_events_received_total", source=s, outcome="counted") or 0 for s in ("journal", "webhook")
        )
        assert counted <= 10


def saved_events(path) -> dict:
    """The events section as the state file holds it now: the base's, then each journal record's
    (a save appends what changed to `<state file>.journal`; exporter/ledger/store.py)."""
    events = json.loads(path.read_text())["events"]
    journal = path.with_name(path.name + ".journal")
    if journal.exists():
        for line in journal.read_text().splitlines()[1:]:
            record = json.loads(line)
            if isinstance(record, dict) and "events" in record.get("sections", {}):
                events = record["sections"]["events"]
    return events


async def test_position_is_saved_with_the_ledger_and_resumed(esim, tmp_path):
    esim.world.add_flow("prod", "a")
    config = write_config(tmp_path, esim, poll="1h", state=True, webhook=False)
    async with ExporterProcess("--config.file", config, cwd=str(tmp_path)) as exp:
        await eventually(lambda: ready(exp), what="the baseline")
        await eventually(lambda: journal_reads(esim), what="the first journal read")
        finish(esim, "a", ["success", "failed"])
        await eventually(lambda: settled(exp.url, esim, ["a"]), what="the two runs")
        assert await exp.stop() == 0
    saved = saved_events(tmp_path / "state.json")["journal"]
    assert saved["url"].endswith(JOURNAL_PATH) and saved["position"]
    finish(esim, "a", ["success", "success", "failed"])  # while the exporter is down
    esim.requests.clear()
    async with ExporterProcess("--config.file", config, cwd=str(tmp_path)) as exp:
        await eventually(lambda: settled(exp.url, esim, ["a"]), what="the runs of the downtime, once")
        assert journal_reads(esim)[0].get("since") == saved["position"]
        m = await scrape(exp.url)
        assert value(m, "aep_events_journal_resets_total", reason="expired") == 0
        assert await totals(exp.url, esim, "a") == {"success": 3, "failed": 2}


async def test_expired_position_resets_and_the_sweep_covers_the_gap(esim, tmp_path):
    """Announcements that expire before they are read (the exporter fell a week behind): the
    journal answers 410, the reader starts again from the oldest event kept, and the poller
    (otherwise an hour away) sweeps at once and counts the gap's runs, once."""
    esim.world.add_flow("prod", "a")
    esim.events.retry_after = 2  # reads 2 s apart: time to lose the announcements in between
    config = write_config(tmp_path, esim, poll="1h", webhook=False)
    async with ExporterProcess("--config.file", config, log_path=str(tmp_path / "log")) as exp:
        await eventually(lambda: ready(exp), what="the baseline")
        finish(esim, "a", ["success"])
        await eventually(lambda: settled(exp.url, esim, ["a"]), what="the first run")
        reads = len(journal_reads(esim))
        await eventually(lambda: len(journal_reads(esim)) > reads, what="a read at the journal's end")
        finish(esim, "a", ["failed", "success"])
        esim.events.expire_all()  # gone before the next read

        async def reset():
            m = await scrape(exp.url)
            return value(m, "aep_events_journal_resets_total", reason="expired") == 1 and m

        await eventually(reset, what="the reset on /metrics")
        await eventually(lambda: settled(exp.url, esim, ["a"]), what="the gap's runs, counted by the sweep")
        assert await totals(exp.url, esim, "a") == {"success": 2, "failed": 1}
        assert any("since" not in q and "latest" not in q for q in journal_reads(esim))  # from the oldest kept
    assert "older than its retention" in (tmp_path / "log").read_text()


async def test_lost_announcements_are_missed_runs_and_polling_speeds_up(esim, tmp_path):
    """While events flow, polling is a slow sweep (every 4 s here, against poll_interval 1 s);
    runs the sweep finds that no event announced are missed, and polling is fast again."""
    esim.world.add_flow("prod", "a")
    config = write_config(tmp_path, esim, webhook=False, sweep_interval="4s", announce_grace="1s", quiet_after="1h")
    async with ExporterProcess("--config.file", config) as exp:
        await eventually(lambda: ready(exp), what="the baseline")
        finish(esim, "a", ["success"])  # announced: events are flowing
        await eventually(lambda: settled(exp.url, esim, ["a"]), what="the announced run")
        start = len(esim.requests)
        await eventually(lambda: len(cycle_times(esim, start)) >= 3, timeout=30, what="three sweeps")
        slow = statistics.median(gaps(cycle_times(esim, start)))
        esim.events.chaos.lose = 1.0
        finish(esim, "a", ["failed", "failed"])  # never announced

        async def missed():
            m = await scrape(exp.url)
            return value(m, "aep_events_missed_runs_total", sandbox="prod") == 2 and m

        await eventually(missed, timeout=30, what="the two runs counted as missed")
        assert await totals(exp.url, esim, "a") == {"success": 1, "failed": 2}
        start = len(esim.requests)
        await eventually(lambda: len(cycle_times(esim, start)) >= 4, timeout=30, what="four polls")
        fast = statistics.median(gaps(cycle_times(esim, start)))
        assert slow >= 3.0 and fast <= 2.0, (slow, fast)


def cycle_times(sim: Simulator, start: int) -> list[float]:
    """When each poll cycle listed runs (the batched strategy lists /runs once a cycle here)."""
    times = [r["time"] for r in sim.requests[start:] if r["path"] == BASE_PATH + "/runs"]
    cycles: list[float] = []
    for t in times:
        if not cycles or t - cycles[-1] > 0.5:
            cycles.append(t)
    return cycles


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


async def test_a_state_file_from_before_events_still_loads(esim, tmp_path):
    """A state file written before events existed loads, and the journal then starts from it
    without a reset or the file moved aside."""
    esim.world.add_flow("prod", "a")
    text = config_yaml(esim) + f"state_file: {tmp_path / 'state.json'}\n"
    (tmp_path / "c.yaml").write_text(text)
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml")) as exp:
        await eventually(lambda: ready(exp), what="the first cycle")
        assert await exp.stop() == 0
    assert "events" not in json.loads((tmp_path / "state.json").read_text())
    (tmp_path / "c.yaml").write_text(text + events_yaml(esim, webhook=False))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml"), log_path=str(tmp_path / "log")) as exp:
        await eventually(lambda: ready(exp), what="the first cycle")
        await eventually(lambda: [r for r in esim.requests if r["path"] == JOURNAL_PATH], what="a journal read")
        m = await scrape(exp.url)
        assert value(m, "aep_events_journal_resets_total", reason="url_changed") == 0
    assert "moved aside" not in (tmp_path / "log").read_text()
