"""The flow's latest run, and its latest completed run with everything that run reported.

Yields, for example:

    aep_flow_last_run_status{sandbox="prod",flow_id="…",status="success"} 1
    aep_flow_last_run_created_timestamp_seconds{sandbox="prod",flow_id="…"} 1.7e9
    aep_flow_last_success_timestamp_seconds{sandbox="prod",flow_id="…"} 1.7e9
    aep_flow_last_completed_run_duration_seconds{sandbox="prod",flow_id="…"} 55.1
    aep_flow_last_completed_run_input_records{sandbox="prod",flow_id="…"} 100   (one per RUN_FIELDS row)
    aep_flow_last_completed_run_error{sandbox="prod",flow_id="…",code="MAPPER-3700-400"} 1
    aep_flow_last_completed_run_activity_input_records{…,activity="Copy Activity"} 100   (opt-in)

A value the run did not report is no series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import Metric

from exporter.adobe.fields import ACTIVITY_FIELDS, RUN_FIELDS
from exporter.adobe.runfacts import BASE_STATUSES
from exporter.config import MetricsConfig
from exporter.exposition.collectors.common import PerFlowCollector, gauge
from exporter.ledger.ledger import Ledger
from exporter.ledger.records import FlowState


class LatestRunCollector(PerFlowCollector):
    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        status = gauge(
            "aep_flow_last_run_status",
            "1 for the status of the flow's latest run (by createdAt), 0 for the others.",
            ("status",),
        )
        created = gauge("aep_flow_last_run_created_timestamp_seconds", "Creation time of the flow's latest run.")
        last_success = gauge("aep_flow_last_success_timestamp_seconds", "End of the flow's latest successful run.")
        for f in flows:
            if not f.visible:
                continue
            key = [f.sandbox, f.flow_id]
            if f.last_run is not None:
                for s in sorted({*BASE_STATUSES, *f.statuses}):
                    status.add_metric([*key, s], 1 if s == f.last_run.status else 0)
                if f.last_run.created is not None:
                    created.add_metric(key, f.last_run.created)
            if f.last_success is not None:
                last_success.add_metric(key, f.last_success)
        yield from (status, created, last_success)


class LastCompletedCollector(PerFlowCollector):
    """The latest completed run's times, counts and error codes; per activity when asked for."""

    def __init__(self, ledger: Ledger, options: MetricsConfig) -> None:
        super().__init__(ledger)
        self.options = options

    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        times = {
            "started": gauge(
                "aep_flow_last_completed_run_start_timestamp_seconds", "Start of the latest completed run."
            ),
            "ended": gauge("aep_flow_last_completed_run_end_timestamp_seconds", "End of the latest completed run."),
            "duration": gauge("aep_flow_last_completed_run_duration_seconds", "Duration of the latest completed run."),
            "window_end": gauge(
                "aep_flow_last_completed_run_window_end_timestamp_seconds",
                "Latest ingestion window end the latest completed run reported.",
            ),
        }
        values = {f.fact: gauge(f.last_metric, f"{f.help} by the latest completed run.") for f in RUN_FIELDS}
        error = gauge(
            "aep_flow_last_completed_run_error",
            "1 for each error code the latest completed run reported, at run or activity level.",
            ("code",),
        )
        error_records = gauge(
            "aep_flow_last_completed_run_error_records",
            "Records the latest completed run reported with each error code.",
            ("code",),
        )
        done = [f for f in flows if f.visible and f.last_completed is not None]
        for f in done:
            r = f.last_completed
            assert r is not None
            key = [f.sandbox, f.flow_id]
            for attr, family in times.items():
                if (value := getattr(r, attr)) is not None:
                    family.add_metric(key, value)
            for fact, n in r.counts.items():
                values[fact].add_metric(key, n)
            for code in sorted(r.error_codes):
                error.add_metric([*key, code], 1)
            for code, n in r.error_records:
                error_records.add_metric([*key, code], n)
        yield from (*times.values(), *values.values(), error, error_records)
        if self.options.activities:
            yield from _activity_families(done)


def _activity_families(flows: list[FlowState]) -> Iterator[Metric]:
    duration = gauge(
        "aep_flow_last_completed_run_activity_duration_seconds",
        "Duration of each activity of the latest completed run.",
        ("activity",),
    )
    values = {
        f.fact: gauge(f.activity_metric, f"{f.help} by each activity of the latest completed run.", ("activity",))
        for f in ACTIVITY_FIELDS
    }
    for f in flows:
        assert f.last_completed is not None
        for a in f.last_completed.activities:
            key = [f.sandbox, f.flow_id, a.name]
            if a.duration is not None:
                duration.add_metric(key, a.duration)
            for fact, n in a.counts.items():
                values[fact].add_metric(key, n)
    yield from (duration, *values.values())
