"""The state file as base + journal: a save appends what changed, a load replays it, and what a
restart restores is what the exporter exported (compared through the collectors' output)."""

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
    assert store.base_writes == 1
    base = (tmp_path / "state.json").read_text()
    flows = list(ledger.flows.values())
    ledger.apply_runs(flows[0], [facts("r0-1", "failed", True, 2_000)], 0, complete=False)
    ledger.apply_runs(flows[1], [facts("r1-1", "inProgress", False, 3_000)], 0, complete=False)
    store.save_now(ledger)
    ledger.retain([(f.sandbox, f.flow_id) for f in flows[1:]])  # flow-0 no longer watched
    store.save_now(ledger)
    assert store.base_writes == 1 and (tmp_path / "state.json").read_text() == base  # the base untouched
    journal = (tmp_path / "state.json.journal").read_text().splitlines()
    assert len(journal) == 1 + (1 + 2 + 1) + (1 + 0 + 1)  # head; 2 flows changed; 1 forgotten
    assert series(restored(path)) == series(ledger)
    assert json.loads(base)["flows"]  # still one JSON document, as the previous release wrote


@pytest.mark.parametrize("cut", [20, len('{"end":1}\n')])  # in a flow's line; its end mark
def test_a_record_cut_short_is_dropped_and_the_next_save_writes_a_new_base(tmp_path, cut):
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    before = series(ledger)
    s = next(iter(ledger.flows.values()))
    ledger.apply_runs(s, [facts("r0-1", "failed", True, 2_000)], 0, complete=False)
    store.save_now(ledger)
    journal = tmp_path / "state.json.journal"
    text = journal.read_text()
    journal.write_text(text[: len(text) - cut])  # a crash in the middle of the append
    again = Ledger()
    store2 = StateStore(path, ORG, URL)
    store2.load(again, {"sb0", "sb1"})
    assert series(again) == before  # that cycle's change is lost, nothing else
    store2.save_now(again)
    assert store2.base_writes == 1  # not appended after a torn record
    assert series(restored(path)) == before


def test_a_journal_of_another_base_is_not_replayed(tmp_path):
    """A crash after a new base was written but before its journal was: the old journal's records
    are already in the base, and must not be applied over it."""
    path = str(tmp_path / "state.json")
    ledger = populated()
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    s = next(iter(ledger.flows.values()))
    ledger.apply_runs(s, [facts("r0-1", "failed", True, 2_000)], 0, complete=False)
    store.save_now(ledger)
    old_journal = (tmp_path / "state.json.journal").read_text()
    store._journal_bytes = 10**9  # compaction due
    ledger.retain([k for k in ledger.flows if k != (s.sandbox, s.flow_id)])
    store.save_now(ledger)
    assert store.base_writes == 2
    (tmp_path / "state.json.journal").write_text(old_journal)
    assert series(restored(path)) == series(ledger)  # flow-0 stays forgotten


def test_compaction_when_the_journal_outgrows_the_base(tmp_path):
    path = str(tmp_path / "state.json")
    ledger = populated(2)
    store = StateStore(path, ORG, URL)
    store.save_now(ledger)
    s = next(iter(ledger.flows.values()))
    for i in range(400):  # each save appends one changed flow
        ledger.apply_runs(s, [facts(f"r-{i}", "success", True, 10_000 + i)], 0, complete=False)
        store.save_now(ledger)
    assert store.base_writes > 1
    assert (tmp_path / "state.json.journal").stat().st_size <= max((tmp_path / "state.json").stat().st_size, 70_000)
    assert series(restored(path)) == series(ledger)


def test_a_state_file_of_the_previous_release_loads(tmp_path):
    """One document, no generation, no journal: loads as before, and the first save writes a base."""
    path = str(tmp_path / "state.json")
    ledger = populated()
    old = StateStore(path, ORG, URL).snapshot(ledger)
    (tmp_path / "state.json").write_text(json.dumps(old))
    again = Ledger()
    store = StateStore(path, ORG, URL)
    assert store.load(again, {"sb0", "sb1"}) == 6
    assert series(again) == series(ledger)
    store.save_now(again)
    assert store.base_writes == 1 and json.loads((tmp_path / "state.json").read_text())["generation"]
    assert series(restored(path)) == series(ledger)


def test_a_journal_deleted_between_saves_makes_the_next_save_a_new_base(tmp_path):
    """Appending to a journal that is gone would create one without its head, which the next load
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
