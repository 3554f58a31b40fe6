"""YAML values → config dataclasses: the top level, `adobe:`, `sandboxes:` and the smaller sections.

load.py hands build() the expanded YAML document; each section is read key by key through
keys.py's `Section` and converters (events.py reads `events:`), and the validated `Config` of
model.py comes out. A key the file leaves out takes the dataclass's default; each error names
the dotted key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter.config import keys
from exporter.config.events import events
from exporter.config.keys import Section
from exporter.config.model import (
    FLOW_ID_RE,
    AdobeConfig,
    Config,
    ConfigError,
    DiscoverConfig,
    MetricsConfig,
    SandboxConfig,
    default_state_file,
)
from exporter.support.retry import RetryPolicy
from exporter.support.secrets import Secret


def _url_length(v: Any, path: str) -> int:
    n = keys.positive_int(v, path)
    if n < 1024:
        raise ConfigError(f"{path}: must be at least 1024 (bytes of a request line), got {n}")
    return n


def _flow_ids(v: Any, path: str) -> tuple[str, ...]:
    ids = keys.str_list(v, path)
    seen: set[str] = set()
    for i, fid in enumerate(ids):
        if not FLOW_ID_RE.match(fid):
            raise ConfigError(f"{path}[{i}]: not a flow ID (expected a UUID), got {fid!r}")
        if fid.lower() in seen:
            raise ConfigError(f"{path}[{i}]: flow {fid} is listed twice")
        seen.add(fid.lower())
    return ids


def _regex(v: Any, path: str) -> str:
    regex = keys.text(v, path)
    try:
        re.compile(regex)
    except re.error as e:
        raise ConfigError(f"{path}: not a valid regular expression: {e}") from None
    return regex


def _discover(v: Any, path: str) -> DiscoverConfig:
    if v is None:
        return DiscoverConfig()
    o = Section(v, path)
    cfg = DiscoverConfig(
        **o.given(
            {
                "name_regex": _regex,
                "source_names": _regex,
                "flow_spec_ids": keys.str_list,
                "states": keys.str_list,
                "exclude": _flow_ids,
            }
        )
    )
    o.done()
    if not cfg.states:
        raise ConfigError(f"{o.key('states')}: must list at least one state")
    return cfg


def _secret_file(v: Any, path: str) -> Secret:
    name = keys.text(v, path)
    try:
        text = Path(name).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {name}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {name} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{path}: {name} is empty")
    return Secret(text)


def _adobe(v: Any, path: str) -> AdobeConfig:
    o = Section(v, path)
    client_id = o.take("client_id", keys.text)
    has_secret, has_file = o.has("client_secret"), o.has("client_secret_file")
    if has_secret and has_file:
        raise ConfigError(f"{o.key('client_secret_file')}: give client_secret or client_secret_file, not both")
    if not (has_secret or has_file):
        raise ConfigError(f"{o.key('client_secret')}: required key is missing (or give client_secret_file)")
    if has_secret:
        secret = o.take("client_secret", lambda x, p: Secret(keys.text(x, p)))
    else:
        secret = o.take("client_secret_file", _secret_file)
    cfg = AdobeConfig(
        client_id=client_id,
        client_secret=secret,
        org_id=o.take("org_id", keys.text),
        **o.given({"scopes": keys.str_list, "token_url": keys.url, "base_url": keys.url}),
    )
    o.done()
    if not cfg.scopes:
        raise ConfigError(f"{o.key('scopes')}: must list at least one scope")
    return cfg


def _sandbox(o: Section, names: set[str]) -> SandboxConfig:
    name = o.take("name", keys.text)
    if name in names:
        raise ConfigError(f"{o.key('name')}: sandbox {name!r} is listed twice")
    names.add(name)
    # `discover: {}` (or `discover:` with nothing under it) means every enabled source flow.
    discover = o.optional("discover", _discover)
    if discover is None and not o.has("flows"):
        raise ConfigError(f"{o.key('flows')}: required key is missing (give flows, discover, or both)")
    given = o.given({"flows": _flow_ids})
    if not given.get("flows") and discover is None:
        raise ConfigError(f"{o.key('flows')}: must list at least one flow ID (or give discover)")
    given |= o.given({"include_destination_flows": keys.boolean})
    o.done()
    return SandboxConfig(name, discover=discover, **given)


def _sandboxes(v: Any, path: str) -> tuple[SandboxConfig, ...]:
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list of sandboxes, got {keys.kind(v)}")
    if not v:
        raise ConfigError(f"{path}: must list at least one sandbox")
    names: set[str] = set()
    return tuple(_sandbox(Section(item, f"{path}[{i}]"), names) for i, item in enumerate(v))


# `retry:` keys as the file names them → RetryPolicy's fields.
_RETRY_FIELDS = {
    "max_attempts": "max_attempts",
    "max_time": "max_elapsed",
    "initial_backoff": "base_delay",
    "max_backoff": "max_delay",
}


def _retry(v: Any, path: str) -> RetryPolicy:
    o = Section(v, path)
    given = o.given(
        {
            "max_attempts": keys.positive_int,
            "max_time": keys.duration,
            "initial_backoff": keys.duration,
            "max_backoff": keys.duration,
        }
    )
    o.done()
    return RetryPolicy(**{_RETRY_FIELDS[k]: value for k, value in given.items()})


def _rate(v: Any, path: str) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{path}: expected a number of requests per second, got {keys.kind(v)} {v!r}")
    if v < 0:
        raise ConfigError(f"{path}: must not be negative, got {v}")
    return float(v) or None  # 0: no limit


def _strategy(v: Any, path: str) -> str:
    s = keys.text(v, path)
    if s not in ("batched", "per_flow"):
        raise ConfigError(f"{path}: expected batched or per_flow, got {s!r}")
    return s


def _metrics(v: Any, path: str) -> MetricsConfig:
    o = Section(v, path)
    cfg = MetricsConfig(**o.given({"run_duration_histogram": keys.boolean, "activities": keys.boolean}))
    o.done()
    return cfg


def _state_file(o: Section, env: Mapping[str, str]) -> str | None:
    """The file named, the default place when the key is absent, or None (`state_file: null`
    turns persistence off)."""
    if not o.has("state_file"):
        return default_state_file(env)
    value = o.value.pop("state_file")
    return None if value is None else keys.text(value, o.key("state_file"))


def _url_template(v: Any, path: str) -> str:
    """A link template into Adobe's UI: https, and only the placeholders the links fill in."""
    template = keys.text(v, path)
    try:
        filled = template.format(tenant="t", sandbox="s", flow_id="f", run_id="r")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{path}: placeholders are {{tenant}}, {{sandbox}}, {{flow_id}}, {{run_id}} ({e})") from None
    if not filled.startswith("https://"):
        raise ConfigError(f"{path}: expected an https:// URL, got {template!r}")
    return template


