"""Config file: its text in (read from a path, or given), a validated `Config` out.

The YAML is parsed (a key given twice is an error), `${VAR}` expanded from the environment, and
the document handed to build.py. Every error is a `ConfigError` whose message names the file and the dotted key, so the CLI can
print one line and exit 2. Validation is hand-written rather than schema-driven because the
messages are the product here: "sandboxes[0].flows[1]: not a flow ID (expected a UUID)" beats a
generic validator's paragraph.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from exporter.config.build import build
from exporter.config.model import Config, ConfigError, expand_env


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_text(path: str | os.PathLike[str], what: str, error: type[Exception]) -> str:
    """A file the user names (the config, an objectives file), as UTF-8 text; `error` with one
    line naming the file and what went wrong, never a traceback."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text") from None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a config file. Raises ConfigError, never anything else."""
    text = read_text(path, "config file", ConfigError)
    return parse_config(text, source=str(path), env=os.environ if env is None else env)


def parse_config(text: str, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    try:
        if raw is None:
            raise ConfigError("config file is empty")
        env = os.environ if env is None else env
        expanded = expand_env(raw, env)
        literal = (
            isinstance(raw, dict)
            and isinstance(raw.get("adobe"), dict)
            and isinstance(raw["adobe"].get("client_secret"), str)
            and "${" not in raw["adobe"]["client_secret"]
        )
        return build(expanded, source, env, literal)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
