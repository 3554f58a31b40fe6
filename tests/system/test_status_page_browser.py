"""The status page at `/`: one row per watched flow, unhealthy first, Adobe's strings escaped,
served from the snapshot the render step built. The browser tests load it in a real headless
Chromium (Debian's chromium + chromium-driver, driven by selenium); without them they skip on a
developer's machine and fail under CI=true (.ci/install-tools installs them)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import ExporterProcess, config_yaml, eventually
from prometheus_client import CollectorRegistry

from exporter.adobe.models import Flow
from exporter.adobe.runfacts import RunFacts
from exporter.exposition import status_page as status
from exporter.exposition.render import RenderCache
from exporter.exposition.server import make_app
from exporter.ledger.ledger import Ledger
from exporter.simulator import World

HOSTILE = "<img src=x onerror=alert(1)>"
REPO = Path(__file__).resolve().parents[2]


def need_browser() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium and driver:
        return chromium, driver
    message = "headless Chromium tests need Debian's chromium and chromium-driver and selenium (.ci/install-tools)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


async def rows_shown(base: str, expected: int) -> bool:
    """The page lists `expected` flows, each polled at least once."""
    async with aiohttp.ClientSession() as s, s.get(base + "/") as r:
        page = await r.text()
    return page.count("<tr class=") == expected and "not yet" not in page


async def test_status_page_in_headless_chromium(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait

    world = World()
    world.add_seed("prod", shift_to_now=True)
    hostile = world.add_flow("dev", HOSTILE, period=None)
    world.finish_run(world.start_run(hostile.id).id, "failed")
    ok = world.add_flow("dev", "crm-ok")
    world.finish_run(world.start_run(ok.id).id, "success")
    from exporter.simulator import Simulator, start_simulator

    sim = Simulator(world)
    runner, origin = await start_simulator(sim)
    sim.origin = origin  # type: ignore[attr-defined]
    try:
        path = tmp_path / "c.yaml"
        path.write_text(config_yaml(sim))
        async with ExporterProcess("--config.file", str(path)) as exp:
            await eventually(lambda: rows_shown(exp.base, 3), what="3 polled flows on /")
            browser.get(exp.base + "/")
            assert "AEP Flow Exporter" in browser.title
            rows = browser.find_elements("css selector", "#flows tr")
            assert len(rows) == 3  # one row per watched flow
            # The hostile name is text on the page, not an element; no alert ever opened.
            assert browser.find_elements("css selector", "img") == []
            assert HOSTILE in rows[0].text  # its last run failed: unhealthy rows come first
            assert rows[0].get_attribute("class") == "unhealthy"
            assert [r.get_attribute("class") for r in rows[1:]] == ["ok", "ok"]
            with pytest.raises(NoAlertPresentException):
                browser.switch_to.alert  # noqa: B018 (an onerror=alert(1) that ran would be open here)
            links = {a.text: a.get_attribute("href") for a in browser.find_elements("css selector", "nav a")}
            assert {k: v.removeprefix(exp.base) for k, v in links.items()} == {
                "Metrics": "/metrics",
                "Health": "/healthz",
                "Readiness": "/ready",
                "Docs": "/docs",
            }
            # The filter box works without JavaScript: a GET form.
            box = browser.find_element("name", "q")
            box.send_keys("crm-ok")
            box.submit()
            WebDriverWait(browser, 10).until(staleness_of(rows[0]))  # the filtered page has loaded
            filtered = browser.find_elements("css selector", "#flows tr")
            assert browser.current_url.endswith("/?q=crm-ok") and len(filtered) == 1
            assert "crm-ok" in filtered[0].text
            browser.get(exp.base + "/?q=" + "%3Cimg")
            assert len(browser.find_elements("css selector", "#flows tr")) == 1
            assert browser.find_elements("css selector", "img") == []
            assert console_errors(browser) == []
    finally:
        await runner.cleanup()


async def test_demo_page_screenshot(browser, tmp_path):
    """The demo's page, as the README shows it: AEP_UPDATE_SCREENSHOT=1 writes docs/status-page.png."""
    async with ExporterProcess("--demo") as exp:
        await eventually(lambda: rows_shown(exp.base, 6), timeout=30, what="the demo's 6 flows on /")
        browser.get(exp.base + "/")
        assert len(browser.find_elements("css selector", "#flows tr")) == 6
        assert console_errors(browser) == []
        shot = tmp_path / "status-page.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")
        if os.environ.get("AEP_UPDATE_SCREENSHOT") == "1":
            shutil.copy(shot, REPO / "docs" / "status-page.png")
    assert (REPO / "docs" / "status-page.png").read_bytes().startswith(b"\x89PNG")


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
