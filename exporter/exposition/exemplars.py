"""Exemplars in the OpenMetrics exposition: a flow's run and failed-record counters name the latest
counted run.

Grafana's exemplar view then leads from a spike of `aep_flow_runs_total` to the run (and, with a
data link, to its page in Adobe). Both formats share every family's sample lines (render.py); the
text format has no exemplars, so for these two families the OpenMetrics body is the shared one
with an exemplar appended to the lines it belongs to: `aep_flow_runs_total`'s line of the run's
status (value 1: one run) and `aep_flow_failed_records_total` (the run's failed records), with the
run's end as the exemplar's timestamp.

That body is not a copy: an `Exemplified` keeps the shared body, where each exemplar goes and the
exemplars' bytes, and writes the pieces in turn (at 10,000 flows a copy was 4.4 MB held beside the
text body, and as much again while the next rendering was made). Where a flow's lines are comes
from the render cache (families.py: each flow's offset in each family body), so finding the line
of an exemplar reads that flow's few lines, not the family's.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client.utils import floatToGoString

from exporter.exposition.families import escape

if TYPE_CHECKING:
    from exporter.ledger.history import LastCounted
    from exporter.ledger.ledger import Ledger
    from exporter.ledger.records import FlowState

FAMILIES = frozenset({"aep_flow_runs", "aep_flow_failed_records"})

Latest = Mapping[tuple[str, str], "LastCounted"]


def latest(ledger: Ledger) -> dict[tuple[str, str], LastCounted]:
    """Each visible flow's latest counted run (read in the render step, while the ledger holds still)."""
    return {f.key: f.last_counted for f in list(ledger.flows.values()) if f.last_counted is not None and f.visible}


class Exemplified:
    """A family's OpenMetrics body: the shared body, with the exemplar `blob[ends[k-1]:ends[k]]`
    written before the newline at `body[at[k]]`. Never changed once made."""

    __slots__ = ("body", "at", "blob", "ends")

    def __init__(self, body: bytes | bytearray, at: array[int], blob: bytes, ends: array[int]) -> None:
        self.body, self.at, self.blob, self.ends = body, at, blob, ends

    def __len__(self) -> int:
        return len(self.body) + len(self.blob)

    def pieces(self) -> Iterator[memoryview]:
        body, blob = memoryview(self.body), memoryview(self.blob)
        prev = b0 = 0
        for pos, b1 in zip(self.at, self.ends):
            yield body[prev:pos]
            yield blob[b0:b1]
            prev, b0 = pos, b1
        yield body[prev:]

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of about `size` bytes (a few, not one per exemplar)."""
        buf = bytearray()
        for p in self.pieces():
            buf += p
            if len(buf) >= size:
                yield bytes(buf)
                buf.clear()
        if buf:
            yield bytes(buf)


def _exemplar(run: LastCounted, value: float) -> bytes:
    stamp = "" if run.ended is None else f" {run.ended:.3f}"
    return f' # {{run_id="{escape(run.run_id)}"}} {floatToGoString(value)}{stamp}'.encode()


def _line_end(name: str, body: bytes | bytearray, s0: int, s1: int, run: LastCounted) -> tuple[int, float] | None:
    """Where the exemplar of `run` goes in a flow's lines body[s0:s1], and its value."""
    if name == "aep_flow_runs":
        # Labels are written sorted (flow_id, sandbox, status); a quote inside a value is escaped,
        # so this cannot match inside one.
        k = body.find(b',status="' + escape(run.status).encode() + b'"} ', s0, s1)
        return (body.find(b"\n", k, s1), 1.0) if k >= 0 else None
    if run.failed_records is None:
        return None
    return body.find(b"\n", s0, s1), float(run.failed_records)  # the flow's one line


def exemplified(
    name: str, body: bytes | bytearray, starts: Sequence[int], flows: Sequence[FlowState], runs: Latest
) -> bytes | bytearray | Exemplified:
    """The family's OpenMetrics body: `body` with the exemplars of `runs` (flows[i]'s lines are
    body[starts[i]:starts[i + 1]]); `body` itself when there are none."""
    at, ends, blob = array("q"), array("q"), bytearray()
    if len(starts) != len(flows) + 1:
        return body  # not a body the render cache made (no offsets): no exemplars
    for i, f in enumerate(flows):
        run = runs.get(f.key)
        s0, s1 = starts[i], starts[i + 1]
        if run is None or s0 == s1:
            continue
        found = _line_end(name, body, s0, s1, run)
        if found is None or found[0] < 0:
            continue
        at.append(found[0])
        blob += _exemplar(run, found[1])
        ends.append(len(blob))
    return Exemplified(body, at, bytes(blob), ends) if at else body
