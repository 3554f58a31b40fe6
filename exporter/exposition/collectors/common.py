"""What every flow collector shares: the flow labels and the family constructors."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

FLOW = ["sandbox", "flow_id"]
POLLED = " Polled from the Flow Service every poll_interval."


def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
    """A per-flow gauge family; HELP says the value is polled in the background."""
    return GaugeMetricFamily(name, doc + POLLED, labels=[*FLOW, *extra])


def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
    """A per-flow counter family; HELP says the value is polled in the background."""
    return CounterMetricFamily(name, doc + POLLED, labels=[*FLOW, *extra])
