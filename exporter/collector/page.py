"""Each flow's exposition lines, kept between renderings and rebuilt only for flows that changed.

At 10,000 flows the exposition is some 300,000 series, and a poll cycle changes few of them: the
flows whose runs started, finished or were counted. Rendering every series every cycle made the
render thread's CPU follow the flows watched, and it held the interpreter for seconds. Here the
per-flow families (everything labelled with a flow_id) are rendered for the changed flows only, in
one pass, and each flow's sample lines are kept as bytes, one chunk per family. A family's body is
then the concatenation of its chunks in ledger order: the same bytes prometheus_client would write.

"Changed" is the ledger's word: `FlowState.version` moves whenever the ledger changes something a
collector reads (exporter/ledger.py). An entry also belongs to one FlowState object: a flow that is
forgotten and watched again, or restored from the state file, is rendered afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from exporter.flowstate import FlowState

EMPTY = b""

# Set while the exposition is being rendered (render.py): the flow collector then yields Chunked
# families from this cache instead of building every sample. Other readers of the registry
# (prometheus_client's generate_latest, --once) get ordinary families.
_CHUNKING: ContextVar[bool] = ContextVar("chunking", default=False)


@contextmanager
def chunking() -> Iterator[None]:
    token = _CHUNKING.set(True)
    try:
        yield
    finally:
        _CHUNKING.reset(token)


def is_chunking() -> bool:
    return _CHUNKING.get()


@dataclass(frozen=True, slots=True)
class Chunked:
    """A family whose sample lines are already bytes (render.format_parts writes its HELP/TYPE
    lines from the same attributes a prometheus_client Metric has)."""

    name: str
    documentation: str
    type: str
    unit: str
    body: bytes


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def sample_line(s, labelsets: dict[tuple, str]) -> str:
    """One sample line, exactly as prometheus_client writes it (the two formats write samples
    alike); a label set is escaped once and shared by every series that has it."""
    key = tuple(sorted(s.labels.items()))
    labels = labelsets.get(key)
    if labels is None:
        labels = labelsets[key] = ("{" + ",".join(f'{k}="{escape(v)}"' for k, v in key) + "}") if key else ""
    return f"{s.name}{labels} {floatToGoString(s.value)}\n"


FlowPart = Callable[[Iterable[FlowState]], Iterator[Metric]]
Entry = tuple[FlowState, int, tuple[bytes, ...]]


class FlowPage:
    """The cache: per flow, (its FlowState, the version rendered, one chunk of bytes per family)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._options: object = None
        self.rebuilt = 0  # flows whose lines the last refresh rebuilt (the rest were reused)

    def families(self, parts: Sequence[FlowPart], flows: Iterable[FlowState], options: object) -> list[list[Chunked]]:
        """For each part (a collector's collect_flows), its families with every flow's lines;
        only the flows whose ledger entry changed since the last call are rendered. `options`:
        what else decides which families exist (a change renders every flow again)."""
        if options != self._options:
            self._entries, self._options = {}, options
        old = self._entries
        flows = list(flows)
        dirty = [
            f for f in flows if (e := old.get((f.sandbox, f.flow_id))) is None or e[0] is not f or e[1] != f.version
        ]
        heads, fresh = _render(parts, dirty)
        entries: dict[tuple[str, str], Entry] = {}
        for f in flows:
            key = (f.sandbox, f.flow_id)
            chunks = fresh.get(key)
            if chunks is not None:
                entries[key] = (f, f.version, chunks)
            elif (e := old.get(key)) is not None and e[0] is f and e[1] == f.version:
                entries[key] = e
            else:  # rendered now, with no series at all (not yet polled, or gone)
                entries[key] = (f, f.version, ())
        self._entries, self.rebuilt = entries, len(dirty)
        rows = [c for _, _, c in entries.values() if c]
        columns = iter(zip(*rows)) if rows else None  # column j: every flow's chunk of family j
        out: list[list[Chunked]] = []
        for part_heads in heads:
            families = []
            for m in part_heads:
                body = b"".join(next(columns)) if columns is not None else EMPTY
                families.append(Chunked(m.name, m.documentation, m.type, m.unit, body))
            out.append(families)
        return out


BATCH = 500  # flows rendered together: what the render step holds at once besides the output


def _render(parts: Sequence[FlowPart], flows: list[FlowState]) -> tuple[list[list[Metric]], dict[tuple, tuple]]:
    """The families' headers (by part), and each of these flows' lines as bytes, one chunk per
    family. Flows are rendered BATCH at a time, so the sample objects and line strings of
    thousands of flows never exist at once (at 10,000 flows that was 200 MB at the peak)."""
    heads: list[list[Metric]] = []
    fresh: dict[tuple, tuple] = {}
    labelsets: dict[tuple, str] = {}
    for start in range(0, max(1, len(flows)), BATCH):
        batch = flows[start : start + BATCH]
        lines: dict[tuple[str, str], dict[int, list[str]]] = {}
        j = 0
        for part in parts:
            part_heads = []
            for m in part(batch):
                part_heads.append(m)
                for s in m.samples:
                    key = (s.labels["sandbox"], s.labels["flow_id"])
                    by_family = lines.get(key)
                    if by_family is None:
                        by_family = lines[key] = {}
                    by_family.setdefault(j, []).append(sample_line(s, labelsets))
                m.samples = []  # the header is all that is kept
                j += 1
            if start == 0:
                heads.append(part_heads)
        for key, d in lines.items():
            fresh[key] = tuple("".join(d[i]).encode("utf-8") if i in d else EMPTY for i in range(j))
        labelsets.clear()  # a batch's label sets are its own flows'
    return heads, fresh
