"""Reading one YAML mapping key by key: the converters every section of the config shares.

A `Section` takes the expanded YAML value of one mapping and its dotted path; build.py and
events.py take its keys one by one through converters (`conv(value, dotted_key)`) that return the
typed value or raise a `ConfigError` naming the key, then `done()` rejects whatever is left. A key
left out (or null) is not filled in here: `given()` leaves it to the dataclass's default, so each
default is written once, in model.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from exporter.config.model import ConfigError, join_key, parse_duration

Conv = Callable[[Any, str], Any]


class Section:
    """A mapping being validated: take keys one by one, then reject whatever is left."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"{path or 'top level'}: expected a mapping, got {kind(value)}")
        self.value = dict(value)
        self.path = path

    def key(self, name: str) -> str:
        return join_key(self.path, name)

    def has(self, name: str) -> bool:
        return name in self.value

    def take(self, name: str, conv: Conv) -> Any:
        """A required key's value, converted."""
        if name not in self.value:
            raise ConfigError(f"{self.key(name)}: required key is missing")
        return conv(self.value.pop(name), self.key(name))

    def optional(self, name: str, conv: Conv) -> Any:
        """A sub-section's value, converted even when null (`discover:` with nothing under it
        means its defaults); None when the key is absent."""
        return conv(self.value.pop(name), self.key(name)) if name in self.value else None

    def given(self, convs: Mapping[str, Conv]) -> dict[str, Any]:
        """The keys of `convs` the file gives a value (not null), converted, in that order: a
        dataclass's keyword arguments, the others left to its defaults."""
        out: dict[str, Any] = {}
        for name, conv in convs.items():
            value = self.value.pop(name, None)
            if value is not None:
                out[name] = conv(value, self.key(name))
        return out

    def done(self) -> None:
        if self.value:
            unknown = sorted(str(k) for k in self.value)
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")


def kind(v: Any) -> str:
    """What a value is, as a message names it ('nothing' for null)."""
    return "nothing" if v is None else type(v).__name__


def text(v: Any, path: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ConfigError(f"{path}: expected a string, got {kind(v)}")
    s = str(v).strip()
    if not s:
        raise ConfigError(f"{path}: must not be empty")
    return s


def url(v: Any, path: str) -> str:
    s = text(v, path)
    if not re.match(r"^https?://[^/\s]+", s):
        raise ConfigError(f"{path}: expected an http(s) URL, got {s!r}")
    return s.rstrip("/")


def positive_int(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{path}: expected a whole number, got {kind(v)} {v!r}")
    if v < 1:
        raise ConfigError(f"{path}: must be at least 1, got {v}")
    return v


def count(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{path}: expected a whole number, 0 or more, got {kind(v)} {v!r}")
    return v


def duration(v: Any, path: str) -> float:
    try:
        return parse_duration(v)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def str_list(v: Any, path: str) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list, got {kind(v)}")
    return tuple(text(item, f"{path}[{i}]") for i, item in enumerate(v))


def boolean(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{path}: expected true or false, got {kind(v)} {v!r}")
    return v
