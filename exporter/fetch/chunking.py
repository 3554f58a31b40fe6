"""Chunks of IDs sized by the URL budget: the whole request line of every page, continuation
token included, stays under `max_url_length` (gateways commonly cap it near 8 KB and answer 414
or 400). Adobe's token length is undocumented, so the longest one seen so far is reserved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from exporter.paging import request_line_length

T = TypeVar("T")
TOKEN_PARAM = len("&continuationToken=")


def fit(
    items: Sequence[T],
    ident: Callable[[T], str],
    params: Callable[[list[str]], list[tuple[str, str]]],
    url: str,
    budget: int | None,
    reserve: int,
    limit: int,
) -> list[list[T]]:
    """`items` in order, cut into chunks of at most `limit` whose request (`params` of their IDs)
    leaves `reserve` bytes of the budget free. Every chunk has at least one item."""
    if budget is None or not items:
        return [list(items[i : i + limit]) for i in range(0, len(items), limit)]
    one = request_line_length("GET", url, params([ident(items[0])]))
    two = request_line_length("GET", url, params([ident(items[0]), ident(items[0])]))
    per_id = max(1, two - one)  # IDs of one kind have one length (UUIDs)
    room = budget - reserve - one
    per_chunk = max(1, min(limit, 1 + room // per_id)) if room >= 0 else 1
    return [list(items[i : i + per_chunk]) for i in range(0, len(items), per_chunk)]


def reserve_for(longest_token: int) -> int:
    """Bytes a later page's request line needs beyond the first page's."""
    return TOKEN_PARAM + longest_token if longest_token else 0
