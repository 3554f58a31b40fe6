"""Ledger → metric families, in prometheus_client's custom-collector style.

Nothing here calls Adobe or keeps state: each collect() reads the ledger as the poller last left
it, so a flow that leaves the config or disappears leaves /metrics with it. Values the API did not
report are left out, never exported as 0. The data is polled in the background, every
poll_interval; HELP texts say so where it matters.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.config import MetricsConfig
from exporter.ledger import COUNTED_FIELDS, DURATION_BUCKETS, FlowState, Ledger
from exporter.translate import BASE_STATUSES

FLOW = ["sandbox", "flow_id"]

# (field of RunFacts / Totals.sums, metric name stem, unit word used in HELP)
_LAST_VALUES = (
    ("input_records", "aep_flow_last_completed_run_input_records", "Records read from the source"),
    ("output_records", "aep_flow_last_completed_run_output_records", "Records written to Platform"),
    ("failed_records", "aep_flow_last_completed_run_failed_records", "Records that failed"),
    ("input_bytes", "aep_flow_last_completed_run_input_bytes", "Bytes read from the source"),
    ("output_bytes", "aep_flow_last_completed_run_output_bytes", "Bytes written to Platform"),
    ("input_files", "aep_flow_last_completed_run_input_files", "Files read from the source"),
    ("output_files", "aep_flow_last_completed_run_output_files", "Files written to Platform"),
)
_TOTALS = {
    "input_records": ("aep_flow_input_records", "Records read from the source"),
    "output_records": ("aep_flow_output_records", "Records written to Platform"),
    "failed_records": ("aep_flow_failed_records", "Records that failed"),
    "input_bytes": ("aep_flow_input_bytes", "Bytes read from the source"),
    "output_bytes": ("aep_flow_output_bytes", "Bytes written to Platform"),
    "input_files": ("aep_flow_input_files", "Files read from the source"),
    "output_files": ("aep_flow_output_files", "Files written to Platform"),
}
_ACTIVITY_RECORDS = (
    ("input_records", "aep_flow_last_completed_run_activity_input_records", "Records read"),
    ("output_records", "aep_flow_last_completed_run_activity_output_records", "Records written"),
    ("failed_records", "aep_flow_last_completed_run_activity_failed_records", "Records failed"),
)
_POLLED = " Polled from the Flow Service every poll_interval."


def _gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc + _POLLED, labels=[*FLOW, *extra])


def _counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc + _POLLED, labels=[*FLOW, *extra])


class FlowCollector(Collector):
    def __init__(self, ledger: Ledger, options: MetricsConfig = MetricsConfig()) -> None:
        self.ledger = ledger
        self.options = options  # which opt-in families to export; replaced on a config reload

    def describe(self) -> list[Metric]:
        return []  # dynamic: nothing to check at registration, and no poll-time collect() there

    def collect(self) -> Iterator[Metric]:
        flows = list(self.ledger.flows.values())
        visible = [f for f in flows if f.visible]
        yield from self._exporter_families(flows)
        yield from self._flow_families(visible)
        yield from self._last_completed_families(visible)
        yield from self._total_families(visible)

    # --- the exporter's view of each flow and sandbox ------------------------------------------------

    def _exporter_families(self, flows: list[FlowState]) -> Iterator[Metric]:
        up = GaugeMetricFamily("aep_exporter_flow_up", "1 if the last poll of the flow succeeded, else 0.", labels=FLOW)
        watched = GaugeMetricFamily("aep_exporter_flows", "Flows watched, by sandbox.", labels=["sandbox"])
        gone = GaugeMetricFamily(
            "aep_exporter_flows_gone",
            "Watched flows the Flow Service answers 404 for (deleted, or hidden by access labels).",
            labels=["sandbox"],
        )
        counts: dict[str, list[int]] = {name: [0, 0] for name in self.ledger.sandboxes}
        for f in flows:
            counts.setdefault(f.sandbox, [0, 0])[1 if f.gone else 0] += 1
            if not f.gone:
                up.add_metric([f.sandbox, f.flow_id], 1 if f.up else 0)
        for sandbox, (present, missing) in sorted(counts.items()):
            watched.add_metric([sandbox], present + missing)
            gone.add_metric([sandbox], missing)
        capped = CounterMetricFamily(
            "aep_exporter_error_codes_capped",
            'Error codes of counted runs exported as code="other" because their flow already had '
            "max_error_codes_per_flow distinct codes.",
            labels=["sandbox"],
        )
        capped_by_sandbox: dict[str, int] = dict.fromkeys(counts, 0)
        for f in flows:
            capped_by_sandbox[f.sandbox] = capped_by_sandbox.get(f.sandbox, 0) + f.codes_capped
        for sandbox, n in sorted(capped_by_sandbox.items()):
            capped.add_metric([sandbox], n)
        yield up
        yield watched
        yield gone
        yield capped

        last_ok = GaugeMetricFamily(
            "aep_exporter_last_poll_success_timestamp_seconds",
            "End of the latest poll cycle in which every flow of the sandbox was polled without error.",
            labels=["sandbox"],
        )
        duration = GaugeMetricFamily(
            "aep_exporter_poll_duration_seconds", "Duration of the last poll cycle of the sandbox.", labels=["sandbox"]
        )
        strategy = GaugeMetricFamily(
            "aep_exporter_fetch_strategy",
            "1 for the fetch strategy the sandbox is polled with (batched, or per_flow).",
            labels=["sandbox", "strategy"],
        )
        fallbacks = CounterMetricFamily(
            "aep_exporter_batch_fallbacks",
            "Times Adobe refused a batched query (HTTP 400) and the sandbox fell back to per-flow polling.",
            labels=["sandbox"],
        )
        discovered = GaugeMetricFamily(
            "aep_exporter_discovery_last_success_timestamp_seconds",
            "When the sandbox's flows were last listed successfully by discovery.",
            labels=["sandbox"],
        )
        for name, s in sorted(self.ledger.sandboxes.items()):
            if s.last_success is not None:
                last_ok.add_metric([name], s.last_success)
            if s.poll_duration is not None:
                duration.add_metric([name], s.poll_duration)
            if s.discovery_success is not None:
                discovered.add_metric([name], s.discovery_success)
            if s.strategy is not None:
                strategy.add_metric([name, s.strategy], 1)
            fallbacks.add_metric([name], s.batch_fallbacks)
        yield last_ok
        yield duration
        yield discovered
        yield strategy
        yield fallbacks

    # --- flow metadata and the last run --------------------------------------------------------------

    def _flow_families(self, flows: list[FlowState]) -> Iterator[Metric]:
        info = _gauge(
            "aep_flow_info",
            "Dataflow metadata; value 1. Join on flow_id for flow_name.",
            (
                "flow_name",
                "state",
                "flow_spec_id",
                "source_connection_spec_id",
                "target_connection_spec_id",
                "frequency",
            ),
        )
        enabled = _gauge("aep_flow_enabled", "1 if the dataflow's state is enabled, else 0.")
        status = _gauge(
            "aep_flow_last_run_status",
            "1 for the status of the flow's latest run (by createdAt), 0 for the others.",
            ("status",),
        )
        created = _gauge("aep_flow_last_run_created_timestamp_seconds", "Creation time of the flow's latest run.")
        in_flight = _gauge("aep_flow_runs_in_flight", "Runs of the flow not yet completed, within lookback.")
        oldest = _gauge(
            "aep_flow_oldest_run_in_flight_created_timestamp_seconds",
            "Creation time of the flow's oldest run still in flight (absent when none is).",
        )
        schedule = _gauge(
            "aep_flow_schedule_interval_seconds",
            "Seconds between the flow's scheduled runs (scheduleParams frequency x interval); absent for "
            "one-time flows.",
        )
        last_success = _gauge("aep_flow_last_success_timestamp_seconds", "End of the flow's latest successful run.")
        for f in flows:
            key = [f.sandbox, f.flow_id]
            if f.flow is not None:
                m = f.flow
                info.add_metric(
                    [
                        *key,
                        m.name or "",
                        m.state or "",
                        m.flow_spec_id or "",
                        m.source_connection_spec_id or "",
                        m.target_connection_spec_id or "",
                        m.frequency or "",
                    ],
                    1,
                )
                if m.state is not None:
                    enabled.add_metric(key, 1 if m.state.lower() == "enabled" else 0)
                if m.schedule_seconds is not None:
                    schedule.add_metric(key, m.schedule_seconds)
            in_flight.add_metric(key, f.in_flight)
            if f.oldest_in_flight is not None:
                oldest.add_metric(key, f.oldest_in_flight)
            if f.last_run is not None:
                for s in sorted({*BASE_STATUSES, *f.statuses}):
                    status.add_metric([*key, s], 1 if s == f.last_run.status else 0)
                if f.last_run.created is not None:
                    created.add_metric(key, f.last_run.created)
            if f.last_success is not None:
                last_success.add_metric(key, f.last_success)
        yield from (info, enabled, schedule, status, created, in_flight, oldest, last_success)

    def _last_completed_families(self, flows: list[FlowState]) -> Iterator[Metric]:
        start = _gauge("aep_flow_last_completed_run_start_timestamp_seconds", "Start of the latest completed run.")
        end = _gauge("aep_flow_last_completed_run_end_timestamp_seconds", "End of the latest completed run.")
        duration = _gauge("aep_flow_last_completed_run_duration_seconds", "Duration of the latest completed run.")
        values = {fld: _gauge(name, f"{doc} by the latest completed run.") for fld, name, doc in _LAST_VALUES}
        error = _gauge(
            "aep_flow_last_completed_run_error",
            "1 for each error code the latest completed run reported, at run or activity level.",
            ("code",),
        )
        error_records = _gauge(
            "aep_flow_last_completed_run_error_records",
            "Records the latest completed run reported with each error code.",
            ("code",),
        )
        window_end = _gauge(
            "aep_flow_last_completed_run_window_end_timestamp_seconds",
            "Latest ingestion window end the latest completed run reported.",
        )
        act_duration = _gauge(
            "aep_flow_last_completed_run_activity_duration_seconds",
            "Duration of each activity of the latest completed run.",
            ("activity",),
        )
        act_values = {
            fld: _gauge(name, f"{doc} by each activity of the latest completed run.", ("activity",))
            for fld, name, doc in _ACTIVITY_RECORDS
        }
        for f in flows:
            r = f.last_completed
            if r is None:
                continue
            key = [f.sandbox, f.flow_id]
            for family, value in (
                (start, r.started),
                (end, r.ended),
                (duration, r.duration),
                (window_end, r.window_end),
            ):
                if value is not None:
                    family.add_metric(key, value)
            for fld, family in values.items():
                value = getattr(r, fld)
                if value is not None:
                    family.add_metric(key, value)
            for code in sorted(r.error_codes):
                error.add_metric([*key, code], 1)
            for code, n in r.error_records:
                error_records.add_metric([*key, code], n)
            for a in r.activities if self.options.activities else ():
                if a.duration is not None:
                    act_duration.add_metric([*key, a.name], a.duration)
                for fld, family in act_values.items():
                    value = getattr(a, fld)
                    if value is not None:
                        family.add_metric([*key, a.name], value)
        yield from (start, end, duration, *values.values(), error, error_records, window_end)
        if self.options.activities:
            yield from (act_duration, *act_values.values())

    # --- counters over completed runs ----------------------------------------------------------------

    def _total_families(self, flows: list[FlowState]) -> Iterator[Metric]:
        runs = _counter("aep_flow_runs", "Completed runs, by final status, counted once each.", ("status",))
        sums = {fld: _counter(name, f"{doc}, summed over completed runs.") for fld, (name, doc) in _TOTALS.items()}
        run_errors = _counter(
            "aep_flow_run_errors", "Completed runs that reported the error code (once per run).", ("code",)
        )
        error_records = _counter(
            "aep_flow_error_records", "Records reported with the error code, summed over completed runs.", ("code",)
        )
        hist = HistogramMetricFamily(
            "aep_flow_run_duration_seconds", "Durations of completed runs." + _POLLED, labels=FLOW
        )
        for f in flows:
            t = f.totals
            key = [f.sandbox, f.flow_id]
            for status, n in sorted(t.runs.items()):
                runs.add_metric([*key, status], n)
            for fld in COUNTED_FIELDS:
                if fld in t.reported:
                    sums[fld].add_metric(key, t.sums[fld])
            for code, n in sorted(t.run_errors.items()):
                run_errors.add_metric([*key, code], n)
            for code, n in sorted(t.error_records.items()):
                error_records.add_metric([*key, code], n)
            if self.options.run_duration_histogram:
                cumulative, buckets = 0, []
                for bound, n in zip((*DURATION_BUCKETS, "+Inf"), t.duration_buckets):
                    cumulative += n
                    buckets.append((bound if bound == "+Inf" else floatToGoString(bound), cumulative))
                hist.add_metric(key, buckets, t.duration_sum)
        yield from (runs, *sums.values(), run_errors, error_records)
        if self.options.run_duration_histogram:
            yield hist
