"""The status page at `/` in a real headless Chromium (Debian's chromium + chromium-driver, driven
by selenium): one row per watched flow, unhealthy first, Adobe's strings shown as text, the filter
box without JavaScript. Without them the tests skip on a developer's machine and fail under
CI=true (.ci/install-tools installs them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import aiohttp
import pytest
from conftest import ExporterProcess, config_yaml, eventually

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
