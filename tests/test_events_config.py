"""The `events:` config section: defaults, and every mistake one line naming the key,
exit 2; a state file without the events' position still loads."""

from __future__ import annotations

import json

import pytest
from conftest import ExporterProcess, config_yaml, events_yaml, eventually, ready, scrape, value

from exporter.cli.main import main
from exporter.config import DEFAULT_KEY_BASE_URL, DEFAULT_WEBHOOK_PATH, load_config
from exporter.simulator import JOURNAL_PATH

BASE = """\
adobe: {client_id: c, client_secret: s, org_id: o@AdobeOrg}
sandboxes: [{name: prod, flows: [c9cef9cb-c934-4467-8ef9-cbc934546741]}]
"""


def test_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "events:\n  webhook:\n")
    ev = load_config(path, env={}).events
    assert ev is not None and ev.journal_url is None and ev.webhook is not None
    assert (ev.webhook.path, ev.webhook.public_key_base_url) == (DEFAULT_WEBHOOK_PATH, DEFAULT_KEY_BASE_URL)
    assert (ev.sweep_interval, ev.quiet_after, ev.announce_grace) == (900.0, 600.0, 300.0)
    path.write_text(BASE + "events: {journal_url: 'https://events-va6.adobe.io/events/x/y/z', sweep_interval: 30m}\n")
    ev = load_config(path, env={}).events
    assert ev is not None and ev.webhook is None and ev.sweep_interval == 1800.0
    path.write_text(BASE)
    assert load_config(path, env={}).events is None


@pytest.mark.parametrize(
    "section, key, reason",
    [
        ("events: {}\n", "events.journal_url", "give journal_url, webhook, or both"),
        ("events: {journal: x}\n", "events.journal", "unknown key"),
        ("events: {journal_url: events.adobe.io}\n", "events.journal_url", "URL"),
        ("events: {webhook: {pth: /x}}\n", "events.webhook.pth", "unknown key"),
        ("events: {webhook: {path: adobe}}\n", "events.webhook.path", "URL path"),
        ("events: {webhook: {path: /metrics}}\n", "events.webhook.path", "exporter's own"),
        ("events: {webhook: {public_key_base_url: 'ftp://x'}}\n", "events.webhook.public_key_base_url", "URL"),
        ("events: {webhook: {}, sweep_interval: soon}\n", "events.sweep_interval", "not a duration"),
        ("events: {webhook: {}, announce_grace: -1}\n", "events.announce_grace", "positive"),
        ("events: [webhook]\n", "events", "expected a mapping"),
    ],
)
def test_mistakes_exit_2_naming_the_key(tmp_path, capsys, section, key, reason):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + section)
    assert main(["--config.file", str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and reason in err, err


async def test_a_state_file_from_before_events_still_loads(esim, tmp_path):
    esim.world.add_flow("prod", "a")
    text = config_yaml(esim) + f"state_file: {tmp_path / 'state.json'}\n"
    (tmp_path / "c.yaml").write_text(text)
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml")) as exp:
        await eventually(lambda: ready(exp), what="the first cycle")
        assert await exp.stop() == 0
    assert "events" not in json.loads((tmp_path / "state.json").read_text())
    (tmp_path / "c.yaml").write_text(text + events_yaml(esim, webhook=False))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml"), log_path=str(tmp_path / "log")) as exp:
        await eventually(lambda: ready(exp), what="the first cycle")
        await eventually(lambda: [r for r in esim.requests if r["path"] == JOURNAL_PATH], what="a journal read")
        m = await scrape(exp.url)
        assert value(m, "aep_events_journal_resets_total", reason="url_changed") == 0
    assert "moved aside" not in (tmp_path / "log").read_text()
