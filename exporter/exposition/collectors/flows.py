"""The flow collectors registered as one: the ledger in, metric families out, in
prometheus_client's custom-collector style, one module a concern (as prometheus-pve-exporter's
`collector/` package):

- exporter.py: the exporter's view of each flow and sandbox (up, strategy, discovery);
- info.py: each flow's metadata and runs in flight;
- latest.py: the latest run and the latest completed run;
- totals.py: counters over completed runs;
- links.py: each flow's page in Adobe's UI, when a tenant is configured.

During the render step (render.py sets `chunking()`), the per-flow families come out of the
FlowFamilies cache (families.py) as bytes, rebuilt for the flows that changed; any other reader of
the registry (--once) gets ordinary families. Nothing here calls Adobe: each collect() reads the
ledger as the poller last left it, so a flow that leaves the config or disappears leaves /metrics
with it. Values the API did not report are left out, never exported as 0.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.config import MetricsConfig
from exporter.exposition.collectors.common import PerFlowCollector
from exporter.exposition.collectors.exporter import ExporterCollector
from exporter.exposition.collectors.info import FlowInfoCollector
from exporter.exposition.collectors.latest import LastCompletedCollector, LatestRunCollector
from exporter.exposition.collectors.links import AdobeLinkCollector
from exporter.exposition.collectors.totals import TotalsCollector
from exporter.exposition.families import FlowFamilies, is_chunking
from exporter.exposition.flow_page import Links
from exporter.ledger.ledger import Ledger

__all__ = ["ExporterCollector", "FlowCollector", "FlowInfoCollector", "LastCompletedCollector", "TotalsCollector"]


class FlowCollector(Collector):
    """Every collector above, registered as one (so a reload changes the options in one place)."""

    def __init__(self, ledger: Ledger, options: MetricsConfig = MetricsConfig(), links: Links = Links()) -> None:
        self.ledger = ledger
        self._links = AdobeLinkCollector(ledger, links)
        self._exporter = ExporterCollector(ledger)
        self._latest = LastCompletedCollector(ledger, options)
        self._totals = TotalsCollector(ledger, options)
        self._parts: tuple[PerFlowCollector, ...] = (
            self._exporter,
            FlowInfoCollector(ledger),
            LatestRunCollector(ledger),
            self._latest,
            self._totals,
            self._links,
        )
        self.families = FlowFamilies()  # each flow's lines, kept between renderings

    @property
    def options(self) -> MetricsConfig:
        return self._totals.options

    @options.setter
    def options(self, options: MetricsConfig) -> None:
        """Which opt-in families to export; replaced on a config reload."""
        self._latest.options = self._totals.options = options

    @property
    def links(self) -> Links:
        return self._links.links

    @links.setter
    def links(self, links: Links) -> None:
        """Links into Adobe's UI; replaced on a config reload."""
        self._links.links = links

    def describe(self) -> list[Metric]:
        return []  # dynamic: nothing to check at registration, and no poll-time collect() there

    def collect(self) -> Iterator[Metric]:
        if is_chunking():  # the exposition's render step (render.py): changed flows only
            yield from self._chunked()
            return
        for part in self._parts:
            yield from part.collect()

    def _chunked(self) -> Iterator[Metric]:
        """The same families in the same order as collect(), the per-flow ones as Chunked bytes."""
        up, *rest = self.families.build(
            [p.collect_flows for p in self._parts],
            self.ledger.flows.values(),
            (self.options, self.links),
        )
        yield from up  # type: ignore[misc]
        yield from self._exporter.collect_sandboxes()
        for families in rest:
            yield from families  # type: ignore[misc]
