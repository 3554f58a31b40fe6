"""The objectives file: its YAML in, frozen objectives out, or one `ObjectivesError` naming the key.

    objectives:
      - name: orders-fresh
        kind: freshness          # or run_success
        flows: {sandbox: prod, flow_name: {regex: "s3-orders.*"}}
        threshold: 2h            # freshness: data older than this is stale
        target: 99.5%            # or 0.995
        window: 30d              # the default

Keys are read with the config's converters (config/keys.py), so the errors read as the config's do.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from exporter.config import ConfigError
from exporter.config import keys as k
from exporter.config.load import UniqueKeyLoader, read_text
from exporter.objectives.model import FRESHNESS, KINDS, SELECTOR_LABELS, Match, Objective, ObjectivesError, Selector

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def load_objectives(path: str | os.PathLike[str]) -> tuple[Objective, ...]:
    return parse_objectives(read_text(path, "objectives file", ObjectivesError), str(path))


def parse_objectives(text: str, source: str = "<objectives>") -> tuple[Objective, ...]:
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ObjectivesError(f"{source}: invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    try:
        return _file(raw)
    except ConfigError as e:
        raise ObjectivesError(f"{source}: {e}") from None


def _file(raw: Any) -> tuple[Objective, ...]:
    if raw is None:
        raise ConfigError("objectives file is empty")
    top = k.Section(raw, "")
    items = top.take("objectives", _list)
    top.done()
    objectives = tuple(_objective(item, f"objectives[{i}]") for i, item in enumerate(items))
    seen: set[str] = set()
    for i, o in enumerate(objectives):
        if o.name in seen:
            raise ConfigError(f"objectives[{i}].name: {o.name!r} is given twice")
        seen.add(o.name)
    return objectives


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list) or not v:
        raise ConfigError(f"{path}: expected a list of objectives, got {k.kind(v) if v != [] else 'an empty list'}")
    return v


def _objective(raw: Any, path: str) -> Objective:
    s = k.Section(raw, path)
    name = s.take("name", _name)
    kind = s.take("kind", _kind)
    values: dict[str, Any] = dict(name=name, kind=kind, target=s.take("target", _target))
    values["selector"] = s.optional("flows", _selector) or Selector()
    values.update(s.given({"window": k.duration, "description": k.text}))
    if kind == FRESHNESS:
        values["threshold"] = s.take("threshold", k.duration)
    else:
        values.update(s.given({"min_runs": k.positive_int, "run_interval": k.duration}))
    s.done()  # a freshness objective's min_runs, or a run_success objective's threshold, is unknown here
    o = Objective(**values)
    if o.window < 3 * 86400:
        raise ConfigError(f"{s.key('window')}: must be at least 3d (the longest alert window), got {o.window:g}s")
    return o


def _name(v: Any, path: str) -> str:
    s = k.text(v, path)
    if not NAME_RE.match(s):
        raise ConfigError(f"{path}: letters, digits, '_', '.' and '-' only, starting with a letter or digit, got {s!r}")
    return s


def _kind(v: Any, path: str) -> str:
    s = k.text(v, path)
    if s not in KINDS:
        raise ConfigError(f"{path}: expected one of {', '.join(KINDS)}, got {s!r}")
    return s


def _target(v: Any, path: str) -> float:
    """0.995, 99.5 or '99.5%': a share of good strictly between 0 and 1 (100% leaves no budget).
    A plain number from 1 up is a percentage, as in Sloth's specs."""
    wrong = f"{path}: expected a share like 0.995 or a percentage like 99.5%, got {v!r}"
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            share = float(v.strip()[:-1]) / 100
        except ValueError:
            raise ConfigError(wrong) from None
    else:
        try:
            number = float(v) if not isinstance(v, bool) and isinstance(v, (int, float, str)) else None
        except ValueError:
            number = None
        if number is None:
            raise ConfigError(wrong)
        share = number / 100 if number >= 1 else number
    if not 0 < share < 1:
        raise ConfigError(f"{path}: must be above 0% and below 100% (100% leaves no error budget), got {v!r}")
    return share


def _selector(v: Any, path: str) -> Selector:
    if v is None:
        return Selector()
    s = k.Section(v, path)
    matches = [m for label in SELECTOR_LABELS if (m := s.optional(label, _match(label))) is not None]
    s.done()
    return Selector(tuple(matches))


def _match(label: str):
    def conv(v: Any, path: str) -> Match:
        if isinstance(v, dict):
            section = k.Section(v, path)
            regex = section.take("regex", k.text)
            section.done()
            try:
                re.compile(regex)
            except re.error as e:
                raise ConfigError(f"{path}.regex: not a regular expression: {e}") from None
            return Match(label, regex=regex)
        values = k.str_list(v, path) if isinstance(v, list) else (k.text(v, path),)
        if not values:
            raise ConfigError(f"{path}: expected at least one value")
        return Match(label, values=values)

    return conv
