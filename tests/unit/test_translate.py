"""Run JSON → numbers, on Adobe's monitoring tutorial's own run and on the drift Adobe's payloads show."""

from __future__ import annotations

import copy

import pytest

from exporter.adobe.models import Flow, Run, count, epoch_seconds
from exporter.adobe.runfacts import canonical_status, error_records, is_completed, run_facts
from exporter.simulator.world import load_seed


@pytest.fixture
def seed_run() -> dict:
    return load_seed()["run"]


def test_seed_run_numbers(seed_run):
    facts = run_facts(Run.from_json(seed_run))
    assert facts.status == "success" and facts.completed
    assert (facts.input_records, facts.output_records, facts.failed_records) == (100, 99, 1)
    assert (facts.input_bytes, facts.output_bytes) == (24012, 17128)
    assert (facts.input_files, facts.output_files) == (1, 1)
    assert facts.duration == pytest.approx(55.108)
    assert facts.started == pytest.approx(1596656058.198)
    assert facts.ended == pytest.approx(1596656113.306)
    assert facts.error_codes == {"CONNECTOR-2001-500", "INGEST-1212-400", "MAPPER-3700-400"}
    assert dict(facts.error_records) == {"MAPPER-3700-400": 1}
    assert facts.window_end == 1596655508
    assert [a.name for a in facts.activities] == ["copyActivity", "promotionActivity"]
    copy_act, promo = facts.activities
    assert copy_act.duration == pytest.approx(31.452)
    assert copy_act.input_records is None  # recordSummary {} is "not reported"
    assert (promo.input_records, promo.output_records, promo.failed_records) == (100, 99, 1)


def test_seed_flow_metadata():
    flow = Flow.from_json(load_seed()["flow"])
    assert flow.name == "Monitoring Dataflow"
    assert flow.state == "enabled"
    assert flow.flow_spec_id == "9753525b-82c7-4dce-8a9b-5ccfce2b9876"
    assert flow.source_connection_spec_id == "ecadc60c-7455-4d87-84dc-2a0e293d997b"
    assert flow.target_connection_spec_id == "c604ff05-7f1a-43c0-8e18-33bf874cb11c"
    assert flow.frequency == "once"


def test_sentinels_and_missing_summaries_are_not_reported(seed_run):
    run = copy.deepcopy(seed_run)
    run["metrics"]["sizeSummary"] = {"inputBytes": -1, "outputBytes": "0"}
    run["metrics"]["fileSummary"] = {"inputFileCount": -1}
    run["metrics"]["recordSummary"] = {}
    del run["metrics"]["durationSummary"]["completedAtUTC"]
    facts = run_facts(Run.from_json(run))
    assert facts.input_bytes is None and facts.output_bytes == 0
    assert facts.input_files is None and facts.output_files is None
    assert facts.input_records is None and facts.failed_records is None
    assert facts.duration is None and facts.ended is None


def test_epochs_in_seconds_or_ms_and_strings():
    assert epoch_seconds(1596656058198) == pytest.approx(1596656058.198)
    assert epoch_seconds(1590512053) == 1590512053
    assert epoch_seconds("1612310466") == 1612310466
    assert epoch_seconds(None) is None and epoch_seconds(-1) is None and epoch_seconds("soon") is None
    assert count("15") == 15 and count(True) is None and count(-1) is None


@pytest.mark.parametrize(
    "raw, canonical, completed",
    [
        ("success", "success", True),
        ("Failed", "failed", True),
        ("IN_PROGRESS", "inProgress", False),
        ("PARTIAL_SUCCESS", "partialSuccess", True),
        ("queued", "queued", False),
        ("Processing", "Processing", False),  # unknown: as sent, and in flight
        (None, "unknown", False),
    ],
)
def test_status(raw, canonical, completed):
    assert canonical_status(raw) == canonical
    assert is_completed(canonical_status(raw)) is completed


def test_new_style_activities_and_error_records_summed_over_activities():
    run = Run.from_json(
        {
            "id": "r1",
            "createdAt": 1700000000000,
            "metrics": {"statusSummary": {"status": "success", "errors": [{"code": "X-1-400", "recordCount": 7}]}},
            "activities": [
                {
                    "id": "4f008a00-3a04-11eb-adc1-0242ac120002",
                    "name": "Copy Activity",
                    "statusSummary": {
                        "errors": [{"code": "A-1-400", "recordCount": 2}],
                        "extensions": {"errors": [{"code": "A-1-400", "recordCount": 2}]},
                    },
                },
                {
                    "id": "37b34f84-1ada-11eb-adc1-0242ac120002",
                    "name": "Promotion Activity",
                    "statusSummary": {"extensions": {"errors": [{"code": "A-1-400", "recordCount": 3}, {"code": 133}]}},
                },
            ],
        }
    )
    assert [a.name for a in run.activities] == ["Copy Activity", "Promotion Activity"]
    # A-1-400: 2 (listed twice in one activity) + 3; X-1-400: no activity reports it, so the run's 7.
    assert error_records(run) == {"A-1-400": 5, "X-1-400": 7}
    assert run_facts(run).error_codes == {"A-1-400", "X-1-400", "133"}


def test_garbage_items_are_tolerated():
    assert Run.from_json("nope") is None
    assert Run.from_json({"createdAt": 1}) is None  # no id
    run = Run.from_json({"id": "r", "metrics": "broken", "activities": {"not": "a list"}})
    assert run is not None and run.summary.status is None and run.activities == ()
    assert run_facts(run).status == "unknown"


def test_docs_metrics_table_is_the_field_table():
    """docs/metrics.md lists the counted fields exactly as exporter/adobe/fields.py declares them
    (`python -m exporter.adobe.fields` prints the rows)."""
    from pathlib import Path

    from exporter.adobe.fields import markdown_rows

    doc = (Path(__file__).parent.parent.parent / "docs" / "metrics.md").read_text().splitlines()
    for rows in markdown_rows().values():
        start = doc.index(rows[0])
        assert doc[start : start + len(rows)] == rows
