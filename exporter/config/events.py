"""The `events:` section of the config (Adobe I/O Events, docs/events.md): its YAML mapping in,
an `EventsConfig` out, read with keys.py's converters and the same exact-key errors as every
other section."""

from __future__ import annotations

import re
from typing import Any

from exporter.config import keys
from exporter.config.keys import Section
from exporter.config.model import DEFAULT_WEBHOOK_PATH, ConfigError, EventsConfig, WebhookConfig

# Paths the exporter serves itself: the webhook cannot take one of them.
_RESERVED_PATHS = ("/", "/metrics", "/healthz", "/ready", "/docs")
_WEB_PATH_RE = re.compile(r"^/[A-Za-z0-9._~/-]*$")


def _web_path(v: Any, path: str) -> str:
    s = keys.text(v, path)
    if not _WEB_PATH_RE.match(s) or "//" in s:
        raise ConfigError(f"{path}: expected a URL path such as {DEFAULT_WEBHOOK_PATH}, got {s!r}")
    if s.rstrip("/") in _RESERVED_PATHS or s == "/":
        raise ConfigError(f"{path}: {s} is one of the exporter's own paths")
    return s


def _webhook(v: Any, path: str) -> WebhookConfig:
    if v is None:
        return WebhookConfig()  # `webhook:` with nothing under it: the defaults
    o = Section(v, path)
    cfg = WebhookConfig(**o.given({"path": _web_path, "public_key_base_url": keys.url}))
    o.done()
    return cfg


def events(v: Any, path: str) -> EventsConfig:
    o = Section(v, path)
    webhook = o.optional("webhook", _webhook)
    cfg = EventsConfig(
        webhook=webhook,
        **o.given(
            {
                "journal_url": keys.url,
                "sweep_interval": keys.duration,
                "quiet_after": keys.duration,
                "announce_grace": keys.duration,
            }
        ),
    )
    o.done()
    if cfg.journal_url is None and cfg.webhook is None:
        raise ConfigError(f"{o.key('journal_url')}: required key is missing (give journal_url, webhook, or both)")
    return cfg
