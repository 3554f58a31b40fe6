"""What every flow collector shares: the ledger it reads, the flow labels and the family constructors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.ledger.ledger import Ledger
from exporter.ledger.records import FlowState

FLOW = ["sandbox", "flow_id"]
POLLED = " Polled from the Flow Service every poll_interval."


class PerFlowCollector(Collector):
    """Families with series per flow: collect() covers every flow of the ledger; the render step
    (flows.py) calls collect_flows() with the flows whose lines it renders again."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        return self.collect_flows(self.ledger.flows.values())

    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        raise NotImplementedError


def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
    """A per-flow gauge family; HELP says the value is polled in the background."""
    return GaugeMetricFamily(name, doc + POLLED, labels=[*FLOW, *extra])


def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
    """A per-flow counter family; HELP says the value is polled in the background."""
    return CounterMetricFamily(name, doc + POLLED, labels=[*FLOW, *extra])
