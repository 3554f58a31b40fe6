"""The `events:` section of the config (Adobe I/O Events, docs/events.md): its validators, with
the same exact-key errors as the rest of exporter/config/build.py."""

from __future__ import annotations

import re
from typing import Any

from exporter.config.build import _duration, _Obj, _str, _url
from exporter.config.model import (
    DEFAULT_KEY_BASE_URL,
    DEFAULT_WEBHOOK_PATH,
    ConfigError,
    EventsConfig,
    WebhookConfig,
)

# Paths the exporter serves itself: the webhook cannot take one of them.
_RESERVED_PATHS = ("/", "/metrics", "/healthz", "/ready", "/docs")
_WEB_PATH_RE = re.compile(r"^/[A-Za-z0-9._~/-]*$")


def _web_path(v: Any, path: str) -> str:
    s = _str(v, path)
    if not _WEB_PATH_RE.match(s) or "//" in s:
        raise ConfigError(f"{path}: expected a URL path such as {DEFAULT_WEBHOOK_PATH}, got {s!r}")
    if s.rstrip("/") in _RESERVED_PATHS or s == "/":
        raise ConfigError(f"{path}: {s} is one of the exporter's own paths")
    return s


def _webhook(v: Any, path: str) -> WebhookConfig:
    if v is None:
        return WebhookConfig()  # `webhook:` with nothing under it: the defaults
    o = _Obj(v, path)
    cfg = WebhookConfig(
        path=o.take("path", _web_path, DEFAULT_WEBHOOK_PATH),
        public_key_base_url=o.take("public_key_base_url", _url, DEFAULT_KEY_BASE_URL),
    )
    o.done()
    return cfg


def events(v: Any, path: str) -> EventsConfig:
    o = _Obj(v, path)
    webhook = _webhook(o.value.pop("webhook"), o.key("webhook")) if o.has("webhook") else None
    cfg = EventsConfig(
        journal_url=o.take("journal_url", _url, None),
        webhook=webhook,
        sweep_interval=o.take("sweep_interval", _duration, 900.0),
        quiet_after=o.take("quiet_after", _duration, 600.0),
        announce_grace=o.take("announce_grace", _duration, 300.0),
    )
    o.done()
    if cfg.journal_url is None and cfg.webhook is None:
        raise ConfigError(f"{o.key('journal_url')}: required key is missing (give journal_url, webhook, or both)")
    return cfg
