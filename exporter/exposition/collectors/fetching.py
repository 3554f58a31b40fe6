"""What fetching learned about Adobe's undocumented details, and how it adapted (exporter/fetch/capabilities.py).

Yields, for example:

    aep_exporter_fetch_fallback{sandbox="prod",reason="lists_refused"} 1
    aep_exporter_filters_ignored_total{sandbox="prod",endpoint="runs",filter="createdAt"} 3
    aep_exporter_batch_chunk_size{sandbox="prod"} 100
    aep_exporter_canary_disagreements_total{sandbox="prod"} 0
    aep_exporter_reconciled_runs_total{sandbox="prod"} 0
    aep_exporter_api_behaviour{sandbox="prod",detail="lists",finding="ok"} 1
    aep_exporter_continuation_token_max_bytes{sandbox="prod"} 4096
    aep_exporter_page_items_max{sandbox="prod"} 20
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.adobe.continuation import ListingStats
from exporter.fetch.capabilities import Capabilities

S = ["sandbox"]


class FetchCollector(Collector):
    def __init__(
        self, capabilities: Mapping[str, Capabilities], listing_stats: Callable[[], Mapping[str, ListingStats]]
    ) -> None:
        self.capabilities = capabilities
        self.listing_stats = listing_stats  # the current client's (a reload may bring a new client)

    def collect(self) -> Iterator[Metric]:
        yield from self._adaptations()
        yield from self._listings()

    def _adaptations(self) -> Iterator[Metric]:
        fallback = GaugeMetricFamily(
            "aep_exporter_fetch_fallback",
            "1 while a sandbox configured for batched fetching is polled flow by flow, with the reason "
            "(lists_refused, lists_misread); batching is tried again after batch_retry_interval.",
            labels=["sandbox", "reason"],
        )
        ignored = CounterMetricFamily(
            "aep_exporter_filters_ignored",
            "Answers from Adobe holding items a filter we sent should have excluded (the filter is then "
            "applied on our side).",
            labels=["sandbox", "endpoint", "filter"],
        )
        chunk = GaugeMetricFamily(
            "aep_exporter_batch_chunk_size",
            "Most IDs one batched request may carry (halved when a request line was too long).",
            labels=S,
        )
        canary = CounterMetricFamily(
            "aep_exporter_canary_disagreements",
            "Cycles in which a flow listed on its own showed runs the batched listing lacked.",
            labels=S,
        )
        reconciled = CounterMetricFamily(
            "aep_exporter_reconciled_runs",
            "Completed runs a reconciliation (the whole lookback window, every reconcile_interval) found "
            "that the regular listings had missed; counted then, once.",
            labels=S,
        )
        behaviour = GaugeMetricFamily(
            "aep_exporter_api_behaviour",
            "1 for what fetching found of an undocumented detail of the Flow Service (lists, createdAt "
            "filter): ok, ignored, refused, literal or unknown.",
            labels=["sandbox", "detail", "finding"],
        )
        for name, c in sorted(self.capabilities.items()):
            if c.fallback is not None:
                fallback.add_metric([name, c.fallback], 1)
            for (endpoint, flt), n in sorted(c.ignored.items()):
                ignored.add_metric([name, endpoint, flt], n)
            chunk.add_metric([name], c.chunk_limit)
            canary.add_metric([name], c.canary_disagreements)
            reconciled.add_metric([name], c.reconciled_runs)
            behaviour.add_metric([name, "lists", c.lists], 1)
            behaviour.add_metric([name, "created_filter", c.created_filter], 1)
        yield from (fallback, ignored, chunk, canary, reconciled, behaviour)

    def _listings(self) -> Iterator[Metric]:
        token = GaugeMetricFamily(
            "aep_exporter_continuation_token_max_bytes",
            "Longest continuation token Adobe has sent (its length is undocumented; request lines are sized by it).",
            labels=S,
        )
        items = GaugeMetricFamily(
            "aep_exporter_page_items_max", "Most items Adobe has put on one page of a listing.", labels=S
        )
        for name, stats in sorted(self.listing_stats().items()):
            token.add_metric([name], stats.longest_token)
            items.add_metric([name], stats.largest_page)
        yield from (token, items)
