"""YAML values → config dataclasses, one validator per key, each error naming the dotted key."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from exporter.config.model import (
    DEFAULT_BASE_URL,
    DEFAULT_SCOPES,
    DEFAULT_TOKEN_URL,
    FLOW_ID_RE,
    AdobeConfig,
    Config,
    ConfigError,
    DiscoverConfig,
    MetricsConfig,
    SandboxConfig,
    default_state_file,
    join_key,
    parse_duration,
)
from exporter.support.retry import RetryPolicy
from exporter.support.secrets import Secret

# --- validation helpers -------------------------------------------------------------------------


class _Obj:
    """A mapping being validated: take keys one by one, then reject whatever is left."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"{path or 'top level'}: expected a mapping, got {_kind(value)}")
        self.value = dict(value)
        self.path = path

    def key(self, name: str) -> str:
        return join_key(self.path, name)

    def has(self, name: str) -> bool:
        return name in self.value

    def take(self, name: str, conv: Callable[[Any, str], Any], default: Any = ...) -> Any:
        if name not in self.value or self.value[name] is None and default is not ...:
            self.value.pop(name, None)
            if default is ...:
                raise ConfigError(f"{self.key(name)}: required key is missing")
            return default
        return conv(self.value.pop(name), self.key(name))

    def done(self) -> None:
        if self.value:
            unknown = sorted(str(k) for k in self.value)
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")


def _kind(v: Any) -> str:
    return "nothing" if v is None else type(v).__name__


