"""Config: the YAML file (and flags) in, validated frozen dataclasses out.

load.py reads the file and expands `${VAR}`; build.py validates every key into the dataclasses of
model.py (events.py the `events:` section), reading each mapping with keys.py's converters; a key
left out takes the dataclass's default. shard.py parses `--shard`. Every problem is one
`ConfigError` naming the file and the dotted key, so the CLI prints a line and exits 2.
This face re-exports what the other rooms use; modules inside config/ import each other directly.
"""

from exporter.config.load import load_config, parse_config
from exporter.config.model import (
    DEFAULT_BASE_URL,
    DEFAULT_KEY_BASE_URL,
    DEFAULT_SCOPES,
    DEFAULT_TOKEN_URL,
    DEFAULT_WEBHOOK_PATH,
    FLOW_ID_RE,
    AdobeConfig,
    Config,
    ConfigError,
    DiscoverConfig,
    EventsConfig,
    MetricsConfig,
    SandboxConfig,
    WebhookConfig,
    default_state_file,
    expand_env,
    parse_duration,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_KEY_BASE_URL",
    "DEFAULT_SCOPES",
    "DEFAULT_TOKEN_URL",
    "DEFAULT_WEBHOOK_PATH",
    "FLOW_ID_RE",
    "AdobeConfig",
    "Config",
    "ConfigError",
    "DiscoverConfig",
    "EventsConfig",
    "MetricsConfig",
    "SandboxConfig",
    "WebhookConfig",
    "default_state_file",
    "expand_env",
    "load_config",
    "parse_config",
    "parse_duration",
]
