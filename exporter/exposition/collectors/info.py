"""Each flow's metadata and where its runs stand now.

Yields, for example:

    aep_flow_info{sandbox="prod",flow_id="…",flow_name="S3 to Profile",state="enabled",…,
                  source_name="Amazon S3",target_name="Data Lake",dataset_id="5f3c…",
                  dataset_name="Orders"} 1
    aep_flow_enabled{sandbox="prod",flow_id="…"} 1
    aep_flow_schedule_interval_seconds{sandbox="prod",flow_id="…"} 900
    aep_flow_runs_in_flight{sandbox="prod",flow_id="…"} 1
    aep_flow_oldest_run_in_flight_created_timestamp_seconds{sandbox="prod",flow_id="…"} 1.7e9
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import Metric

from exporter.exposition.collectors.common import PerFlowCollector, gauge
from exporter.ledger.records import FlowState

INFO_LABELS = (
    "flow_name",
    "state",
    "flow_spec_id",
    "source_connection_spec_id",
    "target_connection_spec_id",
    "frequency",
    "source_name",  # the connectors' names and the dataset (exporter/fetch/names.py): empty until resolved
    "target_name",
    "dataset_id",
    "dataset_name",  # Catalog Service's name of that dataset; empty until resolved, or once deleted
)


class FlowInfoCollector(PerFlowCollector):
    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        """The families with these flows' series only (the exposition renders changed flows alone)."""
        info = gauge("aep_flow_info", "Dataflow metadata; value 1. Join on flow_id for flow_name.", INFO_LABELS)
        enabled = gauge("aep_flow_enabled", "1 if the dataflow's state is enabled, else 0.")
        schedule = gauge(
            "aep_flow_schedule_interval_seconds",
            "Seconds between the flow's scheduled runs (scheduleParams frequency x interval); absent for "
            "one-time flows.",
        )
        in_flight = gauge("aep_flow_runs_in_flight", "Runs of the flow not yet completed, within lookback.")
        oldest = gauge(
            "aep_flow_oldest_run_in_flight_created_timestamp_seconds",
            "Creation time of the flow's oldest run still in flight (absent when none is).",
        )
        for f in flows:
            if not f.visible:
                continue
            key = [f.sandbox, f.flow_id]
            m = f.flow
            if m is not None:
                values = (m.name, m.state, m.flow_spec_id, m.source_connection_spec_id, m.target_connection_spec_id)
                names = (m.frequency, f.source_name, f.target_name, f.dataset_id, f.dataset_name)
                info.add_metric([*key, *(v or "" for v in (*values, *names))], 1)
                if m.state is not None:
                    enabled.add_metric(key, 1 if m.state.lower() == "enabled" else 0)
                if m.schedule_seconds is not None:
                    schedule.add_metric(key, m.schedule_seconds)
            in_flight.add_metric(key, f.in_flight)
            if f.oldest_in_flight is not None:
                oldest.add_metric(key, f.oldest_in_flight)
        yield from (info, enabled, schedule, in_flight, oldest)