# The top level's optional keys, in the order they are read (and their errors found).
_TOP_LEVEL: dict[str, keys.Conv] = {
    "poll_interval": keys.duration,
    "max_concurrency": keys.positive_int,
    "request_timeout": keys.duration,
    "lookback": keys.duration,
    "metadata_refresh": keys.duration,
    "discovery_interval": keys.duration,
    "discovery_grace": keys.count,
    "retry": _retry,
    "max_requests_per_second": _rate,
    "max_error_codes_per_flow": keys.positive_int,
    "run_history_per_flow": keys.count,
    "experience_tenant": keys.text,
    "experience_flow_url": _url_template,
    "experience_run_url": _url_template,
    "metrics": _metrics,
    "fetch_strategy": _strategy,
    "batch_overlap": keys.duration,
    "reconcile_interval": keys.duration,
    "max_url_length": _url_length,
    "batch_retry_interval": keys.duration,
}


def build(raw: Any, source: str, env: Mapping[str, str], literal_secret: bool) -> Config:
    """The Config from the expanded YAML document (`source` names the file in messages)."""
    o = Section(raw, "")
    cfg = Config(
        adobe=o.take("adobe", _adobe),
        sandboxes=o.take("sandboxes", _sandboxes),
        **o.given(_TOP_LEVEL),
        state_file=_state_file(o, env),
        **o.given({"events": events}),
        source=source,
        literal_secret=literal_secret,
    )
    o.done()
    return cfg
