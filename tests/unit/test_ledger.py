"""Exactly-once accounting: every completed run adds to the counters once, and only once."""

from __future__ import annotations

import math
from dataclasses import replace

from exporter.adobe.runfacts import RunFacts
from exporter.ledger.ledger import Ledger

NOW = 1_700_000_000.0
WINDOW = NOW - 86400


def _counts(completed: bool, records: int | None) -> dict[str, int]:
    """What a completed run reports: failed records 0, and `records` in and out unless None."""
    if not completed:
        return {}
    return (
        {"failed_records": 0}
        if records is None
        else {"input_records": records, "output_records": records, "failed_records": 0}
    )


def run(
    run_id: str,
    status: str = "success",
    created: float = NOW - 600,
    records: int | None = 10,
    duration: float | None = 42.0,
    codes: tuple[str, ...] = (),
) -> RunFacts:
    completed = status in ("success", "failed", "cancelled", "partialSuccess", "partialFailure", "completed")
    return RunFacts(
        run_id=run_id,
        created=created,
        status=status,
        completed=completed,
        started=created + 1,
        ended=(created + 1 + duration) if completed and duration is not None else None,
        duration=duration if completed else None,
        counts=_counts(completed, records),
        error_codes=frozenset(codes),
        error_records=tuple((c, 1) for c in codes),
        window_end=None,
        activities=(),
    )


def fresh():
    ledger = Ledger()
    return ledger, ledger.flow("prod", "f1")


def test_baseline_remembers_completed_runs_without_counting():
    ledger, flow = fresh()
    assert ledger.apply_runs(flow, [run("a"), run("b", "failed")], WINDOW) == 0
    assert flow.totals.runs == {"success": 0, "failed": 0}
    assert flow.totals.sums["input_records"] == 0 and flow.totals.duration_count == 0
    # The same runs seen again later are still not counted.
    assert ledger.apply_runs(flow, [run("a"), run("b", "failed")], WINDOW) == 0
    assert flow.totals.runs == {"success": 0, "failed": 0}


def test_a_baseline_cut_short_counts_newer_runs_and_those_in_flight_not_the_pages_it_lacked():
    """A next link ended the first listing after its newest runs (t-300 done, t-200 in flight):
    the runs it lacked are older and from before the baseline. Listed whole later, they are not
    counted; the run it saw in flight and a run created after it are, once."""
    ledger, flow = fresh()
    assert (
        ledger.apply_runs(
            flow,
            [run("new", created=NOW - 300), run("flying", "inProgress", created=NOW - 200)],
            WINDOW,
            complete=False,
            cut=True,
        )
        == 0
    )
    assert flow.visible and flow.up
    whole = [
        run("older", created=NOW - 900),  # a page the cut listing lacked
        run("new", created=NOW - 300),
        run("flying", created=NOW - 200),  # completed since
        run("later", "failed", created=NOW - 100),  # created after the cut baseline
    ]
    assert ledger.apply_runs(flow, whole, WINDOW) == 2
    assert flow.totals.runs == {"success": 1, "failed": 1}
    # Whole now: a run first seen completed counts, whatever its createdAt.
    assert ledger.apply_runs(flow, [*whole, run("late-listed", created=NOW - 950)], WINDOW) == 1


def test_a_cut_baseline_keeps_its_horizon_across_a_restart():
    """The runs the cut baseline lacked are from before it after a restart too: the state file
    keeps the horizon (inf, when the cut listing held no createdAt, included)."""
    import json

    from exporter.ledger.codec import encode, restore_flow

    for held, horizon in (([run("new", created=NOW - 300)], NOW - 300), ([], math.inf)):
        ledger, flow = fresh()
        ledger.apply_runs(flow, held, WINDOW, complete=False, cut=True)
        back = restore_flow(json.loads(encode(flow)))
        assert back.cut_horizon == flow.cut_horizon == horizon
        restored = Ledger()
        restored.restore([back], {})
        older = [*held, run("older", created=NOW - 900)]  # a page the cut listing lacked
        assert restored.apply_runs(back, older, WINDOW) == 0


def test_run_in_flight_at_baseline_is_counted_once_when_it_completes():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [run("a", "inProgress")], WINDOW)
    assert flow.in_flight == 1
    assert ledger.apply_runs(flow, [run("a", "inProgress")], WINDOW) == 0
    assert ledger.apply_runs(flow, [run("a", "success")], WINDOW) == 1
    for _ in range(3):
        assert ledger.apply_runs(flow, [run("a", "success")], WINDOW) == 0
    assert flow.totals.runs["success"] == 1
    assert flow.totals.sums["input_records"] == 10
    assert flow.totals.duration_count == 1 and flow.totals.duration_sum == 42.0
    assert flow.in_flight == 0


def test_new_run_seen_completed_at_once_is_counted_once():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [], WINDOW)
    assert ledger.apply_runs(flow, [run("a", "failed", codes=("CONNECTOR-1001-500",))], WINDOW) == 1
    assert ledger.apply_runs(flow, [run("a", "failed", codes=("CONNECTOR-1001-500",))], WINDOW) == 0
    assert flow.totals.runs == {"success": 0, "failed": 1}
    assert flow.totals.run_errors == {"CONNECTOR-1001-500": 1}
    assert flow.totals.error_records == {"CONNECTOR-1001-500": 1}


