"""The exposition (and the status page), rendered once per poll cycle and served as bytes.

Rendering 200,000 series costs about a second of CPU; doing it on every scrape (and on the event
loop) would make /metrics slow. Here it happens once per cycle, in a worker thread, while the
poller is between cycles (so the ledger is not changing underneath), and only for the flows whose
ledger entry changed (families.py keeps the others' lines). Both formats come out of one
pass as lists of byte parts sharing every family's sample lines (they differ only in HELP/TYPE
lines and `# EOF`); a scrape writes the parts as they are, and a gzipped body is made once per
rendering, in a worker thread, by the first scrape that asks for it. No per-series work per scrape.
The last rendering is served while the next is made, but for the moment its flow families'
bodies are spliced after a cycle that changed few flows: families.py then lets the old bodies go
family by family (so the two sets never both exist: the process's peak at 10,000 flows), and a
scrape that comes in that moment waits for the new rendering; one under way writes what it took.

In: the registry (the self-metrics and the collectors) and the status page's snapshot, read by
RenderCache.refresh() after each cycle. Out: the latest `Rendered`, which server.py serves.

Content negotiation (which format a scrape gets) is negotiation.py's.
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

from exporter.exposition.exemplars import FAMILIES as EXEMPLARS
from exporter.exposition.exemplars import Exemplified, Latest, exemplified
from exporter.exposition.families import Chunked, FlowFamilies, chunking, escape, sample_line
from exporter.exposition.negotiation import accepts_gzip, negotiate
from exporter.exposition.negotiation import by_preference as by_preference  # the tests' name for it
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
    joining them; gzipped bodies are made the first time a scrape asks for them. Once the next
    rendering is under way it may be let go (`release`): its bodies are dropped, and a scrape
    that finds it so waits for the next (RenderCache.parts)."""

    __slots__ = ("text_parts", "om_parts", "seconds", "status", "rebuilt", "released", "_gz", "_lock")

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
        self.released = False
        self._gz: dict[bool, bytes] = {}
        self._lock = threading.Lock()

    def release(self) -> None:
        """Let go of the bodies (the render thread, when the next rendering replaces them)."""
        with self._lock:
            self.released = True
            self.text_parts, self.om_parts = [], []
            self._gz.clear()

    def take(self, openmetrics: bool) -> list[Part] | None:
        """A scrape's own list of the format's parts (what the rendering lets go later is not
        its business), or None once released."""
        with self._lock:
            return None if self.released else list(self.parts(openmetrics))

    @property
    def text(self) -> bytes:
        return b"".join(pieces(self.text_parts, tuning.WRITE_SLICE))

    @property
    def openmetrics(self) -> bytes:
        return b"".join(pieces(self.om_parts, tuning.WRITE_SLICE))

    def parts(self, openmetrics: bool) -> list[Part]:
        return self.om_parts if openmetrics else self.text_parts

    def gzipped(self, openmetrics: bool) -> bytes | None:
        """The format gzipped, compressed once per rendering (zlib lets go of the interpreter
        lock while it works; call this in a worker thread); None once released."""
        with self._lock:
            body = self._gz.get(openmetrics)
            if body is None and not self.released:
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
    # The views first: once the flow families let the last rendering go, scrapes wait for this one.
    snapshot = status() if status is not None else None
    with chunking():
        text, om = format_parts(registry.collect(), exemplars() if exemplars is not None else None)
    rebuilt = families.rebuilt if families is not None else 0
    return Rendered(text, om, time.perf_counter() - started, snapshot, rebuilt)


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
        self._next = asyncio.Event()  # set when a rendering replaces one that was let go

    async def refresh(self) -> Rendered:
        """Render in a worker thread; the event loop goes on serving the previous buffers, but
        for the moment the flow families splice their new bodies, when they let the old ones
        go (families.py): scrapes that come then wait for this rendering."""
        if self.families is not None:
            self.families.release = self._let_go
        ready = self._next = asyncio.Event()
        try:
            self.current = await asyncio.to_thread(render, self.registry, self.status, self.families, self.exemplars)
        except BaseException:
            if self.current is not None and self.current.released:
                self.current = None  # the next scrape renders (latest)
            raise
        finally:
            ready.set()  # this refresh's waiters (not a later refresh's)
        return self.current

    def _let_go(self) -> None:
        """The render thread is about to drop the bodies the current rendering serves."""
        if self.current is not None:
            self.current.release()

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
        body = r.gzipped(openmetrics) if gz else b"".join(pieces(r.parts(openmetrics), tuning.WRITE_SLICE))
        return body or b"", headers

    async def parts(self, accept: str, accept_encoding: str) -> tuple[list[Part], dict[str, str]]:
        """What /metrics sends, as parts written one after the other (no per-scrape join); a
        gzipped body is compressed in a worker thread the first time a rendering is asked for it.
        A rendering let go (the next one is being spliced) is not served: the scrape waits."""
        while True:
            r, openmetrics, gz, headers = self._choice(accept, accept_encoding)
            if not gz:
                parts = r.take(openmetrics)
            else:
                body = r.gzipped(openmetrics) if r.has_gzipped(openmetrics) else None
                if body is None:
                    body = await asyncio.to_thread(r.gzipped, openmetrics)
                parts = None if body is None else [body]
            if parts is not None:
                return parts, headers
            await self._next.wait()


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
