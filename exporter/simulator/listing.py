"""Listings of the simulated Flow Service: `property=` filters, continuation tokens, next links.

Filters are parsed as the profile says Adobe reads them (comma lists split, refused or read
literally; `createdAt>` honoured or dropped). Continuation tokens are opaque strings of the
profile's length; the service keeps only a short key per token (the rest is padding derived from
it), with the position and, if the profile says tokens remember them, the first page's filters.
Cursors are forgotten after a while, as Adobe's surely are.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from exporter.simulator.profile import ApiProfile

Filter = tuple[str, str, list[str]]
_PROPERTY_RE = re.compile(r"^([A-Za-z_][\w.\[\]]*?)(==|!=|>=|<=|>|<)(.*)$")
_KEY_LEN = 16


class Refused(ValueError):
    """A filter the service answers with a 400: (Adobe error code, message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Query:
    """What a listing asks: its filters, order and page size (from the request or a cursor)."""

    properties: tuple[str, ...]
    orderby: str | None
    limit: str | None

    def pairs(self) -> list[tuple[str, str]]:
        out = [("property", p) for p in self.properties]
        if self.orderby:
            out.append(("orderby", self.orderby))
        if self.limit:
            out.append(("limit", self.limit))
        return out


@dataclass(frozen=True)
class Cursor:
    kind: str  # the collection it continues: a token is refused on another path
    offset: int
    query: Query | None  # None: the token does not remember the filters
    at: float  # when it was issued (service clock), to forget it


def parse_filters(properties: tuple[str, ...], profile: ApiProfile) -> list[Filter]:
    """The filters as this Adobe reads them. Raises Refused for what it answers with a 400."""
    filters = []
    for p in properties:
        m = _PROPERTY_RE.match(p)
        if not m:
            raise Refused("FLOW-1453-400", f"Invalid query value {p}")
        name, op, value = m.groups()
        listed = op == "==" and "," in value and profile.lists_apply_to(name)
        if listed and profile.comma_lists == "refuse":
            raise Refused("FLOW-1443-400", f"Operator '==' is not allowed for multiple values of {name}")
        values = [value] if listed and profile.comma_lists == "literal" else value.split(",")
        if op != "==" and len(values) > 1:
            raise Refused("FLOW-1453-400", f"Operator '{op}' is not allowed for multiple values")
        if name == "createdAt" and op in (">", ">=") and not profile.created_after:
            continue  # silently ignored
        filters.append((name, op, values))
    return filters


def lookup(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def match(item: dict[str, Any], f: Filter) -> bool:
    name, op, values = f
    actual = lookup(item, name)
    if op in ("==", "!="):
        hit = str(actual) in values or (isinstance(actual, str) and actual.lower() in [v.lower() for v in values])
        return hit if op == "==" else not hit
    try:
        a, b = float(actual), float(values[0])
    except (TypeError, ValueError):
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def sort_items(items: list[dict[str, Any]], order: str | None) -> list[dict[str, Any]]:
    if order:
        key = order.lstrip("+-")
        items.sort(key=lambda i: (i.get(key) is None, i.get(key) or 0), reverse=order.startswith("-"))
    return items


class Cursors:
    """Continuation tokens issued and not yet forgotten."""

    def __init__(self) -> None:
        self._by_key: dict[str, Cursor] = {}  # insertion order is issue order: oldest first

    def __len__(self) -> int:
        return len(self._by_key)

    def issue(self, cursor: Cursor, length: int) -> str:
        key = secrets.token_urlsafe(12)[:_KEY_LEN]
        self._by_key[key] = cursor
        return key + _padding(key, length - len(key))

    def find(self, token: str) -> Cursor | None:
        key = token[:_KEY_LEN]
        cursor = self._by_key.get(key)
        if cursor is None or token[_KEY_LEN:] != _padding(key, len(token) - _KEY_LEN):
            return None
        return cursor

    def forget_before(self, cutoff: float) -> None:
        old = []
        for key, cursor in self._by_key.items():  # oldest first: stop at the first one kept
            if cursor.at >= cutoff:
                break
            old.append(key)
        for key in old:
            del self._by_key[key]


def _padding(key: str, n: int) -> str:
    """Token characters past the key: opaque-looking, and checkable without storing them."""
    if n <= 0:
        return ""
    seed = hashlib.sha256(key.encode()).hexdigest()
    return (seed * (n // len(seed) + 1))[:n]


def next_href(
    profile: ApiProfile, origin: str, base_path: str, kind: str, token: str, first: bool, query: Query
) -> str:
    """`_links.next.href` in the profile's form."""
    prefix = {
        "host": base_path,
        "base": "",
        "absolute": origin + base_path,
        "mixed": base_path if first else "",
    }[profile.next_link]
    pairs = query.pairs() if profile.repeat_query else []
    return f"{prefix}/{kind}?{urlencode([*pairs, ('continuationToken', token)])}"
