"""Each flow's run history: bounded, newest kept, every completed run once, and kept across a
restart by the state file (files without a history still load)."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import uuid
from dataclasses import replace

from exporter.ledger import packed
from exporter.ledger.codec import encode, restore_flow
from exporter.ledger.history import EMPTY, MERGE_AT, MERGE_MAX, PastRun, RunHistory, of, pack, unpack, with_runs
from exporter.ledger.ledger import Ledger
from exporter.ledger.packed import offsets
from exporter.ledger.records import FlowState
from tests.unit.test_ledger import NOW, WINDOW, run


def _ids(flow) -> list[str]:
    return [r.run_id for r in unpack(flow.history)]


def test_history_keeps_the_newest_runs_up_to_the_configured_bound():
    ledger = Ledger(runs_per_flow=3)
    flow = ledger.flow("prod", "f1")
    ledger.apply_runs(flow, [run("a", created=NOW - 900), run("b", created=NOW - 800)], WINDOW)
    assert _ids(flow) == ["a", "b"]  # the baseline's completed runs are history too
    runs = [run(x, created=NOW - 700 + i * 10) for i, x in enumerate("cdef")]
    ledger.apply_runs(flow, runs, WINDOW, complete=False)
    assert _ids(flow) == ["d", "e", "f"]
    ledger.apply_runs(flow, runs, WINDOW, complete=False)  # seen again: not added twice
    assert _ids(flow) == ["d", "e", "f"]


def test_a_run_enters_history_when_it_completes_not_while_in_flight():
    ledger = Ledger()
    flow = ledger.flow("prod", "f1")
    ledger.apply_runs(flow, [run("a", "inProgress")], WINDOW)
    assert _ids(flow) == []
    before = flow.version
    ledger.apply_runs(flow, [run("a", "failed", records=5)], WINDOW)
    [past] = unpack(flow.history)
    assert (past.status, past.input_records, past.output_records, past.failed_records) == ("failed", 5, 5, 0)
    assert past.duration == 42.0 and flow.version > before


def test_history_of_zero_keeps_nothing():
    ledger = Ledger(runs_per_flow=0)
    flow = ledger.flow("prod", "f1")
    ledger.apply_runs(flow, [run("a")], WINDOW)
    assert flow.history == EMPTY and not flow.history


def test_messages_are_truncated_and_survive_the_state_file():
    ledger = Ledger()
    flow = ledger.flow("prod", "f1")
    long = "<b>bad</b> " + "x" * 1000
    failed = replace(
        run("a", "failed", codes=("CONNECTOR-1001-500",)), error_messages=(("CONNECTOR-1001-500", long[:300]),)
    )
    ledger.apply_runs(flow, [failed, run("9531985d-1b2c-4d5e-8f90-123456789abc")], WINDOW)
    back = restore_flow(json.loads(encode(flow)))
    assert unpack(back.history) == unpack(flow.history)
    assert unpack(back.history)[0].errors == (("CONNECTOR-1001-500", long[:300]),)


def test_a_state_entry_without_history_loads_with_an_empty_one():
    ledger = Ledger()
    flow = ledger.flow("prod", "f1")
    ledger.apply_runs(flow, [run("a")], WINDOW)
    doc = json.loads(encode(flow))
    del doc["packed_history"]
    assert restore_flow(doc).history == EMPTY


def _lists_doc(r: PastRun) -> list:
    """A run as the state files of the versions before the packed history kept it."""
    return [r.run_id, r.created, r.started, r.ended, r.status, *_numbers(r), [list(e) for e in r.errors]]


def _numbers(r: PastRun) -> list:
    return [r.input_records, r.output_records, r.failed_records, r.input_bytes]


def test_a_state_entry_of_the_version_before_loads_its_history():
    ledger = Ledger()
    flow = ledger.flow("prod", "f1")
    failed = replace(run("b", "failed", codes=("X-1",)), error_messages=(("X-1", "it broke"),))
    ledger.apply_runs(flow, [run("a", created=NOW - 900), failed], WINDOW)
    doc = json.loads(encode(flow))
    del doc["packed_history"]
    doc["history"] = [_lists_doc(r) for r in unpack(flow.history)]
    assert unpack(restore_flow(doc).history) == unpack(flow.history)


_WRITER = """
import json, sys
from exporter.ledger.codec import encode
from exporter.ledger.history import PastRun, of
from exporter.ledger.records import FlowState
f = FlowState("prod", "f1")
# Statuses Adobe named after the documented ones, and errors' texts, in an order only this
# process saw. The last without a creation time: the wide form, whose status byte sits elsewhere.
f.history = of(
    PastRun(f"r{i}", None if i == 3 else 1.7e9 + i, None, 1.8e9, s, 1, 1, 0, None, ((f"E-{s}", f"<b>{s}</b>"),))
    for i, s in enumerate(["zetaStatus", "success", "alphaStatus", "betaStatus"])
)
sys.stdout.write(encode(f))
"""


def test_statuses_and_error_texts_keep_their_names_across_processes():
    """The packed records hold indices into tables each process grows as statuses and errors'
    texts appear: the file carries the names and texts, so another process (here, this one,
    having met others first) reads the same runs."""
    restore_flow(json.loads(encode(_flow_with_status("alphaStatus"))))  # this process: alpha first
    other = PastRun("x", NOW, None, None, "success", 1, 1, 0, None, (("E-betaStatus", "<b>betaStatus</b>"),))
    of([replace(other, errors=(("E-other", "other"),)), other])
    out = subprocess.run([sys.executable, "-c", _WRITER], capture_output=True, text=True, check=True).stdout
    back = unpack(restore_flow(json.loads(out)).history)
    assert [r.status for r in back] == ["zetaStatus", "success", "alphaStatus", "betaStatus"]
    assert [r.errors for r in back] == [((f"E-{s}", f"<b>{s}</b>"),) for s in [r.status for r in back]]


# Written by the version before (packed.py at 1e59c2a, forms 0 and 1: created and input bytes in
# 64 bits, every text inline): a failed narrow run, a wide one, one whose ID is not a UUID.
_OLD_STATUSES = ["success", "failed", "cancelled", "partialSuccess", "partialFailure", "completed", "unknown"]
_OLD_RUNS = (
    "AJUxmF0bLE1ej5ASNFZ4mrwAaOXPiwEAAIgTAADc/wAAZAAAAFoAAAAKAAAAIE4AAAAAAAABACEAQ09OTkVDVE9SLTEwMDEtNTAwH3RpbWVkIG91"
    "dCA8Yj4eAQ8eLTxLWkl4hpWks8LR4PkAAAAAAAAAgKAj88+LAQAAAA70z4sBAAAAAAAAAAEAAAUAAAAAAAAAAAAAAAAAAIAAAAAAAAAAgAMAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAEDfANCLAQAAAAAAgAAAAID///////////////8AAAAAAAAAgAcKAABub3QtYS11dWlk"
)


def test_a_history_packed_by_the_version_before_still_reads():
    doc = json.loads(encode(_flow_with_status("success")))
    doc["packed_history"] = {"statuses": [*_OLD_STATUSES, "someNewStatus"], "runs": _OLD_RUNS}  # no "texts"
    back = unpack(restore_flow(doc).history)
    assert back == [
        PastRun(
            "9531985d-1b2c-4d5e-8f90-123456789abc",
            1.7e9,
            1.7e9 + 5,
            1.7e9 + 65.5,
            "failed",
            100,
            90,
            10,
            20000,
            (("CONNECTOR-1001-500", "timed out <b>"),),
        ),
        PastRun(
            "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
            None,
            1.7e9 + 900,
            1.7e9 + 960,
            "partialSuccess",
            2**40,
            5,
            None,
            None,
            (),
        ),
        PastRun("not-a-uuid", 1.7e9 + 1800, None, None, "someNewStatus", None, None, None, None, ()),
    ]


def test_an_error_text_repeated_run_after_run_is_kept_once(monkeypatch):
    """A flow that fails fails alike: from the second time a text is met its runs point to one
    copy of it, and the state file carries the texts a history uses. A text met once (Adobe's
    messages may name the run's numbers) stays inline; once the table is full, texts go inline,
    and a file's texts this process has no room for are read all the same."""
    errors = (("CONNECTOR-1001-500", "The source connection failed: timed out " * 5),)
    runs = [PastRun(str(uuid.uuid4()), NOW + i, None, None, "failed", 1, 0, 1, None, errors) for i in range(50)]
    of([replace(runs[0], errors=(("E-0", "a text another flow shares"),))] * 2)
    shared = of(runs)
    assert len(shared.base) < 50 * 60 + 250 and unpack(shared) == runs
    doc = json.loads(encode(FlowState("prod", "f9", history=shared)))
    assert len(doc["packed_history"]["texts"]) == 1
    doc["packed_history"]["texts"] = [t.replace("timed out", "refused") for t in doc["packed_history"]["texts"]]
    unique = [
        replace(r, errors=(("CONNECTOR-2001-400", f"Encountered {i} errors in the data."),)) for i, r in enumerate(runs)
    ]
    assert json.loads(encode(FlowState("prod", "f8", history=of(unique))))["packed_history"]["texts"] == []
    monkeypatch.setattr(packed, "TEXTS_MAX", 0)  # full: nothing more is added
    unseen = [replace(r, errors=((errors[0][0], "never seen " * 20),)) for r in runs]
    inline = of(unseen)
    assert len(inline.base) > 50 * 200 and unpack(inline) == unseen
    back = unpack(restore_flow(doc).history)
    assert back[0] == runs[0]  # the text's first run: inline
    assert [r.errors[0][1] for r in back[1:]] == [errors[0][1].replace("timed out", "refused")] * 49


def _flow_with_status(status: str):
    ledger = Ledger()
    flow = ledger.flow("prod", "f0")
    ledger.apply_runs(flow, [run("a", status)], WINDOW)
    return flow


def test_a_damaged_history_is_dropped_and_the_counts_still_load():
    ledger = Ledger()
    flow = ledger.flow("prod", "f1")
    ledger.apply_runs(flow, [run("a", created=NOW - 900), run("b", created=NOW - 800)], WINDOW)
    doc = json.loads(encode(flow))
    good = base64.b64decode(doc["packed_history"]["runs"])
    head = len(pack([PastRun(str(uuid.uuid4()), NOW, None, None, "success", 1, 1, 0, None, ())]))  # the narrow form's
    form, text_length = b"\x07" + good[1:], good[: head - 2] + b"\xff\x7f" + good[head:]  # an inline text past the end
    for damaged in (good[:-3], form, text_length):
        doc["packed_history"]["runs"] = base64.b64encode(damaged).decode()
        back = restore_flow(doc)
        assert back.history == EMPTY and back.totals == flow.totals
    doc["packed_history"]["runs"] = "not base64!"
    assert restore_flow(doc).history == EMPTY


def test_the_newest_runs_alone_can_be_read():
    ledger = Ledger()
    flow = ledger.flow("prod", "f1")
    ledger.apply_runs(flow, [run(x, created=NOW - 900 + i) for i, x in enumerate("abcd")], WINDOW)
    assert [r.run_id for r in unpack(flow.history, 2)] == ["c", "d"]
    assert unpack(flow.history, 0) == [] and len(unpack(flow.history, 9)) == len(unpack(flow.history, 5)) == 4


def test_numbers_that_do_not_fit_the_narrow_form_keep_their_values():
    base = PastRun("9531985d-1b2c-4d5e-8f90-123456789abc", NOW, NOW + 0.5, NOW + 60.25, "success", 7, 7, 0, 10, ())
    odd = [
        base,
        replace(base, created=None),  # a destination run: no createdAt
        replace(base, input_records=2**40, input_bytes=None),
        replace(base, ended=NOW + 40 * 86400),  # beyond 32 bits of ms
        replace(base, started=None, failed_records=None, run_id="not-a-uuid", status="someNewStatus"),
    ]
    assert unpack(of(odd)) == odd
    assert len(pack([base])) < 60 < len(pack([odd[2]]))  # the narrow form, and the wide one


def _reference(runs: list[PastRun], new: list[PastRun], limit: int) -> list[PastRun]:
    """What with_runs means: decode, add the runs not kept yet, sort by time, keep the newest."""
    known = {r.run_id for r in runs}
    runs = runs + [r for r in new if r.run_id not in known]
    runs.sort(key=lambda r: r.when)
    return runs[-limit:] if limit > 0 else []


def _stored(h: RunHistory) -> int:
    return len(offsets(h.base)) + len(offsets(h.recent))


def test_adding_runs_is_the_same_whichever_way_it_is_done():
    """with_runs appends newer runs without decoding the history (after the runs kept, hiding the
    oldest, merging now and then); every case it cannot be sure of (an older run, one already
    kept, an ID that is not a UUID, more runs than the bound) takes the decoding way: the runs
    are the same either way, and fewer than MERGE_MAX past the bound are stored."""
    rng = random.Random(25)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(400)] + ["odd-1", "odd-2"]
    errors = [(), (), (("E-1", "one"),), (("E-1", "one"), ("E-2", "two <b>"))]
    for _ in range(300):
        limit = rng.choice([1, 3, 5, 50])
        history, expected, t = EMPTY, [], NOW
        for _ in range(rng.randint(1, 40)):
            t += 60 * rng.randint(0, 30)
            new = [
                PastRun(
                    rng.choice(ids),
                    t + rng.randint(-50, 40) * 60.0,
                    None,
                    None,
                    "success",
                    1,
                    1,
                    0,
                    None,
                    rng.choice(errors),
                )
                for _ in range(rng.randint(1, 4))
            ]
            expected = _reference(expected, new, limit)
            history = with_runs(history, new, limit)
            assert unpack(history) == expected
            assert _stored(history) < limit + MERGE_MAX


