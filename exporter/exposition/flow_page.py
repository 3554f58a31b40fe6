"""The page of one flow at `/flows/{flow_id}`: what it is, and its recent completed runs.

It answers the on-call questions after "which flow": since when, how often, and why. The render
step takes a `FlowView` of each flow that changed (references to its metadata, names and packed run
history: immutable values the ledger replaces rather than changes), so a request renders from what
the last cycle saw and never asks Adobe. The runs are unpacked only for the page asked for. No
JavaScript, nothing loaded from elsewhere (charts are inline SVG); every string that comes from
Adobe (names, states, statuses, codes, messages, IDs) is escaped here, by `_e`.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from exporter.ledger.history import PastRun, RunHistory, unpack

if TYPE_CHECKING:
    from exporter.adobe.models import Flow
    from exporter.adobe.runfacts import RunFacts
    from exporter.config import Config
    from exporter.ledger.records import FlowState

GOOD = frozenset({"success", "completed"})
BAD = frozenset({"failed", "partialFailure", "cancelled"})
STRIP_RUNS = 12  # squares in a row of `/`


@dataclass(frozen=True, slots=True)
class Links:
    """Links into Adobe's UI: none without the Experience Cloud tenant (config.experience_*)."""

    tenant: str | None = None
    flow_url: str = ""
    run_url: str = ""

    def _fill(self, template: str, sandbox: str, flow_id: str, run_id: str = "") -> str | None:
        if not self.tenant or not template:
            return None
        q = {"tenant": self.tenant, "sandbox": sandbox, "flow_id": flow_id, "run_id": run_id}
        return template.format(**{k: quote(v, safe="@") for k, v in q.items()})

    def flow(self, sandbox: str, flow_id: str) -> str | None:
        return self._fill(self.flow_url, sandbox, flow_id)

    def run(self, sandbox: str, flow_id: str, run_id: str) -> str | None:
        return self._fill(self.run_url, sandbox, flow_id, run_id)


def links(config: Config) -> Links:
    return Links(config.experience_tenant, config.experience_flow_url, config.experience_run_url)


@dataclass(frozen=True, slots=True, eq=False)
class FlowView:
    """One flow as the last render step saw it: references to the values the ledger held then
    (its metadata, last runs, names, packed history: values the ledger replaces rather than
    changes, so a request's worker thread may read them while the poller goes on). Nothing is
    formatted here: the status row, the flow page and its JSON are made only when asked for, so
    a render step nobody looks at keeps one small object per flow. Compared by identity (a view
    is kept between render steps while its flow does not change: the rows' cache keys on it)."""

    sandbox: str
    flow_id: str
    flow: Flow | None
    up: bool
    baselined: bool
    last_run: RunFacts | None
    last_completed: RunFacts | None
    last_success: float | None
    source: str | None
    target: str | None
    dataset_id: str | None
    dataset_name: str | None
    history: RunHistory
    # The ledger record and version this view was taken from: only compared (status_page.Rows
    # takes a new view when either moved), never read.
    origin: object = field(default=None, repr=False)
    version: int = 0

    @property
    def name(self) -> str | None:
        return self.flow.name if self.flow is not None else None

    @property
    def state(self) -> str | None:
        return self.flow.state if self.flow is not None else None

    @property
    def schedule(self) -> str | None:
        f = self.flow
        if f is None or not f.frequency:
            return None
        return f"every {f.interval or 1} {f.frequency}" if f.schedule_seconds else f.frequency

    @property
    def runs(self) -> list[PastRun]:
        """Newest first."""
        return unpack(self.history)[::-1]


def view(state: FlowState) -> FlowView:
    """The flow's view: no string is made, only references taken."""
    return FlowView(
        state.sandbox,
        state.flow_id,
        state.flow,
        bool(state.up),
        state.baselined,
        state.last_run,
        state.last_completed,
        state.last_success,
        state.source_name,
        state.target_name,
        state.dataset_id,
        state.dataset_name,
        state.history,
        state,
        state.version,
    )


def _e(value: Any) -> str:
    return html.escape("—" if value is None or value == "" else str(value), quote=True)


def kind(status: str) -> str:
    return "good" if status in GOOD else "bad" if status in BAD else "other"


def _when(t: float | None) -> str:
    return "—" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def strip(history: RunHistory) -> str:
    """The last runs as small squares coloured by status, the newest at the right (for `/`)."""
    runs = unpack(history, STRIP_RUNS)
    cells = "".join(
        f'<span class="sq {kind(r.status)}" title="{_e(r.status)} {_e(_when(r.when))} UTC"></span>' for r in runs
    )
    return f'<span class="strip">{cells}</span>' if cells else ""


