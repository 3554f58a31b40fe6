"""The status page at `/`: one row per watched flow, unhealthy first, Adobe's strings escaped,
served from the snapshot the render step built (its rows kept between render steps)."""

from __future__ import annotations

import gc
import time
import weakref

from prometheus_client import CollectorRegistry

from exporter.adobe.models import Flow
from exporter.adobe.runfacts import RunFacts
from exporter.exposition import status_page as status
from exporter.exposition.render import RenderCache
from exporter.exposition.server import make_app
from exporter.ledger.ledger import Ledger

HOSTILE = "<img src=x onerror=alert(1)>"


def _facts(status_: str, created: float, codes: frozenset[str] = frozenset(), **numbers) -> RunFacts:
    counts = {k: v for k, v in numbers.items() if v is not None}  # not reported: absent
    return RunFacts(
        run_id=f"run-{created}",
        created=created,
        status=status_,
        completed=True,
        started=created,
        ended=created + 10,
        duration=10.0,
        error_codes=codes,
        error_records=(),
        window_end=None,
        activities=(),
        counts=counts,
    )


def _ledger() -> Ledger:
    ledger = Ledger()
    now = time.time()
    for sandbox, name, run in (
        ("prod", "zeta fine", _facts("success", now - 600, input_records=10, output_records=9, failed_records=1)),
        ("prod", HOSTILE, _facts("failed", now - 300, frozenset({"CONNECTOR-1001-500", "<b>x</b>"}))),
        ("dev", "alpha fine", _facts("success", now - 60, input_records=5)),
    ):
        state = ledger.flow(sandbox, f"id-{name[:4]}")
        ledger.set_flow(state, Flow(id=state.flow_id, name=name, state="enabled", frequency="hour", interval=1), 0)
        ledger.apply_runs(state, [], 0)
        ledger.apply_runs(state, [run], 0)
    return ledger


def test_rows_escape_adobe_strings_and_put_unhealthy_first():
    snap = status.snapshot(_ledger())
    page = status.page(snap)
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("<tr class=") == 3
    assert [r.healthy for r in snap.rows] == [False, True, True]
    assert page.index("&lt;img") < page.index("alpha fine") < page.index("zeta fine")
    assert '<td class="num">10</td><td class="num">9</td><td class="num">1</td>' in page
    # A filter matches any of the words, case-insensitively; the query is escaped back into the box.
    assert status.page(snap, "ALPHA").count("<tr class=") == 1
    assert status.page(snap, "connector-1001").count("<tr class=") == 1
    assert status.page(snap, "unhealthy").count("<tr class=") == 1
    filtered = status.page(snap, '"><script>')
    assert "<script>" not in filtered and "No flows to show." in filtered


async def test_page_is_served_from_the_last_render(aiohttp_client):
    ledger = _ledger()
    cache = RenderCache(CollectorRegistry(), lambda: status.snapshot(ledger))
    await cache.refresh()
    client = await aiohttp_client(make_app(cache, lambda: True))
    ledger.flow("prod", "added-after-the-render")
    r = await client.get("/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert (await r.text()).count("<tr class=") == 3  # the new flow waits for the next render
    await cache.refresh()
    assert (await (await client.get("/")).text()).count("<tr class=") == 4
    docs = await client.get("/docs")
    assert docs.status == 200 and "aep-flow-exporter" in await docs.text()


def test_kept_rows_follow_ledger_changes_and_the_clock():
    """Rows are kept between render steps: one whose flow changed is made again, and the
    'since last success' cell moves with the clock in every row."""
    ledger = _ledger()
    rows = status.Rows()
    now = time.time()
    first = rows.snapshot(ledger, now)
    assert [r.html for r in first.rows] == [r.html for r in status.snapshot(ledger, now).rows]
    healthy = next(s for s in ledger.flows.values() if s.up and s.last_success is not None)
    ledger.mark_down(healthy)
    later = rows.snapshot(ledger, now + 7200)
    assert [r.html for r in later.rows] == [r.html for r in status.snapshot(ledger, now + 7200).rows]
    assert [r.healthy for r in later.rows] == [False, False, True]


async def test_a_look_at_the_page_keeps_no_rendering_alive(aiohttp_client):
    """The rows (and the page made of them) of a rendering that was replaced are let go: a look
    at / does not pin them until the next look."""
    ledger = _ledger()
    rows = status.Rows()
    cache = RenderCache(CollectorRegistry(), lambda: rows.snapshot(ledger))
    await cache.refresh()
    client = await aiohttp_client(make_app(cache, lambda: True))
    assert (await (await client.get("/")).text()).count("<tr class=") == 3
    looked = weakref.ref(cache.latest().status)
    await cache.refresh()
    gc.collect()
    assert looked() is None
    ledger.flow("prod", "added-later")
    await cache.refresh()  # the rows are made again for the new snapshot, the old ones reused
    assert (await (await client.get("/")).text()).count("<tr class=") == 4
