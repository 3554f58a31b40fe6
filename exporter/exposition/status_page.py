"""The status page at `/`: one table row per watched flow, unhealthy flows first.

In the spirit of blackbox_exporter's recent-probes page: it answers "which of my flows are
unhealthy right now?" without Grafana. Each flow's view is taken in the render step after each
poll cycle (render.py), while the ledger holds still; the rows' HTML is made from the views at the
first request after it (in a worker thread), and a request only filters those rows (a substring
match, `?q=`) and joins bytes. No JavaScript, no asset
from anywhere: one HTML document with its style inline, and a Content-Security-Policy that allows
nothing else.

This module is the only reader of the ledger for the page, and it reads only `Ledger.flows` and
the FlowState attributes sandbox, flow_id, flow (name, state), up, gone, baselined, last_run,
last_completed, last_success, history (the strip of the last runs), the names source_name,
target_name, dataset_id and dataset_name (shown as "source → dataset", or "source → target" where
a flow writes to no dataset), and `version`, to know when a flow's view must be taken again
(through flow_page.view: the render step keeps references, and the rows are made from them). Flow names, states, statuses and error codes come from Adobe
(users set the names there): every one is HTML-escaped here, in one place (`_cell`).
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from exporter import __version__
from exporter.exposition.flow_page import FlowView, Links, strip, view

if TYPE_CHECKING:  # types only: the attributes used are listed in the module docstring
    from exporter.ledger.ledger import FlowState, Ledger

# Statuses of a last completed run that make a flow unhealthy.
FAILED_STATUSES = frozenset({"failed", "partialFailure"})
BAD_CELL = ' class="bad"'
DOCS_PATH = "/docs"  # the README, served by the exporter itself (server.py): no link leaves the host
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'"


@dataclass(frozen=True, slots=True)
class Row:
    healthy: bool
    key: tuple  # sort key: unhealthy first, then sandbox and name
    search: str  # lower-cased text a filter matches against
    html: str  # the <tr>, escaped


class StatusSnapshot:
    """The watched flows as of one render step: each flow's view (flow_page.FlowView: references,
    no strings), kept between render steps while the flow does not change. The rows, their moving
    cell and their order are made the first time the page is asked for (`rows`, from the views and
    the rows' cache of `maker`), so a render step nobody looks at costs one small object per
    changed flow, and no HTML is held for a page nobody reads."""

    def __init__(
        self,
        views: tuple[FlowView, ...] = (),
        taken: float = 0.0,
        links: Links = Links(),
        maker: Rows | None = None,
    ) -> None:
        self.taken = taken  # wall-clock time of the render step
        self.views = views  # each flow as the render step saw it (flow_page.py), in ledger order
        self.links = links
        self._maker = maker
        self._rows: tuple[Row, ...] | None = None
        self._by_id: dict[str, FlowView] | None = None
        self._lock = threading.Lock()

    def view(self, flow_id: str) -> FlowView | None:
        """The flow's view by ID (case-insensitive; the index is made at the first look)."""
        with self._lock:
            if self._by_id is None:
                self._by_id = {}
                for v in self.views:
                    self._by_id.setdefault(v.flow_id.lower(), v)
            return self._by_id.get(flow_id.lower())

    @property
    def rows(self) -> tuple[Row, ...]:
        """Unhealthy first, then by sandbox and name (call it in a worker thread if the snapshot
        is large: it is made once)."""
        with self._lock:
            if self._rows is None:
                parts = self._maker.parts(self.views) if self._maker is not None else [_parts(v) for v in self.views]
                rows = [p.row(self.taken) for p in parts]
                rows.sort(key=lambda r: r.key)
                self._rows = tuple(rows)
            return self._rows

    @property
    def unhealthy(self) -> int:
        return sum(1 for r in self.rows if not r.healthy)


def ago(seconds: float | None) -> str:
    """'3d 4h', '5m 12s', '40s'; an em dash when there is nothing to count from."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit} {(s % size) // small_size}{small}"
    return f"{s}s"


def _cell(value: Any, cls: str = "") -> str:
    text = "—" if value is None or value == "" else str(value)
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html.escape(text, quote=True)}</td>"


def row(state: FlowState, now: float) -> Row:
    """One flow's row, as the ledger holds it now."""
    return _parts(view(state)).row(now)


@dataclass(frozen=True, slots=True)
class _RowParts:
    """A row less its one cell that moves with the clock ("since last success")."""

    healthy: bool
    key: tuple
    search: str
    before: str  # the <tr> up to the moving cell
    after: str
    last_success: float | None

    def row(self, now: float) -> Row:
        since = now - self.last_success if self.last_success is not None else None
        return Row(self.healthy, self.key, self.search, self.before + _cell(ago(since)) + self.after)


def _parts(v: FlowView) -> _RowParts:
    name, flow_state = v.name, v.state
    last, done = v.last_run, v.last_completed
    failed = done is not None and done.status in FAILED_STATUSES
    healthy = v.up and not failed
    codes = ", ".join(sorted(done.error_codes)) if done is not None else ""
    route = _route(v)
    shown_route = f'<br><span class="route">{html.escape(route)}</span>' if route else ""
    href = html.escape("/flows/" + quote(v.flow_id, safe=""), quote=True)
    status = html.escape(last.status if last is not None else "—")
    before = [
        _cell(v.sandbox),
        f'<td><a class="name" href="{href}">{html.escape(name or "—")}</a>{shown_route}'
        f'<br><span class="id">{html.escape(v.flow_id)}</span></td>',
        _cell(flow_state),
        f"<td{BAD_CELL if failed else ''}>{status}{strip(v.history)}</td>",
    ]
    after = [
        _cell(done.input_records if done is not None else None, "num"),
        _cell(done.output_records if done is not None else None, "num"),
        _cell(done.failed_records if done is not None else None, "num"),
        _cell(codes),
        _cell("yes" if v.up else ("no" if v.baselined else "not yet"), "" if v.up else "bad"),
    ]
    tr = f'<tr class="{"ok" if healthy else "unhealthy"}">'
    words = [v.sandbox, name or "", v.flow_id, flow_state or "", last.status if last else "", codes, route]
    words.append("healthy" if healthy else "unhealthy")
    return _RowParts(
        healthy,
        (healthy, v.sandbox, (name or "").lower(), v.flow_id),
        " ".join(words).lower(),
        tr + "".join(before),
        "".join(after) + "</tr>\n",
        v.last_success,
    )


def _route(v: FlowView) -> str:
    """'Amazon S3 → dataset 5f3c3cedb2805c194ff0b69a' (source → dataset), else 'source → target' (a
    destination, or a dataset not known yet); empty while no name is resolved."""
    source, target, dataset = v.source, v.target, v.dataset_id
    if not (source or target or dataset):
        return ""
    shown = v.dataset_name or (f"dataset {dataset}" if dataset else None)
    return f"{source or '?'} → {shown or target or '?'}"


def snapshot(ledger: Ledger, now: float | None = None) -> StatusSnapshot:
    """Every watched flow (a flow Adobe says is gone is no longer watched), unhealthy first."""
    return Rows().snapshot(ledger, now)


class Rows:
    """Each flow's view kept between render steps and taken again only when the flow's ledger
    entry changed (FlowState.version, as for the exposition). The rows' HTML is made when a page
    asks for it, and kept (beside the views it was made from) only while someone looks: a row is
    then made again only for a flow whose view changed, and a render step that follows one with
    no look at the page lets go of them all (at 10,000 flows they were 14 MB of strings, held for
    a page a Prometheus-only deployment never serves)."""

    def __init__(self, links: Links = Links()) -> None:
        self._views: dict[tuple[str, str], FlowView] = {}
        self._made: dict[FlowView, _RowParts] = {}  # the rows last asked for, by the view they show
        self._looked = False  # whether a page asked for rows since the last render step
        self._lock = threading.Lock()
        self.links = links  # into Adobe's UI, for the flow pages (set again on a config reload)

    def snapshot(self, ledger: Ledger, now: float | None = None) -> StatusSnapshot:
        now = time.time() if now is None else now
        old, kept = self._views, {}
        for s in list(ledger.flows.values()):
            if s.gone:
                continue
            v = old.get(s.key)
            if v is None or v.origin is not s or v.version != s.version:
                v = view(s)
            kept[s.key] = v
        self._views = kept
        with self._lock:
            if not self._looked:
                self._made = {}
            self._looked = False
        return StatusSnapshot(tuple(kept.values()), now, self.links, self)

    def parts(self, views: tuple[FlowView, ...]) -> list[_RowParts]:
        """The views' row parts: those made for a view before are reused (called by a snapshot's
        `rows`, in a request's worker thread)."""
        with self._lock:
            made, fresh = self._made, {}
            for v in views:
                p = made.get(v)
                fresh[v] = p if p is not None else _parts(v)
            self._made, self._looked = fresh, True
            return list(fresh.values())


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}nav a{margin-right:1em}
table{border-collapse:collapse;margin-top:1em;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.unhealthy{background:#fdecea}td.bad{color:#b00020;font-weight:600}
.id{color:#777;font-size:.8em;font-family:monospace}a.name{color:inherit}
.strip{display:block;margin-top:.2em}.sq{display:inline-block;width:.7em;height:.7em;margin-right:1px}
.sq.good{background:#2e8540}.sq.bad{background:#b00020}.sq.other{background:#999}.route{color:#444;font-size:.85em}.summary{margin:.8em 0}
input[type=search]{width:22em;padding:.3em}
"""
_HEAD = (
    "<th>Sandbox</th><th>Flow</th><th>State</th><th>Last run</th><th>Since last success</th>"
    "<th>Records in</th><th>Records out</th><th>Records failed</th><th>Error codes</th><th>Last poll OK</th>"
)


def page(snap: StatusSnapshot | None, query: str = "", telemetry_path: str = "/metrics") -> str:
    """The whole page; `query` filters rows by a case-insensitive substring (all of its words)."""
    rows = snap.rows if snap is not None else ()
    words = query.lower().split()
    shown = [r for r in rows if all(w in r.search for w in words)] if words else list(rows)
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.taken)) if snap is not None else "—"
    unhealthy = snap.unhealthy if snap is not None else 0
    q = html.escape(query, quote=True)
    filtered = f' — {len(shown)} shown for “{q}” (<a href="/">clear</a>)' if words else ""
    body = "".join(r.html for r in shown) or '<tr><td colspan="10">No flows to show.</td></tr>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>AEP Flow Exporter — flow status</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>AEP Flow Exporter</h1><nav>"
        f'<a href="{html.escape(quote(telemetry_path, safe="/"), quote=True)}">Metrics</a>'
        '<a href="/healthz">Health</a><a href="/ready">Readiness</a>'
        f'<a href="{DOCS_PATH}">Docs</a></nav>'
        f'<p class="summary">{len(rows)} flow(s), <strong>{unhealthy} unhealthy</strong>, as of the last poll '
        f"cycle ({taken}){filtered}. Version {html.escape(__version__)}.</p>"
        '<form method="get" action="/" role="search"><label>Filter '
        f'<input type="search" name="q" value="{q}" placeholder="sandbox, name, id, status, error code">'
        '</label> <button type="submit">Filter</button></form>'
        f'<table><thead><tr>{_HEAD}</tr></thead><tbody id="flows">\n{body}</tbody></table>'
        "</body></html>"
    )
