"""The exposition (and the status page), rendered once per poll cycle and served as bytes.

Rendering 200,000 series costs about a second of CPU; doing it on every scrape (and on the event
loop) is what made /metrics slow. Here it happens once per cycle, in a worker thread, while the
poller is between cycles (so the ledger is not changing underneath), for each format a scrape can
ask for: Prometheus text and OpenMetrics, each plain and gzipped. A scrape then only picks a
buffer: no per-series work.

Content negotiation is prometheus_client's own (`choose_encoder`), fed the Accept header's media
ranges in order of preference (its chooser takes the first one it supports and ignores q-values;
Prometheus says what it prefers with q-values). The content type it names is the one served. Text
0.0.4 and text 1.0.0 bodies are the same bytes here: they differ only in how names outside the
legacy character set are written, and every metric and label name of this exporter is legacy.
The tests compare each body with what the chosen prometheus_client encoder writes.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from exporter.status import StatusSnapshot


@dataclass(frozen=True)
class Rendered:
    text: bytes
    text_gz: bytes
    openmetrics: bytes
    openmetrics_gz: bytes
    seconds: float  # what rendering took
    status: StatusSnapshot | None = None  # the status page's rows, from the same moment


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


def render(registry: CollectorRegistry, status: Callable[[], StatusSnapshot] | None = None) -> Rendered:
    started = time.perf_counter()
    text, om = format_both(registry.collect())
    snapshot = status() if status is not None else None
    return Rendered(text, gzip.compress(text, 3), om, gzip.compress(om, 3), time.perf_counter() - started, snapshot)


def _quality(params: list[str]) -> float:
    for p in params:
        key, _, value = p.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))  # NaN and out-of-range weights land in [0, 1]
            except ValueError:
                return 1.0  # a malformed weight: read as the default, as lenient servers do
    return 1.0


def by_preference(accept: str) -> str:
    """The Accept header's media ranges, most preferred first (a stable sort on q, so equal
    weights keep the client's order), without q=0 ranges (RFC 9110: "not acceptable") and without
    the q parameters."""
    ranges = []
    for i, item in enumerate(accept.split(",")):
        media, *params = item.split(";")
        q = _quality(params)
        if media.strip() and q > 0:
            kept = [p.strip() for p in params if p.strip().partition("=")[0].strip().lower() != "q"]
            ranges.append((-q, i, ";".join([media.strip(), *kept])))
    return ",".join(r for _, _, r in sorted(ranges))


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip (named with a weight above 0)."""
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        if coding.strip().lower() in ("gzip", "x-gzip") and _quality(params) > 0:
            return True
    return False


def negotiate(accept: str) -> tuple[bool, str]:
    """(OpenMetrics?, Content-Type) for a scrape's Accept header, as prometheus_client decides."""
    _, content_type = choose_encoder(by_preference(accept))
    return content_type.startswith("application/openmetrics-text"), content_type


class RenderCache:
    def __init__(self, registry: CollectorRegistry, status: Callable[[], StatusSnapshot] | None = None) -> None:
        self.registry = registry
        self.status = status  # builds the status page's snapshot; called in the same render step
        self.current: Rendered | None = None

    async def refresh(self) -> Rendered:
        """Render in a worker thread; the event loop goes on serving the previous buffers."""
        self.current = await asyncio.to_thread(render, self.registry, self.status)
        return self.current

    def latest(self) -> Rendered:
        if self.current is None:  # only before the first render has finished
            self.current = render(self.registry, self.status)
        return self.current

    def body(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The buffer for a scrape's Accept and Accept-Encoding headers."""
        r = self.latest()
        openmetrics, content_type = negotiate(accept)
        gz = accepts_gzip(accept_encoding)
        body = (r.openmetrics_gz if gz else r.openmetrics) if openmetrics else (r.text_gz if gz else r.text)
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gz:
            headers["Content-Encoding"] = "gzip"
        return body, headers
