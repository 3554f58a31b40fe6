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
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OM_CONTENT_TYPE
from prometheus_client.utils import floatToGoString


@dataclass(frozen=True)
class Rendered:
    text: bytes
    text_gz: bytes
    openmetrics: bytes
    openmetrics_gz: bytes
    seconds: float  # what rendering took


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _samples(metric, labelsets: dict[tuple, str]) -> str:
    """A family's sample lines, exactly as prometheus_client writes them (the two formats write
    samples alike), but faster: each label set is escaped once and shared by every series that has
    it, and the lines are made once for both formats."""
    lines = []
    for s in metric.samples:
        key = tuple(sorted(s.labels.items()))
        labels = labelsets.get(key)
        if labels is None:
            labels = labelsets[key] = ("{" + ",".join(f'{k}="{_escape(v)}"' for k, v in key) + "}") if key else ""
        lines.append(f"{s.name}{labels} {floatToGoString(s.value)}\n")
    return "".join(lines)


def _text_header(m) -> str:
    """HELP and TYPE lines of the Prometheus text format 0.0.4."""
    name, kind = m.name, m.type
    if kind == "counter":
        name += "_total"
    elif kind == "info":
        name, kind = name + "_info", "gauge"
    elif kind == "unknown":
        kind = "untyped"
    doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


def _openmetrics_header(m) -> str:
    """HELP, TYPE (and UNIT) lines of OpenMetrics 1.0."""
    unit = f"# UNIT {m.name} {m.unit}\n" if m.unit else ""
    return f"# HELP {m.name} {_escape(m.documentation)}\n# TYPE {m.name} {m.type}\n{unit}"


def format_both(metrics: Iterable) -> tuple[bytes, bytes]:
    """(Prometheus text, OpenMetrics), byte for byte what prometheus_client's generate_latest
    functions write for these families. Families are consumed one at a time and turned into
    bytes at once, so the peak memory is the output, not every sample object at once."""
    labelsets: dict[tuple, str] = {}
    text: list[bytes] = []
    om: list[bytes] = []
    for m in metrics:
        body = _samples(m, labelsets).encode("utf-8")
        text += (_text_header(m).encode("utf-8"), body)
        om += (_openmetrics_header(m).encode("utf-8"), body)
    om.append(b"# EOF\n")
    return b"".join(text), b"".join(om)


def render(registry: CollectorRegistry) -> Rendered:
    started = time.perf_counter()
    text, om = format_both(registry.collect())
    return Rendered(text, gzip.compress(text, 3), om, gzip.compress(om, 3), time.perf_counter() - started)


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
        headers = {
            "Content-Type": OM_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST,
            "Vary": "Accept, Accept-Encoding",
        }
        if gz:
            headers["Content-Encoding"] = "gzip"
        return body, headers