def test_a_newer_run_keeps_the_packed_runs_before_it():
    """The last render step's views hold the history they were taken from: a run added copies
    only the runs since the last merge, so the two histories share their base (not twice the
    bytes for every flow that changed, as after a restart's baseline cycle)."""
    runs = [PastRun(str(uuid.uuid4()), NOW + i * 900, None, None, "success", 1, 1, 0, None, ()) for i in range(50)]
    full = of(runs)
    later = with_runs(full, [replace(runs[0], run_id=str(uuid.uuid4()), created=NOW + 50 * 900)], 50)
    assert later.base is full.base and len(later.recent) < 100
    assert [r.run_id for r in unpack(later)] == [r.run_id for r in runs[1:]] + [unpack(later)[-1].run_id]


def test_flows_on_one_schedule_do_not_all_merge_in_the_same_cycle():
    """After a restart every flow's history is one base; flows on the same schedule then gain a run
    each cycle together. Had they all merged at the same count, that cycle would hold every merged
    history twice (the last render step's views keep the old base): each base has its own merge
    point, so the merges spread over the cycles that follow."""
    rng = random.Random(3)

    def run_at(t: float) -> PastRun:
        return PastRun(str(uuid.UUID(int=rng.getrandbits(128), version=4)), t, None, None, "success", 1, 1, 0, None, ())

    for full in (50, 0):  # restored with full histories; started without a state file
        flows = [of([run_at(NOW + i * 900) for i in range(full)]) for _ in range(200)]
        merged_per_cycle = []
        for cycle in range(1, 3 * MERGE_AT):
            later = [with_runs(h, [run_at(NOW + (49 + cycle) * 900)], 50) for h in flows]
            merged_per_cycle.append(sum(new.base is not old.base for old, new in zip(flows, later, strict=True)))
            flows = later
        assert sum(merged_per_cycle) >= len(flows)  # each merged at least once
        assert max(merged_per_cycle) <= len(flows) // 4, (full, merged_per_cycle)


def test_flows_restored_from_the_state_file_share_their_names():
    """Each flow's entry is parsed alone: the names in its counts, statuses and codes are made one
    object for all flows, not one copy a flow (10,000 flows held 10 MB of such copies)."""
    ledger = Ledger()
    for flow_id in ("f1", "f2"):
        flow = ledger.flow("prod", flow_id)
        ledger.apply_runs(flow, [run("a" + flow_id, "failed", codes=("CONNECTOR-1001-500",))], WINDOW)
        ledger.apply_runs(flow, [run("b" + flow_id, "failed", codes=("CONNECTOR-1001-500",))], WINDOW, complete=False)
    one, two = (restore_flow(json.loads(encode(ledger.flow("prod", f)))) for f in ("f1", "f2"))
    assert one.totals.runs == two.totals.runs and one.totals.runs["failed"] == 1
    assert next(iter(one.totals.runs)) is next(iter(two.totals.runs))
    assert next(iter(one.codes)) is next(iter(two.codes)) and one.sandbox is two.sandbox
