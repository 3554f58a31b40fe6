"""The exposition (and the status page), rendered once per poll cycle and served as bytes.

Rendering 200,000 series costs about a second of CPU; doing it on every scrape (and on the event
loop) would make /metrics slow. Here it happens once per cycle, in a worker thread, while the
poller is between cycles (so the ledger is not changing underneath), and only for the flows whose
ledger entry changed (families.py keeps the others' lines). Both formats come out of one
pass as lists of byte parts sharing every family's sample lines (they differ only in HELP/TYPE
lines and `# EOF`); a scrape writes the parts as they are, and a gzipped body is made once per
rendering, in a worker thread, by the first scrape that asks for it. No per-series work per scrape.

In: the registry (the self-metrics and the collectors) and the status page's snapshot, read by
RenderCache.refresh() after each cycle. Out: the latest `Rendered`, which server.py serves.

Content negotiation is prometheus_client's own (`choose_encoder`), fed the Accept header's media
ranges in order of preference (its chooser takes the first one it supports and ignores q-values;
Prometheus says what it prefers with q-values). The content type it names is the one served. Text
0.0.4 and text 1.0.0 bodies are the same bytes here: they differ only in how names outside the
legacy character set are written, and every metric and label name of this exporter is legacy.
The tests compare each body with what the chosen prometheus_client encoder writes.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.exposition.exemplars import FAMILIES as EXEMPLARS
from exporter.exposition.exemplars import Exemplified, Latest, exemplified
from exporter.exposition.families import Chunked, FlowFamilies, chunking, escape, sample_line
from exporter.exposition.status_page import StatusSnapshot
from exporter.support import tuning

# A piece of a body as served: the flow families' bodies are bytearrays (families.py writes them
# in place), never changed once a rendering holds them; an OpenMetrics body with exemplars is the
# shared body and its exemplars (exemplars.py), written in pieces.
Part = bytes | bytearray | Exemplified


def pieces(parts: Iterable[Part], size: int) -> Iterator[bytes | bytearray | memoryview]:
    """The parts' bytes in order, an Exemplified one about `size` bytes at a time."""
    for p in parts:
        if isinstance(p, Exemplified):
            yield from p.chunks(size)
        else:
            yield p


class Rendered:
    """One rendering: the two formats as lists of byte parts that share every family's sample
    lines (the formats differ only in HELP/TYPE lines and OpenMetrics' `# EOF`), served without
    joining them; gzipped bodies are made the first time a scrape asks for them."""

    __slots__ = ("text_parts", "om_parts", "seconds", "status", "rebuilt", "_gz", "_lock")

    def __init__(
        self,
        text_parts: list[Part],
        om_parts: list[Part],
        seconds: float,
        status: StatusSnapshot | None = None,
        rebuilt: int = 0,
    ) -> None:
        self.text_parts = text_parts
        self.om_parts = om_parts
        self.seconds = seconds  # what rendering took
        self.status = status  # the status page's rows, from the same moment
        self.rebuilt = rebuilt  # flows whose lines were rendered afresh (the others were reused)
        self._gz: dict[bool, bytes] = {}
        self._lock = threading.Lock()

    @property
    def text(self) -> bytes:
        return b"".join(pieces(self.text_parts, tuning.WRITE_SLICE))

    @property
    def openmetrics(self) -> bytes:
        return b"".join(pieces(self.om_parts, tuning.WRITE_SLICE))

    def parts(self, openmetrics: bool) -> list[Part]:
        return self.om_parts if openmetrics else self.text_parts

    def gzipped(self, openmetrics: bool) -> bytes:
        """The format gzipped, compressed once per rendering (zlib lets go of the interpreter
        lock while it works; call this in a worker thread)."""
        with self._lock:
            body = self._gz.get(openmetrics)
            if body is None:
                z = zlib.compressobj(3, zlib.DEFLATED, 31)  # 31: the gzip container
                body = b"".join(
                    [*(z.compress(p) for p in pieces(self.parts(openmetrics), tuning.WRITE_SLICE)), z.flush()]
                )
                self._gz[openmetrics] = body
            return body

    def has_gzipped(self, openmetrics: bool) -> bool:
        return openmetrics in self._gz


def _samples(metric, labelsets: dict[tuple, str]) -> str:
    """A family's sample lines, exactly as prometheus_client writes them."""
    return "".join([sample_line(s, labelsets) for s in metric.samples])


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
    return f"# HELP {m.name} {escape(m.documentation)}\n# TYPE {m.name} {m.type}\n{unit}"


