"""What a listing asked, read back from its query: how many IDs it names, whether an item
answers it, and whether the answer is whole (Partial: a listing that ended at a next link it could
not follow). A page fetched by following `_links.next.href` as given (without our filters) is
checked item by item against the question: a token that holds only a position leads to an
unfiltered page, whose items name flows or runs we never asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Params = list[tuple[str, str]]

# The `==` filters whose values an item's field must be among, by the field the models name it.
_ID_FILTERS = {"flowId": "flow_id", "id": "id"}


def ids_asked(params: Params) -> int:
    """How many IDs a listing's question names (`property=flowId==a,b,c`: 3; no list: 1)."""
    lists = [v.split("==", 1)[1] for k, v in params if k == "property" and "==" in v]
    return max((len(v.split(",")) for v in lists), default=1)


def answers(params: Params) -> Callable[[Any], bool]:
    """Whether an item (a model, or a model beside its JSON) answers the question's ID filters;
    filters on other fields (createdAt>…) are the caller's to check, as for any page."""
    wanted: list[tuple[str, set[str]]] = []
    for key, value in params:
        name, sep, values = value.partition("==")
        if key == "property" and sep and name in _ID_FILTERS:
            wanted.append((name, {v.lower() for v in values.split(",")}))

    def check(item: Any) -> bool:
        model = item[0] if isinstance(item, tuple) else item
        for name, among in wanted:
            got = model.get(name) if isinstance(model, dict) else getattr(model, _ID_FILTERS[name], None)
            if not isinstance(got, str) or got.lower() not in among:
                return False
        return True

    return check


class Partial(list[Any]):
    """The items of a listing that ended before its last page (a next link to another collection
    whose token our collection would not take): true items of the question, but not all of them,
    so nothing may be concluded from what they lack (a run not listed is not gone, a bound does
    not move past them)."""


def incomplete(items: object) -> bool:
    return isinstance(items, Partial)


def order_of(created: Iterable[float | None]) -> str:
    """Whether a listing's items came newest first, as `orderby=-createdAt` asks, from their
    createdAt in the order received: ok, ignored, or unknown (fewer than two to tell)."""
    times = [t for t in created if t is not None]
    if len(times) < 2:
        return "unknown"
    return "ok" if all(a >= b for a, b in zip(times, times[1:])) else "ignored"
