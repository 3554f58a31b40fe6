"""A flow's page at `/flows/{id}` in a real headless Chromium (as the status page's tests): its
runs with the numbers the simulator served, the charts drawn, no console error, no request
leaving the exporter, and an error message holding markup shown as text."""

from __future__ import annotations

import os
import shutil

import aiohttp
from conftest import ExporterProcess, config_yaml, eventually
from test_status_page_browser import REPO, browser, console_errors  # noqa: F401 (browser: a fixture)

from exporter.simulator import SEED_FLOW_ID, SEED_RUN_ID, Simulator, World, start_simulator

HOSTILE = '<img src=x onerror=alert(1)><script>alert("run")</script>'


async def flows_polled(base: str, n: int) -> list[dict] | None:
    async with aiohttp.ClientSession() as s, s.get(base + "/api/v1/flows") as r:
        flows = (await r.json())["flows"]
    return flows if len(flows) == n and all(f["last_run"] for f in flows) else None


def resources_elsewhere(driver, base: str) -> list[str]:
    """What the page loaded (the Resource Timing entries), less the exporter's own."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not n.startswith(base)]


async def test_flow_page_in_headless_chromium(browser, tmp_path):  # noqa: F811
    world = World()
    world.add_seed("prod", shift_to_now=True)
    flow = world.add_flow("prod", "orders <b>", period=None)
    runs = []
    for i, outcome in enumerate(["success", "partial", "failed"]):
        run = world.start_run(flow.id, created_ms=world.now_ms() - (4 - i) * 60_000)
        runs.append(world.finish_run(run.id, outcome, completed_ms=run.created_ms + (i + 1) * 10_000))
    runs[-1].run_errors = [{"code": "CONNECTOR-1001-500", "message": HOSTILE}]
    sim = Simulator(world)
    runner, origin = await start_simulator(sim)
    sim.origin = origin  # type: ignore[attr-defined]
    try:
        path = tmp_path / "c.yaml"
        path.write_text(config_yaml(sim, extra="experience_tenant: acme\n"))
        async with ExporterProcess("--config.file", str(path)) as exp:
            await eventually(lambda: flows_polled(exp.base, 2), what="2 polled flows")
            # From `/`, the row's name leads to the page.
            browser.get(exp.base + "/")
            browser.find_element("css selector", f'a.name[href="/flows/{flow.id}"]').click()
            assert browser.current_url == f"{exp.base}/flows/{flow.id}"
            assert browser.find_element("css selector", "h1").text == "orders <b>"
            rows = browser.find_elements("css selector", "#runs tr")
            assert [r.find_element("css selector", "td.id").text for r in rows] == [r.id for r in reversed(runs)]
            cells = [c.text for c in rows[-1].find_elements("css selector", "td")]  # the oldest
            took = str((runs[0].completed_ms - runs[0].started_ms) / 1000)
            assert cells[4:9] == [took, "success", str(runs[0].input_records), str(runs[0].output_records), "0"]
            assert HOSTILE in rows[0].find_element("css selector", "td.err").text  # as text
            assert browser.find_elements("css selector", "img, #runs script") == []
            assert len(browser.find_elements("css selector", "svg")) == 2
            assert len(browser.find_elements("css selector", "svg rect")) == 3 * 3 + 3  # records ×3, durations
            link = rows[0].find_element("css selector", "td.id a").get_attribute("href")
            assert link.endswith(f"@acme/sname:prod/platform/source/dataflows/{flow.id}/activity/{runs[-1].id}")
            assert console_errors(browser) == []
            assert resources_elsewhere(browser, exp.base) == []
            # The demo's monitoring flow: the seed run's numbers, as Adobe's tutorial gives them.
            browser.get(f"{exp.base}/flows/{SEED_FLOW_ID}")
            [seed] = browser.find_elements("css selector", "#runs tr")
            cells = [c.text for c in seed.find_elements("css selector", "td")]
            assert cells[0] == SEED_RUN_ID and cells[6:9] == ["100", "99", "1"]
            assert console_errors(browser) == [] and resources_elsewhere(browser, exp.base) == []
    finally:
        await runner.cleanup()


async def test_demo_flow_page_screenshot(browser, tmp_path):  # noqa: F811
    """A demo flow's page, as the README shows it: AEP_UPDATE_SCREENSHOT=1 writes docs/flow-page.png."""
    async with ExporterProcess("--demo") as exp:
        flows = await eventually(lambda: flows_polled(exp.base, 6), timeout=30, what="the demo's 6 flows")
        [mariadb] = [f for f in flows if f["name"] == "mariadb-customers"]
        browser.get(f"{exp.base}/flows/{mariadb['id']}")
        assert len(browser.find_elements("css selector", "#runs tr")) >= 3
        assert console_errors(browser) == []
        shot = tmp_path / "flow-page.png"
        assert browser.save_screenshot(str(shot))
        if os.environ.get("AEP_UPDATE_SCREENSHOT") == "1":
            shutil.copy(shot, REPO / "docs" / "flow-page.png")
    assert (REPO / "docs" / "flow-page.png").read_bytes().startswith(b"\x89PNG")
