"""Each flow's exposition lines, kept between renderings and rebuilt only for flows that changed.

At 10,000 flows the exposition is some 300,000 series, and a poll cycle changes few of them: the
flows whose runs started, finished or were counted. Rendering every series every cycle would make
the render thread's CPU follow the flows watched, and hold the interpreter for seconds. Here the
per-flow families (everything labelled with a flow_id) are rendered for the changed flows only, in
one pass; each family's body is kept with the offset of every flow's lines in it, and the next
body is spliced from the stretches of unchanged flows and the changed flows' new lines, in ledger
order: the same bytes prometheus_client would write.

"Changed" is the ledger's word: `FlowState.version` moves whenever the ledger changes something a
collector reads (exporter/ledger/ledger.py). An entry also belongs to one FlowState object: a flow
that is forgotten and watched again, or restored from the state file, is rendered afresh.

In and out: while render.py renders (`chunking()` set), the flow collector (collectors/flows.py)
hands FlowFamilies.build() its parts and the ledger's flows, and yields the `Chunked` families
that come back; render.format_parts writes their bodies as they are.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from exporter.exposition import splice
from exporter.ledger.records import FlowState
from exporter.support import tuning

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
    body: bytes | bytearray
    # Where each flow's lines start in `body` (then its length), and the flows in that order: for
    # the OpenMetrics exemplars (exemplars.py), which go on some flows' lines.
    starts: Sequence[int] = ()
    flows: Sequence[FlowState] = ()


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


class FlowFamilies:
    """The cache: each family's body as last rendered, where each flow's chunk starts in it, and
    which record and version each flow's chunks were made from. A new body is the old one's
    stretches of unchanged flows (slices, not copies, until the join) with the changed flows'
    chunks in between: no flow's lines are held twice."""

    def __init__(self) -> None:
        self._options: object = None
        # Called (in the render thread) just before the bodies the last rendering serves are let
        # go: the render cache then holds new scrapes until the next rendering is in (render.py).
        self.release: Callable[[], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._bodies: list[bytearray] = []
        self._starts: list[array[int]] = []  # per family: each flow's offset, then the body's length
        self._order: list[FlowState] = []  # the flows in body order
        self._versions: array[int] = array("q")  # and the version each was rendered at
        self._index: dict[tuple[str, str], int] = {}
        self.rebuilt = 0  # flows whose lines the last call rebuilt (the rest were reused)

    def build(self, parts: Sequence[FlowPart], flows: Iterable[FlowState], options: object) -> list[list[Chunked]]:
        """For each part (a collector's collect_flows), its families with every flow's lines;
        only the flows whose ledger entry changed since the last call are rendered. `options`:
        what else decides which families exist (a change renders every flow again)."""
        if options != self._options:
            self._reset()
            self._options = options
        flows = list(flows)
        order, versions, index = self._order, self._versions, self._index
        # The new bodies, as a plan shared by every family: stretches of old positions [a, b), and
        # flows to render now.
        plan: list[list[int] | FlowState] = []
        rebuilt = 0
        for f in flows:
            i = index.get(f.key)
            if i is None or order[i] is not f or versions[i] != f.version:
                plan.append(f)
                rebuilt += 1
                continue
            last = plan[-1] if plan else None
            if isinstance(last, list) and last[1] == i:
                last[1] = i + 1
            else:
                plan.append([i, i + 1])
        try:
            if self._bodies and rebuilt <= max(tuning.RENDER_BATCH, len(flows) // RELEASE_SHARE):
                heads, bodies, starts = self._splice_releasing(parts, plan)
            else:
                heads, bodies, starts = self._splice(parts, plan)
        except BaseException:
            self._reset()  # half-spliced: the next call renders every flow afresh
            raise
        self._bodies, self._starts = bodies, starts
        self._order = flows
        self._versions = array("q", [f.version for f in flows])
        self._index = {f.key: i for i, f in enumerate(flows)}
        self.rebuilt = rebuilt
        out: list[list[Chunked]] = []
        j = 0
        for part_heads in heads:
            out.append(
                [
                    Chunked(m.name, m.documentation, m.type, m.unit, bodies[j + k], starts[j + k], flows)
                    for k, m in enumerate(part_heads)
                ]
            )
            j += len(part_heads)
        return out

    def _splice(
        self, parts: Sequence[FlowPart], plan: list[list[int] | FlowState]
    ) -> tuple[list[list[Metric]], list[bytearray], list[array[int]]]:
        """The families' headers, new bodies and offsets, written in plan order a segment at a
        time: the changed flows of a segment (RENDER_BATCH at most) are rendered, their lines and the
        stretches of unchanged flows before them are appended to every family's body, and they
        are let go before the next segment. So the lines made afresh never all exist at once
        beside the new bodies (at a baseline of 10,000 flows, 37 MB of them did)."""
        heads: list[list[Metric]] = []
        bodies: list[bytearray] = []
        starts: list[array[int]] = []
        olds = [memoryview(b) for b in self._bodies]
        for segment in splice.segments(plan):
            seg_heads, fresh = _render(parts, [step for step in segment if isinstance(step, FlowState)])
            if not heads:
                heads = seg_heads
                n = sum(len(h) for h in heads)
                bodies, starts = [bytearray() for _ in range(n)], [array("q") for _ in range(n)]
            for j, (body, offsets) in enumerate(zip(bodies, starts)):
                old = (olds[j], self._starts[j]) if olds else (splice.EMPTY_VIEW, splice.EMPTY_STARTS)
                splice.extend(body, offsets, j, segment, fresh, *old)
            del fresh
        for body, offsets in zip(bodies, starts):
            offsets.append(len(body))
        return heads, bodies, starts

    def _splice_releasing(
        self, parts: Sequence[FlowPart], plan: list[list[int] | FlowState]
    ) -> tuple[list[list[Metric]], list[bytearray], list[array[int]]]:
        """When few flows changed: their lines are rendered first (the last rendering is served
        meanwhile), then the last rendering is let go (`release`), and each family's new body is
        spliced and its old body dropped before the next family's: the old and the new bodies
        never all exist at once (at 10,000 flows each set is 37 MB, and both at once were the
        process's peak every cycle). Scrapes wait only for the splicing, a few memory copies."""
        heads, fresh = _render(parts, [step for step in plan if isinstance(step, FlowState)])
        if self.release is not None:
            self.release()
        olds, old_starts = self._bodies, self._starts
        self._bodies = []
        bodies: list[bytearray] = []
        starts: list[array[int]] = []
        for j in range(sum(len(h) for h in heads)):
            with memoryview(olds[j]) as old:
                body, offsets = splice.joined(j, plan, fresh, old, old_starts[j])
            olds[j] = bytearray()  # freed now, unless a scrape still writes it
            bodies.append(body)
            starts.append(offsets)
        return heads, bodies, starts


# The splice lets go family by family when at most 1/RELEASE_SHARE of the flows changed. A quarter
# left a restart's first cycle after its baseline (2,600 of 10,000 flows changed, the hostile
# profile) holding both renderings, 32 MB over the steady RSS; letting go, that step took 7 MB
# (bench/run.py --profile hostile, BENCHMARKS.md).
RELEASE_SHARE = 2


def _render(parts: Sequence[FlowPart], flows: list[FlowState]) -> tuple[list[list[Metric]], dict[tuple, tuple]]:
    """The families' headers (by part), and each of these flows' lines as bytes, one chunk per
    family. Flows are rendered RENDER_BATCH at a time (exporter/support/tuning.py), so the sample
    objects and line strings of thousands of flows never exist at once (at 10,000 flows that was
    200 MB at the peak)."""
    heads: list[list[Metric]] = []
    fresh: dict[tuple, tuple] = {}
    labelsets: dict[tuple, str] = {}
    size = tuning.RENDER_BATCH
    for start in range(0, max(1, len(flows)), size):
        batch = flows[start : start + size]
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
