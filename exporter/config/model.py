"""The config's types: validated, frozen dataclasses, and the error every problem becomes.

load.py reads the YAML; build.py (events.py for `events:`) validates it into these types. Their
field defaults are the config's defaults: a key the file leaves out takes the one written here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.support.retry import RetryPolicy
from exporter.support.secrets import Secret

DEFAULT_SCOPES = (
    "openid",
    "AdobeID",
    "read_organizations",
    "additional_info.projectedProductContext",
    "session",
)
DEFAULT_TOKEN_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
DEFAULT_BASE_URL = "https://platform.adobe.io/data/foundation/flowservice"
DEFAULT_WEBHOOK_PATH = "/adobe-io-events"
DEFAULT_KEY_BASE_URL = "https://static.adobeioevents.com"  # Adobe I/O Events' public key host

FLOW_ID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config problem, worded for the operator: '<file>: <key>: <what is wrong>'."""


@dataclass(frozen=True)
class AdobeConfig:
    client_id: str
    client_secret: Secret
    org_id: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    token_url: str = DEFAULT_TOKEN_URL
    base_url: str = DEFAULT_BASE_URL


@dataclass(frozen=True)
class DiscoverConfig:
    """Which flows of a sandbox to find by listing them (GET /flows)."""

    name_regex: str | None = None  # matched with re.search against the flow's name
    flow_spec_ids: tuple[str, ...] = ()
    states: tuple[str, ...] = ("enabled",)
    exclude: tuple[str, ...] = ()
    # Matched with re.search against the name of the flow's source connector (its connection
    # spec's name, e.g. "Amazon S3"; exporter/fetch/names.py).
    source_names: str | None = None

    def matches_name(self, name: str | None) -> bool:
        return self.name_regex is None or re.search(self.name_regex, name or "") is not None

    def matches_source(self, source_name: str | None) -> bool:
        return self.source_names is None or re.search(self.source_names, source_name or "") is not None


@dataclass(frozen=True)
class SandboxConfig:
    name: str
    flows: tuple[str, ...] = ()
    discover: DiscoverConfig | None = None
    include_destination_flows: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    """Families that cost many series per flow and are rarely needed: off unless asked for."""

    run_duration_histogram: bool = False  # aep_flow_run_duration_seconds: 16 series per flow
    activities: bool = False  # aep_flow_last_completed_run_activity_*: 4 series per activity


@dataclass(frozen=True)
class WebhookConfig:
    """Adobe I/O Events pushes announcements to `path` of the exporter's own listener."""

    path: str = DEFAULT_WEBHOOK_PATH
    public_key_base_url: str = DEFAULT_KEY_BASE_URL  # signature keys are fetched from here only


@dataclass(frozen=True)
class EventsConfig:
    """Runs as Adobe announces them (docs/events.md): a journal to pull, a webhook, or both."""

    journal_url: str | None = None
    webhook: WebhookConfig | None = None
    sweep_interval: float = 900.0  # the poll interval while events flow
    quiet_after: float = 600.0  # no sign of life from the events this long: poll at poll_interval again
    announce_grace: float = 300.0  # a run a sweep counted is "missed" unless announced within this


# Adobe's UI pages of a dataflow's activity and of one of its runs ({tenant}, {sandbox},
# {flow_id}, {run_id} are filled in, URL-quoted).
EXPERIENCE_FLOW_URL = (
    "https://experience.adobe.com/#/@{tenant}/sname:{sandbox}/platform/source/dataflows/{flow_id}/activity"
)
EXPERIENCE_RUN_URL = EXPERIENCE_FLOW_URL + "/{run_id}"


@dataclass(frozen=True)
class Config:
    adobe: AdobeConfig
    sandboxes: tuple[SandboxConfig, ...]
    poll_interval: float = 60.0
    max_concurrency: int = 8
    request_timeout: float = 30.0
    lookback: float = 86400.0
    metadata_refresh: float = 300.0
    discovery_interval: float = 600.0
    discovery_grace: int = 2  # discovery listings a flow may be missing from before it retires
    retry: RetryPolicy = RetryPolicy()
    max_requests_per_second: float | None = None  # None: no client-side limit
    max_error_codes_per_flow: int = 50
    run_history_per_flow: int = 50  # completed runs each flow's page shows (0: none kept)
    experience_tenant: str | None = None  # Experience Cloud tenant: links into Adobe's UI when set
    experience_flow_url: str = EXPERIENCE_FLOW_URL
    experience_run_url: str = EXPERIENCE_RUN_URL
    metrics: MetricsConfig = MetricsConfig()
    fetch_strategy: str = "batched"  # or "per_flow"
    batch_overlap: float = 600.0  # batched listings reach back this far before the last one
    reconcile_interval: float = 3600.0  # batched: list the whole lookback window this often
    max_url_length: int = 6144  # batched: request line budget, continuation token included
    batch_retry_interval: float = 1800.0  # batched: after Adobe refused lists, try them again this often
    state_file: str | None = None  # None: the ledger is not persisted
    events: EventsConfig | None = None  # None: polling alone
    source: str = field(default="<config>", compare=False)
    # Whether the secret was written into the file itself rather than taken from the environment
    # or a secret file: the CLI warns when such a file is readable by others.
    literal_secret: bool = field(default=False, compare=False)

    def watched_flows(self) -> list[tuple[str, str]]:
        """(sandbox, flow_id) pairs named in the config, in config order (discovery adds more)."""
        return [(s.name, f) for s in self.sandboxes for f in s.flows]


def parse_duration(value: Any) -> float:
    """Seconds from '30s', '5m', '1h30m', '2d', '250ms' or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION_RE.match(text)
            if not text or not m or not any(m.groups()):
                raise ValueError(
                    f"not a duration: {value!r} (use e.g. 30s, 5m, 1h30m, 2d, or a number of seconds)"
                ) from None
            d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
            seconds = d * 86400 + h * 3600 + mi * 60 + s + ms / 1000
    else:
        raise ValueError(f"not a duration: {value!r}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def expand_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} (or ${VAR:-default}) inside every string value; '$$' is a literal '$'."""
    if isinstance(value, dict):
        return {k: expand_env(v, env, join_key(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set")

    return _ENV_RE.sub(sub, value)


def default_state_file(env: Mapping[str, str]) -> str:
    """state.json in systemd's $STATE_DIRECTORY (its first entry) when set, else a file in the
    working directory, as Prometheus keeps data/ there."""
    state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    return os.path.join(state_dir, "state.json") if state_dir else "aep-flow-exporter-state.json"


def join_key(path: str, key: str) -> str:
    """The dotted key of `key` under `path` (as error messages name it)."""
    return f"{path}.{key}" if path else key
