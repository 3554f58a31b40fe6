"""Chunks of IDs sized by the URL budget: the first page's request line of each chunk fits
`max_url_length` (gateways commonly cap it near 8 KB and answer 414, a bare 400, or nothing).
The pages after the first are held to the same budget by the client (adobe/continuation.py: our
filters beside the token while they fit, else the link as given); when one is refused or cannot
fit either way, the chunk is split and the sandbox's chunk limit halved, and it grows back by
itself while listings fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from exporter.adobe.continuation import request_line_length

T = TypeVar("T")


def fit(
    items: Sequence[T],
    ident: Callable[[T], str],
    params: Callable[[list[str]], list[tuple[str, str]]],
    url: str,
    budget: int | None,
    limit: int,
) -> list[list[T]]:
    """`items` in order, cut into chunks of at most `limit` whose first request (`params` of their
    IDs) fits the budget. Every chunk has at least one item."""
    if budget is None or not items:
        return [list(items[i : i + limit]) for i in range(0, len(items), limit)]
    one = request_line_length("GET", url, params([ident(items[0])]))
    two = request_line_length("GET", url, params([ident(items[0]), ident(items[0])]))
    per_id = max(1, two - one)  # IDs of one kind have one length (UUIDs)
    room = budget - one
    per_chunk = max(1, min(limit, 1 + room // per_id)) if room >= 0 else 1
    return [list(items[i : i + per_chunk]) for i in range(0, len(items), per_chunk)]