def test_overlapping_pages_repeat_a_run_within_one_poll():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [], WINDOW)
    page1 = [run("c", created=NOW - 10), run("b", created=NOW - 20)]
    page2 = [run("b", created=NOW - 20), run("a", created=NOW - 30)]  # "b" again: the list shifted
    assert ledger.apply_runs(flow, page1 + page2, WINDOW) == 3
    assert flow.totals.runs["success"] == 3


def test_status_flapping_after_completion_does_not_recount():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [run("a", "inProgress")], WINDOW)
    ledger.apply_runs(flow, [run("a", "success")], WINDOW)
    ledger.apply_runs(flow, [run("a", "inProgress")], WINDOW)
    ledger.apply_runs(flow, [run("a", "failed")], WINDOW)
    assert flow.totals.runs == {"success": 1, "failed": 0}


def test_runs_older_than_the_window_are_forgotten_and_others_kept():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [run("old", created=NOW - 5000), run("new", created=NOW - 100)], WINDOW)
    # Next poll: the window has moved past "old"; "new" was not returned this time (not yet consistent).
    ledger.apply_runs(flow, [], NOW - 4000)
    assert set(flow.seen) == {"new"}
    # "new" comes back: it was remembered, so it is not counted.
    assert ledger.apply_runs(flow, [run("new", created=NOW - 100)], NOW - 4000) == 0


def test_an_empty_batched_poll_still_forgets_what_left_the_window():
    """The batched strategy's polls mostly bring a flow nothing (complete=False, no runs): such a
    poll is cut short, but not when one of the flow's runs has left the window meanwhile."""
    ledger, flow = fresh()
    ledger.apply_runs(flow, [run("old", created=NOW - 5000), run("flying", "inProgress", created=NOW - 4500)], WINDOW)
    ledger.apply_runs(flow, [run("new", created=NOW - 100)], WINDOW, complete=False)
    version = flow.version
    ledger.apply_runs(flow, [], NOW - 4000, complete=False)  # the window has moved past two of them
    assert set(flow.seen) == {"new"}
    assert flow.horizon == NOW - 4500
    assert flow.in_flight == 0
    assert flow.version > version  # the in-flight gauge changed: the flow is rendered again
    # The lookback grows again: Adobe lists the old run once more; it is not counted a second time.
    assert ledger.apply_runs(flow, [run("old", created=NOW - 5000)], WINDOW, complete=False) == 0


def test_an_empty_batched_poll_brings_a_flow_up_and_moves_its_listing_mark():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [run("a", created=NOW - 100)], WINDOW)
    ledger.mark_down(flow)
    version = flow.version
    ledger.apply_runs(flow, [], WINDOW, complete=False, listed_until=NOW)
    assert flow.up and flow.version > version and flow.listed_until == NOW
    version = flow.version
    ledger.apply_runs(flow, [], WINDOW + 60, complete=False, listed_until=NOW + 60)
    assert flow.version == version and flow.listed_until == NOW + 60  # nothing else changed


def test_last_run_last_completed_and_last_success():
    ledger, flow = fresh()
    older_ok = run("a", "success", created=NOW - 300, duration=10)
    newer_failed = run("b", "failed", created=NOW - 200, duration=5)
    newest_running = run("c", "inProgress", created=NOW - 100)
    ledger.apply_runs(flow, [newest_running, older_ok, newer_failed], WINDOW)
    assert flow.last_run.run_id == "c" and flow.last_run.status == "inProgress"
    assert flow.last_completed.run_id == "b"
    assert flow.last_success == older_ok.ended
    assert flow.statuses == {"success", "failed", "inProgress"}
    # Once the window has passed them all, the last values stay (they are still the last known).
    ledger.apply_runs(flow, [], NOW + 10 * 86400)
    assert flow.last_run.run_id == "c" and flow.last_completed.run_id == "b"
    assert flow.last_success == older_ok.ended and flow.in_flight == 0


def test_histogram_buckets():
    ledger, flow = fresh()
    ledger.apply_runs(flow, [], WINDOW)
    ledger.apply_runs(
        flow,
        [run("a", duration=5), run("b", duration=10), run("c", duration=100_000), replace(run("d"), duration=None)],
        WINDOW,
    )
    t = flow.totals
    assert t.duration_buckets[0] == 2  # 5 s and 10 s are both <= 10
    assert t.duration_buckets[-1] == 1  # above the last bound: only in +Inf
    assert t.duration_count == 3  # a run without a duration is counted as a run, not observed
    assert t.runs["success"] == 4


def test_sums_never_reported_are_not_exported():
    from exporter.exposition.collectors.flows import FlowCollector

    ledger, flow = fresh()
    ledger.apply_runs(flow, [run("a", records=None)], WINDOW)  # the baseline run reports no records
    ledger.apply_runs(flow, [run("a", records=None), run("b", records=None)], WINDOW)
    names = {s.name for f in FlowCollector(ledger).collect() for s in f.samples}
    assert "aep_flow_runs_total" in names and "aep_flow_input_records_total" not in names
    ledger.apply_runs(flow, [run("c", records=7)], WINDOW)
    samples = {s.name: s.value for f in FlowCollector(ledger).collect() for s in f.samples}
    assert samples["aep_flow_input_records_total"] == 7 and "aep_flow_input_bytes_total" not in samples
