"""Counters over completed runs, each run counted once (see exporter/ledger/ledger.py).

Yields, for example:

    aep_flow_runs_total{sandbox="prod",flow_id="…",status="success"} 41
    aep_flow_input_records_total{sandbox="prod",flow_id="…"} 4100   (one per RUN_FIELDS row, once reported)
    aep_flow_run_errors_total{sandbox="prod",flow_id="…",code="CONNECTOR-1001-500"} 2
    aep_flow_error_records_total{sandbox="prod",flow_id="…",code="MAPPER-3700-400"} 7
    aep_flow_run_duration_seconds_bucket{sandbox="prod",flow_id="…",le="60.0"} 40   (opt-in)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from exporter.adobe.fields import RUN_FIELDS
from exporter.config import MetricsConfig
from exporter.exposition.collectors.common import FLOW, POLLED, PerFlowCollector, counter
from exporter.ledger.ledger import Ledger
from exporter.ledger.records import DURATION_BUCKETS, FlowState, Totals


class TotalsCollector(PerFlowCollector):
    def __init__(self, ledger: Ledger, options: MetricsConfig) -> None:
        super().__init__(ledger)
        self.options = options

    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        runs = counter("aep_flow_runs", "Completed runs, by final status, counted once each.", ("status",))
        sums = {f.fact: counter(f.total_metric, f"{f.help}, summed over completed runs.") for f in RUN_FIELDS}
        run_errors = counter(
            "aep_flow_run_errors", "Completed runs that reported the error code (once per run).", ("code",)
        )
        error_records = counter(
            "aep_flow_error_records", "Records reported with the error code, summed over completed runs.", ("code",)
        )
        hist = HistogramMetricFamily(
            "aep_flow_run_duration_seconds", "Durations of completed runs." + POLLED, labels=FLOW
        )
        for f in flows:
            if not f.visible:
                continue
            t = self.ledger.served_totals(f)
            key = [f.sandbox, f.flow_id]
            for status, n in sorted(t.runs.items()):
                runs.add_metric([*key, status], n)
            for fact, family in sums.items():
                if fact in t.reported:
                    family.add_metric(key, t.sums.get(fact, 0))
            for code, n in sorted(t.run_errors.items()):
                run_errors.add_metric([*key, code], n)
            for code, n in sorted(t.error_records.items()):
                error_records.add_metric([*key, code], n)
            if self.options.run_duration_histogram:
                hist.add_metric(key, _buckets(t), t.duration_sum)
        yield from (runs, *sums.values(), run_errors, error_records)
        if self.options.run_duration_histogram:
            yield hist


def _buckets(t: Totals) -> list[tuple[str, float]]:
    """Cumulative buckets from the ledger's per-bucket counts."""
    cumulative, buckets = 0, []
    for bound, n in zip((*DURATION_BUCKETS, "+Inf"), t.duration_buckets):
        cumulative += n
        buckets.append((bound if bound == "+Inf" else floatToGoString(bound), float(cumulative)))
    return buckets