def _str(v: Any, path: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ConfigError(f"{path}: expected a string, got {_kind(v)}")
    s = str(v).strip()
    if not s:
        raise ConfigError(f"{path}: must not be empty")
    return s


def _url(v: Any, path: str) -> str:
    s = _str(v, path)
    if not re.match(r"^https?://[^/\s]+", s):
        raise ConfigError(f"{path}: expected an http(s) URL, got {s!r}")
    return s.rstrip("/")


def _positive_int(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{path}: expected a whole number, got {_kind(v)} {v!r}")
    if v < 1:
        raise ConfigError(f"{path}: must be at least 1, got {v}")
    return v


def _count(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{path}: expected a whole number, 0 or more, got {_kind(v)} {v!r}")
    return v


def _url_length(v: Any, path: str) -> int:
    n = _positive_int(v, path)
    if n < 1024:
        raise ConfigError(f"{path}: must be at least 1024 (bytes of a request line), got {n}")
    return n


def _duration(v: Any, path: str) -> float:
    try:
        return parse_duration(v)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def _str_list(v: Any, path: str) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list, got {_kind(v)}")
    return tuple(_str(item, f"{path}[{i}]") for i, item in enumerate(v))


def _flow_ids(v: Any, path: str) -> tuple[str, ...]:
    ids = _str_list(v, path)
    seen: set[str] = set()
    for i, fid in enumerate(ids):
        if not FLOW_ID_RE.match(fid):
            raise ConfigError(f"{path}[{i}]: not a flow ID (expected a UUID), got {fid!r}")
        if fid.lower() in seen:
            raise ConfigError(f"{path}[{i}]: flow {fid} is listed twice")
        seen.add(fid.lower())
    return ids


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{path}: expected true or false, got {_kind(v)} {v!r}")
    return v


def _discover(v: Any, path: str) -> DiscoverConfig:
    if v is None:
        return DiscoverConfig()
    o = _Obj(v, path)
    regex, sources = _regex(o, "name_regex"), _regex(o, "source_names")
    cfg = DiscoverConfig(
        name_regex=regex,
        source_names=sources,
        flow_spec_ids=o.take("flow_spec_ids", _str_list, ()),
        states=o.take("states", _str_list, ("enabled",)),
        exclude=o.take("exclude", _flow_ids, ()),
    )
    o.done()
    if not cfg.states:
        raise ConfigError(f"{o.key('states')}: must list at least one state")
    return cfg


def _regex(o: _Obj, key: str) -> str | None:
    regex = o.take(key, _str, None)
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as e:
            raise ConfigError(f"{o.key(key)}: not a valid regular expression: {e}") from None
    return regex


def _secret_file(v: Any, path: str) -> Secret:
    name = _str(v, path)
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
    o = _Obj(v, path)
    client_id = o.take("client_id", _str)
    has_secret, has_file = o.has("client_secret"), o.has("client_secret_file")
    if has_secret and has_file:
        raise ConfigError(f"{o.key('client_secret_file')}: give client_secret or client_secret_file, not both")
    if not (has_secret or has_file):
        raise ConfigError(f"{o.key('client_secret')}: required key is missing (or give client_secret_file)")
    if has_secret:
        secret = o.take("client_secret", lambda x, p: Secret(_str(x, p)))
    else:
        secret = o.take("client_secret_file", _secret_file)
    cfg = AdobeConfig(
        client_id=client_id,
        client_secret=secret,
        org_id=o.take("org_id", _str),
        scopes=o.take("scopes", _str_list, DEFAULT_SCOPES),
        token_url=o.take("token_url", _url, DEFAULT_TOKEN_URL),
        base_url=o.take("base_url", _url, DEFAULT_BASE_URL),
    )
    o.done()
    if not cfg.scopes:
        raise ConfigError(f"{o.key('scopes')}: must list at least one scope")
    return cfg


def _sandboxes(v: Any, path: str) -> tuple[SandboxConfig, ...]:
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list of sandboxes, got {_kind(v)}")
    if not v:
        raise ConfigError(f"{path}: must list at least one sandbox")
    out: list[SandboxConfig] = []
    names: set[str] = set()
    for i, item in enumerate(v):
        o = _Obj(item, f"{path}[{i}]")
        name = o.take("name", _str)
        if name in names:
            raise ConfigError(f"{o.key('name')}: sandbox {name!r} is listed twice")
        names.add(name)
        # `discover: {}` (or `discover:` with nothing under it) means every enabled source flow.
        discover = _discover(o.value.pop("discover"), o.key("discover")) if o.has("discover") else None
        if discover is None and not o.has("flows"):
            raise ConfigError(f"{o.key('flows')}: required key is missing (give flows, discover, or both)")
        flows = o.take("flows", _flow_ids, ())
        if not flows and discover is None:
            raise ConfigError(f"{o.key('flows')}: must list at least one flow ID (or give discover)")
        include_destinations = o.take("include_destination_flows", _bool, False)
        o.done()
        out.append(SandboxConfig(name, flows, discover, include_destinations))
    return tuple(out)


def _retry(v: Any, path: str) -> RetryPolicy:
    o = _Obj(v, path)
    policy = RetryPolicy(
        max_attempts=o.take("max_attempts", _positive_int, 5),
        max_elapsed=o.take("max_time", _duration, 60.0),
        base_delay=o.take("initial_backoff", _duration, 0.5),
        max_delay=o.take("max_backoff", _duration, 20.0),
    )
    o.done()
    return policy


def _rate(v: Any, path: str) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{path}: expected a number of requests per second, got {_kind(v)} {v!r}")
    if v < 0:
        raise ConfigError(f"{path}: must not be negative, got {v}")
    return float(v) or None  # 0: no limit


def _strategy(v: Any, path: str) -> str:
    s = _str(v, path)
    if s not in ("batched", "per_flow"):
        raise ConfigError(f"{path}: expected batched or per_flow, got {s!r}")
    return s


def _metrics(v: Any, path: str) -> MetricsConfig:
    o = _Obj(v, path)
    cfg = MetricsConfig(
        run_duration_histogram=o.take("run_duration_histogram", _bool, False),
        activities=o.take("activities", _bool, False),
    )
    o.done()
    return cfg


def _state_file(o: _Obj, env: Mapping[str, str]) -> str | None:
    if o.has("state_file") and o.value["state_file"] is None:
        o.value.pop("state_file")
        return None  # `state_file: null` turns persistence off
    return o.take("state_file", _str, default_state_file(env))


def build(raw: Any, source: str, env: Mapping[str, str], literal_secret: bool) -> Config:
    """The Config from the expanded YAML document (`source` names the file in messages)."""
    from exporter.config.events import events  # it builds on this module's helpers

    o = _Obj(raw, "")
    cfg = Config(
        adobe=o.take("adobe", _adobe),
        sandboxes=o.take("sandboxes", _sandboxes),
        poll_interval=o.take("poll_interval", _duration, 60.0),
        max_concurrency=o.take("max_concurrency", _positive_int, 8),
        request_timeout=o.take("request_timeout", _duration, 30.0),
        lookback=o.take("lookback", _duration, 86400.0),
        metadata_refresh=o.take("metadata_refresh", _duration, 300.0),
        discovery_interval=o.take("discovery_interval", _duration, 600.0),
        discovery_grace=o.take("discovery_grace", _count, 2),
        retry=o.take("retry", _retry, RetryPolicy()),
        max_requests_per_second=o.take("max_requests_per_second", _rate, None),
        max_error_codes_per_flow=o.take("max_error_codes_per_flow", _positive_int, 50),
        metrics=o.take("metrics", _metrics, MetricsConfig()),
        fetch_strategy=o.take("fetch_strategy", _strategy, "batched"),
        batch_overlap=o.take("batch_overlap", _duration, 600.0),
        reconcile_interval=o.take("reconcile_interval", _duration, 3600.0),
        max_url_length=o.take("max_url_length", _url_length, 6144),
        batch_retry_interval=o.take("batch_retry_interval", _duration, 1800.0),
        state_file=_state_file(o, env),
        events=o.take("events", events, None),
        source=source,
        literal_secret=literal_secret,
    )
    o.done()
    return cfg
