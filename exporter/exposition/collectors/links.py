"""Each flow's page in Adobe's UI, for alerts and dashboards to link to.

Yields, with `experience_tenant` configured (and no series without it):

    aep_flow_adobe_link_info{sandbox="prod",flow_id="…",url="https://experience.adobe.com/#/@acme/…/activity"} 1

An alert's annotation or a dashboard's data link reads `url` from here (deploy/prometheus/alerts.yml,
deploy/grafana/dashboard.py), so the tenant and the URL template are configured in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import Metric

from exporter.exposition.collectors.common import PerFlowCollector, gauge
from exporter.exposition.flow_page import Links
from exporter.ledger.ledger import Ledger
from exporter.ledger.records import FlowState


class AdobeLinkCollector(PerFlowCollector):
    def __init__(self, ledger: Ledger, links: Links = Links()) -> None:
        super().__init__(ledger)
        self.links = links  # replaced on a config reload

    def collect_flows(self, flows: Iterable[FlowState]) -> Iterator[Metric]:
        family = gauge(
            "aep_flow_adobe_link_info",
            "The flow's activity page in Adobe's UI (experience_tenant, experience_flow_url); value 1.",
            ("url",),
        )
        if self.links.tenant:
            for f in flows:
                url = self.links.flow(f.sandbox, f.flow_id) if f.visible else None
                if url:
                    family.add_metric([f.sandbox, f.flow_id, url], 1)
        yield family
