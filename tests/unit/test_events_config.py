"""The `events:` config section: defaults, and every mistake one line naming the key, exit 2."""

from __future__ import annotations

import pytest

from exporter.cli.main import main
from exporter.config import DEFAULT_KEY_BASE_URL, DEFAULT_WEBHOOK_PATH, load_config

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
