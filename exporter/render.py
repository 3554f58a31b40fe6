"""The exposition, rendered once per poll cycle and served as bytes.

Rendering 200,000 series costs about a second of CPU; doing it on every scrape (and on the event
loop) is what made /metrics slow. Here it happens once per cycle, in a worker thread, while the
poller is between cycles (so the ledger is not changing underneath), for each format a scrape can
ask for: Prometheus text and OpenMetrics, each plain and gzipped. A scrape then only picks a
buffer: no per-series work.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OM_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest


@dataclass(frozen=True)
class Rendered:
    text: bytes
    text_gz: bytes
    openmetrics: bytes
    openmetrics_gz: bytes
    seconds: float  # what rendering took


def render(registry: CollectorRegistry) -> Rendered:
    started = time.perf_counter()
    text = generate_latest(registry)
    om = om_generate_latest(registry)
    return Rendered(text, gzip.compress(text, 5), om, gzip.compress(om, 5), time.perf_counter() - started)


class RenderCache:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.current: Rendered | None = None

    async def refresh(self) -> Rendered:
        """Render in a worker thread; the event loop goes on serving the previous buffers."""
        self.current = await asyncio.to_thread(render, self.registry)
        return self.current

    def body(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The buffer for a scrape's Accept and Accept-Encoding headers."""
        if self.current is None:  # only before the first render has finished
            self.current = render(self.registry)
        r = self.current
        openmetrics = "application/openmetrics-text" in accept
        gz = "gzip" in accept_encoding
        body = (r.openmetrics_gz if gz else r.openmetrics) if openmetrics else (r.text_gz if gz else r.text)
        headers = {"Content-Type": OM_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST,
                   "Vary": "Accept, Accept-Encoding"}
        if gz:
            headers["Content-Encoding"] = "gzip"
        return body, headers