def format_parts(metrics: Iterable, runs: Latest | None = None) -> tuple[list[Part], list[Part]]:
    """(Prometheus text, OpenMetrics) as byte parts: joined, byte for byte what
    prometheus_client's generate_latest functions write for these families (plus, in OpenMetrics,
    the exemplars of `runs`, exemplars.py). Families are consumed one at a time and turned into
    bytes at once; a Chunked family (the flow collector's, while rendering) brings its sample
    lines already made."""
    labelsets: dict[tuple, str] = {}
    text: list[Part] = []
    om: list[Part] = []
    for m in metrics:
        body = m.body if isinstance(m, Chunked) else _samples(m, labelsets).encode("utf-8")
        text.append(_text_header(m).encode("utf-8"))
        om.append(_openmetrics_header(m).encode("utf-8"))
        if body:
            text.append(body)
            if runs and m.name in EXEMPLARS and isinstance(m, Chunked):
                om.append(exemplified(m.name, body, m.starts, m.flows, runs))
            else:
                om.append(body)
    om.append(b"# EOF\n")
    return text, om


def render(
    registry: CollectorRegistry,
    status: Callable[[], StatusSnapshot] | None = None,
    families: FlowFamilies | None = None,
    exemplars: Callable[[], Latest] | None = None,
) -> Rendered:
    """Render the registry; the flow collector reuses the lines of flows that did not change."""
    started = time.perf_counter()
    with chunking():
        text, om = format_parts(registry.collect(), exemplars() if exemplars is not None else None)
    snapshot = status() if status is not None else None
    rebuilt = families.rebuilt if families is not None else 0
    return Rendered(text, om, time.perf_counter() - started, snapshot, rebuilt)


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
    def __init__(
        self,
        registry: CollectorRegistry,
        status: Callable[[], StatusSnapshot] | None = None,
        families: FlowFamilies | None = None,
        exemplars: Callable[[], Latest] | None = None,
    ) -> None:
        self.registry = registry
        self.exemplars = exemplars  # each flow's latest counted run, for the OpenMetrics exemplars
        self.status = status  # builds the status page's snapshot; called in the same render step
        self.families = families  # the flow collector's cache of per-flow lines (for the count of flows rebuilt)
        self.current: Rendered | None = None

    async def refresh(self) -> Rendered:
        """Render in a worker thread; the event loop goes on serving the previous buffers."""
        self.current = await asyncio.to_thread(render, self.registry, self.status, self.families, self.exemplars)
        return self.current

    def latest(self) -> Rendered:
        if self.current is None:  # only before the first render has finished
            self.current = render(self.registry, self.status, self.families, self.exemplars)
        return self.current

    def _choice(self, accept: str, accept_encoding: str) -> tuple[Rendered, bool, bool, dict[str, str]]:
        r = self.latest()
        openmetrics, content_type = negotiate(accept)
        gz = accepts_gzip(accept_encoding)
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gz:
            headers["Content-Encoding"] = "gzip"
        return r, openmetrics, gz, headers

    def body(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The body for a scrape's Accept and Accept-Encoding headers, in one buffer."""
        r, openmetrics, gz, headers = self._choice(accept, accept_encoding)
        return (r.gzipped(openmetrics) if gz else b"".join(pieces(r.parts(openmetrics), tuning.WRITE_SLICE))), headers

    async def parts(self, accept: str, accept_encoding: str) -> tuple[list[Part], dict[str, str]]:
        """What /metrics sends, as parts written one after the other (no per-scrape join); a
        gzipped body is compressed in a worker thread the first time a rendering is asked for it."""
        r, openmetrics, gz, headers = self._choice(accept, accept_encoding)
        if not gz:
            return r.parts(openmetrics), headers
        if r.has_gzipped(openmetrics):
            return [r.gzipped(openmetrics)], headers
        return [await asyncio.to_thread(r.gzipped, openmetrics)], headers


class PartsPayload(Payload):
    """A body of byte parts, written in turn; its length is known up front (Content-Length)."""

    def __init__(self, parts: list[Part]) -> None:
        super().__init__(parts)
        self._size = sum(len(p) for p in parts)

    async def write(self, writer: AbstractStreamWriter) -> None:
        """A part at most WRITE_SLICE bytes at a time (exporter/support/tuning.py): a 10 MB family
        body handed to the transport at once is copied into its buffer in one step of the event loop."""
        size = tuning.WRITE_SLICE
        for p in pieces(self._value, size):
            if len(p) <= size:
                await writer.write(p)
                continue
            view = memoryview(p)
            for i in range(0, len(p), size):
                await writer.write(view[i : i + size])

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(pieces(self._value, tuning.WRITE_SLICE)).decode(encoding, errors)