def _chart(title: str, series: list[tuple[str, str, list[float | None]]]) -> str:
    """Bars per run (oldest at the left), one colour per series, on one scale."""
    n = max((len(v) for _, _, v in series), default=0)
    top = max((x for _, _, v in series for x in v if x is not None), default=0) or 1
    width, height, slot = 600, 90, 600 / max(n, 1)
    bar = slot / (len(series) + 1)
    bars = []
    for j, (label, colour, values) in enumerate(series):
        for i, v in enumerate(values):
            if v is None:
                continue
            h = max(1.0, v / top * (height - 10))
            x = i * slot + j * bar
            bars.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{_e(label)}: {v:g}</title></rect>"
            )
    legend = " ".join(f'<span style="color:{c}">■</span> {_e(label)}' for label, c, _ in series)
    return (
        f'<figure class="chart"><figcaption>{_e(title)} — {legend} (max {top:g})</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(bars)}</svg></figure>'
    )


def charts(runs: list[PastRun]) -> str:
    """Records in/out/failed and duration per run, oldest at the left."""
    old = runs[::-1]
    records: list[tuple[str, str, list[float | None]]] = [
        ("in", "#3b6fb6", [r.input_records for r in old]),
        ("out", "#2e8540", [r.output_records for r in old]),
        ("failed", "#b00020", [r.failed_records for r in old]),
    ]
    durations: list[tuple[str, str, list[float | None]]] = [("s", "#6a4c93", [r.duration for r in old])]
    return _chart("Records per run", records) + _chart("Duration per run (s)", durations)


def _run_row(v: FlowView, r: PastRun, links: Links) -> str:
    link = links.run(v.sandbox, v.flow_id, r.run_id)
    rid = f'<a href="{_e(link)}">{_e(r.run_id)}</a>' if link else _e(r.run_id)
    errors = "<br>".join(f"<code>{_e(c)}</code> {_e(m) if m else ''}" for c, m in r.errors)
    cells = [_when(r.created), _when(r.started), _when(r.ended), r.duration]
    nums = [r.input_records, r.output_records, r.failed_records, r.input_bytes]
    return (
        f'<tr class="{kind(r.status)}"><td class="id">{rid}</td>'
        + "".join(f"<td>{_e(c)}</td>" for c in cells)
        + f'<td class="st">{_e(r.status)}</td>'
        + "".join(f'<td class="num">{_e(n)}</td>' for n in nums)
        + f'<td class="err">{errors or "—"}</td></tr>\n'
    )


def route(v: FlowView) -> str:
    """'Amazon S3 → Orders' (source → the dataset's name, else its ID, else the target)."""
    dataset = v.dataset_name or (f"dataset {v.dataset_id}" if v.dataset_id else None)
    return f"{v.source or '?'} → {dataset or v.target or '?'}"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em;margin:0 0 .3em}
nav a{margin-right:1em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{color:#666}
table{border-collapse:collapse;margin-top:1em;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.id{font-family:monospace;font-size:.85em}tr.bad{background:#fdecea}tr.bad td.st{color:#b00020;font-weight:600}
td.err{max-width:32em;overflow-wrap:anywhere}figure.chart{display:inline-block;margin:.5em 1.5em .5em 0}
svg{background:#fafafa;border:1px solid #ddd}
"""
_HEAD = (
    "<th>Run</th><th>Created (UTC)</th><th>Started</th><th>Ended</th><th>Duration (s)</th><th>Status</th>"
    "<th>Records in</th><th>Records out</th><th>Records failed</th><th>Bytes in</th><th>Errors</th>"
)


def page(v: FlowView, links: Links, taken: float) -> str:
    runs = v.runs
    adobe = links.flow(v.sandbox, v.flow_id)
    facts = [
        ("Sandbox", v.sandbox),
        ("Flow ID", v.flow_id),
        ("State", v.state),
        ("Schedule", v.schedule),
        ("Source → target", route(v)),
        ("Last poll OK", "yes" if v.up else "no"),
    ]
    rows = "".join(_run_row(v, r, links) for r in runs) or '<tr><td colspan="11">No completed run yet.</td></tr>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{_e(v.name or v.flow_id)} — AEP Flow Exporter</title><style>{_STYLE}</style></head><body>"
        f'<nav><a href="/">All flows</a><a href="/api/v1/flows/{_e(quote(v.flow_id))}">JSON</a>'
        + (f'<a href="{_e(adobe)}">Open in Adobe</a>' if adobe else "")
        + f'</nav><h1 class="name">{_e(v.name)}</h1><dl>'
        + "".join(f"<dt>{k}</dt><dd>{_e(x)}</dd>" for k, x in facts)
        + f"</dl><p>The last {len(runs)} completed run(s), newest first, as of the last poll cycle "
        f"({_e(_when(taken))} UTC).</p>"
        + (charts(runs) if runs else "")
        + f'<table><thead><tr>{_HEAD}</tr></thead><tbody id="runs">\n{rows}</tbody></table></body></html>'
    )
