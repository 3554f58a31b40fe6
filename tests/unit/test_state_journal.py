"""The state file as a base and the changes appended beside it: a save appends what changed, a
load replays it, and what a restart restores is what the exporter exported (compared through the
collectors' output). Whether a save wrote a new base shows in the base's generation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import exposition
from prometheus_client import CollectorRegistry

from exporter.adobe.models import Flow, Run
from exporter.adobe.runfacts import run_facts
from exporter.config import MetricsConfig
from exporter.exposition.collectors.flows import FlowCollector
from exporter.ledger.ledger import Ledger
from exporter.ledger.store import StateStore
from exporter.simulator.world import load_seed

ORG, URL = "ORG@AdobeOrg", "https://platform.adobe.io/data/foundation/flowservice"
SEED = load_seed()["run"]


def facts(run_id: str, status: str, completed: bool, created_ms: int):
    return replace(
        run_facts(Run.from_json({**SEED, "id": run_id, "createdAt": created_ms})), status=status, completed=completed
    )


NOT_SAVED = ("aep_exporter_", "aep_flow_info", "aep_flow_enabled", "aep_flow_schedule")  # up and metadata: polled


def series(ledger: Ledger) -> dict:
    """What the state file carries over a restart, as exported."""
    reg = CollectorRegistry()
    reg.register(FlowCollector(ledger, MetricsConfig(run_duration_histogram=True)))
    return {k: v for k, v in exposition(reg).items() if not k[0].startswith(NOT_SAVED)}


def restored(path: str, sandboxes: set[str] | None = None) -> Ledger:
    ledger = Ledger()
    StateStore(path, ORG, URL).load(ledger, sandboxes or {"sb0", "sb1"})
    return ledger


def generation(tmp_path) -> str:
    """The generation of the base on disk: a new one each time a save writes a whole base."""
    return json.loads((tmp_path / "state.json").read_text())["generation"]


def populated(n: int = 6) -> Ledger:
    ledger = Ledger()
    for i in range(n):
        s = ledger.flow(f"sb{i % 2}", f"flow-{i}")
        ledger.set_flow(s, Flow(id=s.flow_id, name=f"n{i}"), 0)
        ledger.apply_runs(s, [facts(f"r{i}-0", "success", True, 1_000)], 0)
    return ledger


def test_saves_append_what_changed_and_a_load_replays_it(tmp_path):
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)  # no base yet: a whole one
    base = (tmp_path / "state.json").read_text()
    flows = list(ledger.flows.values())
    ledger.apply_runs(flows[0], [facts("r0-1", "failed", True, 2_000)], 0, complete=False)
    ledger.apply_runs(flows[1], [facts("r1-1", "inProgress", False, 3_000)], 0, complete=False)
    store.save_now(ledger)
    ledger.retain([(f.sandbox, f.flow_id) for f in flows[1:]])  # flow-0 no longer watched
    store.save_now(ledger)
    assert (tmp_path / "state.json").read_text() == base  # the base untouched
    appended = (tmp_path / "state.json.journal").read_text().splitlines()
    assert len(appended) == 1 + (1 + 2 + 1) + (1 + 0 + 1)  # head; 2 flows changed; 1 forgotten
    assert series(restored(path)) == series(ledger)
    assert json.loads(base)["flows"]  # still one JSON document, as the format's first version


@pytest.mark.parametrize("cut", [20, len('{"end":1}\n')])  # in a flow's line; its end mark
def test_a_record_cut_short_is_dropped_and_the_next_save_writes_a_new_base(tmp_path, cut):
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    first = generation(tmp_path)
    before = series(ledger)
    s = next(iter(ledger.flows.values()))
    ledger.apply_runs(s, [facts("r0-1", "failed", True, 2_000)], 0, complete=False)
    store.save_now(ledger)
    appended = tmp_path / "state.json.journal"
    text = appended.read_text()
    appended.write_text(text[: len(text) - cut])  # a crash in the middle of the append
    again = Ledger()
    store2 = StateStore(path, ORG, URL)
    store2.load(again, {"sb0", "sb1"})
    assert series(again) == before  # that cycle's change is lost, nothing else
    store2.save_now(again)
    assert generation(tmp_path) != first  # a new base, not appended after a torn record
    assert series(restored(path)) == before


def test_changes_appended_to_another_base_are_not_replayed(tmp_path):
    """A crash after a new base was written but before its appends' head was: the old records are
    already in the base, and must not be applied over it."""
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    s = next(iter(ledger.flows.values()))
    ledger.apply_runs(s, [facts("r0-1", "failed", True, 2_000)], 0, complete=False)
    store.save_now(ledger)
    first = generation(tmp_path)
    old_appends = (tmp_path / "state.json.journal").read_text()
    (tmp_path / "state.json.journal").unlink()  # the next save writes a new base
    ledger.retain([k for k in ledger.flows if k != (s.sandbox, s.flow_id)])
    store.save_now(ledger)
    assert generation(tmp_path) != first
    (tmp_path / "state.json.journal").write_text(old_appends)
    assert series(restored(path)) == series(ledger)  # flow-0 stays forgotten


def test_compaction_when_the_appended_changes_outgrow_the_base(tmp_path):
    path = str(tmp_path / "state.json")
    ledger = populated(2)
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    first = generation(tmp_path)
    s = next(iter(ledger.flows.values()))
    for i in range(400):  # each save appends one changed flow
        ledger.apply_runs(s, [facts(f"r-{i}", "success", True, 10_000 + i)], 0, complete=False)
        store.save_now(ledger)
    assert generation(tmp_path) != first
    assert (tmp_path / "state.json.journal").stat().st_size <= max((tmp_path / "state.json").stat().st_size, 70_000)
    assert series(restored(path)) == series(ledger)


def test_a_state_file_without_generation_or_appends_loads(tmp_path):
    """One document, no generation, no appended changes (as the format's first version was
    written): loads as it is, and the first save writes a base."""
    path = str(tmp_path / "state.json")
    ledger = populated()
    StateStore(path, ORG, URL).save_now(ledger)
    old = json.loads((tmp_path / "state.json").read_text())
    del old["generation"]
    (tmp_path / "state.json").write_text(json.dumps(old))
    (tmp_path / "state.json.journal").unlink()
    again = Ledger()
    store = StateStore(path, ORG, URL)
    assert store.load(again, {"sb0", "sb1"}) == 6
    assert series(again) == series(ledger)
    store.save_now(again)
    assert generation(tmp_path)
    assert series(restored(path)) == series(ledger)


def test_appends_deleted_between_saves_make_the_next_save_a_new_base(tmp_path):
    """Appending to a file that is gone would create one without its head, which the next load
    ignores: the changes would be lost at a restart. A new base is written instead."""
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    (tmp_path / "state.json.journal").unlink()
    s = ledger.flow("sb0", "flow-0")
    ledger.apply_runs(s, [facts("r0-0", "success", True, 1_000), facts("r0-1", "failed", True, 2_000)], 0)
    store.save_now(ledger)
    assert series(restored(path)) == series(ledger)


def test_a_restart_restores_the_flows_in_the_order_they_were_saved(tmp_path):
    """The base is read a flow at a time with the appended changes laid over it: a flow changed
    stays in its place, one forgotten and watched again, or new, comes after the others, as in
    the ledger that saved them."""
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    flows = list(ledger.flows.values())
    ledger.apply_runs(flows[1], [facts("r1-1", "failed", True, 2_000)], 0, complete=False)
    ledger.retain([k for k in ledger.flows if k != ("sb0", "flow-2")])
    store.save_now(ledger)
    for key in (("sb1", "flow-9"), ("sb0", "flow-2")):
        s = ledger.flow(*key)
        ledger.apply_runs(s, [facts(f"{key[1]}-new", "success", True, 3_000)], 0)
    ledger.apply_runs(flows[0], [facts("r0-1", "success", True, 4_000)], 0, complete=False)
    store.save_now(ledger)
    assert (tmp_path / "state.json.journal").read_text().count('"end"') == 2  # appended, no new base
    again = restored(path)
    assert (
        list(again.flows)
        == list(ledger.flows)
        == [
            *(("sb0" if i % 2 == 0 else "sb1", f"flow-{i}") for i in (0, 1, 3, 4, 5)),
            ("sb1", "flow-9"),
            ("sb0", "flow-2"),
        ]
    )
    assert series(again) == series(ledger)


def test_a_base_whose_flow_list_ends_early_is_moved_aside(tmp_path):
    path = tmp_path / "state.json"
    store = StateStore(str(path), ORG, URL)
    store.save_now(populated())
    path.write_text(path.read_text().rsplit("\n", 3)[0] + "\n")  # the last flows and the closing line lost
    assert restored(str(path)).flows == {}
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 1
