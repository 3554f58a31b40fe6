"""The exporter's own view of each flow and sandbox: is it polled, how, and since when.

Yields, for example:

    aep_exporter_flow_up{sandbox="prod",flow_id="…"} 1
    aep_exporter_flows{sandbox="prod"} 12
    aep_exporter_flows_gone{sandbox="prod"} 0
    aep_exporter_error_codes_capped_total{sandbox="prod"} 0
    aep_exporter_last_poll_success_timestamp_seconds{sandbox="prod"} 1.7e9
    aep_exporter_poll_duration_seconds{sandbox="prod"} 0.4
    aep_exporter_discovery_last_success_timestamp_seconds{sandbox="prod"} 1.7e9
    aep_exporter_fetch_strategy{sandbox="prod",strategy="batched"} 1
    aep_exporter_batch_fallbacks_total{sandbox="prod"} 0
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.exposition.collectors.common import FLOW, PerFlowCollector
from exporter.ledger.records import FlowState

SANDBOX = ["sandbox"]


class ExporterCollector(PerFlowCollector):
    def collect(self) -> Iterator[Metric]:
        yield from self.collect_flows(self.ledger.flows.values())
        yield from self.collect_sandboxes()

    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        """The families with one series per flow (the exposition renders changed flows alone)."""
        up = GaugeMetricFamily("aep_exporter_flow_up", "1 if the last poll of the flow succeeded, else 0.", labels=FLOW)
        for f in flows:
            if not f.gone:
                up.add_metric([f.sandbox, f.flow_id], 1 if f.up else 0)
        yield up

    def collect_sandboxes(self) -> Iterator[Metric]:
        """The families with one series per sandbox: cheap, rendered whole every time."""
        yield from self._counts()
        yield from self._sandboxes()

    def _counts(self) -> Iterator[Metric]:
        watched = GaugeMetricFamily("aep_exporter_flows", "Flows watched, by sandbox.", labels=SANDBOX)
        gone = GaugeMetricFamily(
            "aep_exporter_flows_gone",
            "Watched flows the Flow Service answers 404 for (deleted, or hidden by access labels).",
            labels=SANDBOX,
        )
        capped = CounterMetricFamily(
            "aep_exporter_error_codes_capped",
            'Error codes of counted runs exported as code="other" because their flow already had '
            "max_error_codes_per_flow distinct codes.",
            labels=SANDBOX,
        )
        counts = {name: [0, 0, s.codes_capped_retired] for name, s in self.ledger.sandboxes.items()}
        for f in self.ledger.flows.values():
            c = counts.setdefault(f.sandbox, [0, 0, 0])
            c[1 if f.gone else 0] += 1
            c[2] += self.ledger.served_codes_capped(f)
        for sandbox, (present, missing, n_capped) in sorted(counts.items()):
            watched.add_metric([sandbox], present + missing)
            gone.add_metric([sandbox], missing)
            capped.add_metric([sandbox], n_capped)
        yield from (watched, gone, capped)

    def _sandboxes(self) -> Iterator[Metric]:
        last_ok = GaugeMetricFamily(
            "aep_exporter_last_poll_success_timestamp_seconds",
            "End of the latest poll cycle in which every flow of the sandbox was polled without error.",
            labels=SANDBOX,
        )
        duration = GaugeMetricFamily(
            "aep_exporter_poll_duration_seconds", "Duration of the last poll cycle of the sandbox.", labels=SANDBOX
        )
        discovered = GaugeMetricFamily(
            "aep_exporter_discovery_last_success_timestamp_seconds",
            "When the sandbox's flows were last listed successfully by discovery.",
            labels=SANDBOX,
        )
        strategy = GaugeMetricFamily(
            "aep_exporter_fetch_strategy",
            "1 for the fetch strategy the sandbox is polled with (batched, or per_flow).",
            labels=["sandbox", "strategy"],
        )
        fallbacks = CounterMetricFamily(
            "aep_exporter_batch_fallbacks",
            "Times Adobe refused a batched query (HTTP 400) and the sandbox fell back to per-flow polling.",
            labels=SANDBOX,
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
        yield from (last_ok, duration, discovered, strategy, fallbacks)
