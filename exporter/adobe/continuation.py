"""Pagination: where `_links.next.href` leads, and with which query."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from yarl import URL

from exporter.adobe.errors import ApiError, StrayLink, UrlTooLong, refuses_request, short
from exporter.adobe.models import items_of, next_href
from exporter.adobe.pagestats import ListingStats
from exporter.adobe.question import answers, ids_asked

MAX_PAGES = 1000  # 100,000 runs of one flow within lookback: past that, something loops


def request_line_length(method: str, url: str, params: list[tuple[str, str]]) -> int:
    """Bytes of `METHOD /path?query HTTP/1.1` as aiohttp will send it."""
    target = URL(url).update_query(params) if params else URL(url)
    return len(method) + 1 + len(target.raw_path_qs) + len(" HTTP/1.1")


def same_collection(base_url: str, path: str, next_url: str) -> bool:
    """Whether a next page's URL is on Adobe's host and the collection asked for (`path`, e.g.
    "/runs"): a link elsewhere is an error of the listing, never data (and never gets our token)."""
    base, nxt = urlsplit(base_url), urlsplit(next_url)
    return (nxt.scheme, nxt.netloc) == (base.scheme, base.netloc) and nxt.path.rstrip("/") == (
        base.path.rstrip("/") + path
    )


def link_target(base_url: str, href: str) -> tuple[str, list[tuple[str, str]]]:
    """URL and query of `_links.next.href`, as given. The href may be absolute, relative to the
    host (`/data/foundation/flowservice/runs?…`) or relative to base_url (`/runs?…`)."""
    base = urlsplit(base_url)
    origin, base_path = f"{base.scheme}://{base.netloc}", base.path.rstrip("/")
    split = urlsplit(href)
    path = split.path or "/"
    if split.scheme and split.netloc:
        url = f"{split.scheme}://{split.netloc}{path}"
    elif base_path and (path == base_path or path.startswith(base_path + "/")):
        url = f"{origin}{path}"
    else:
        url = f"{base_url}/{path.lstrip('/')}"
    return url, parse_qsl(split.query, keep_blank_values=True)


def resolve_next(base_url: str, href: str, params: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """URL and query of the next page with our question: the href's own query when it repeats
    the filters, else our filters sent again beside its continuationToken (whether a token
    remembers the filters is undocumented)."""
    url, given = link_target(base_url, href)
    if any(k == "property" for k, _ in given):
        return url, given
    return url, [(k, v) for k, v in params if k != "continuationToken"] + given


def check_length(endpoint: str, method: str, url: str, params: list[tuple[str, str]], budget: int | None) -> None:
    """Refuse, before sending, a request line longer than the budget: a gateway would answer 414
    (or a 400), and the caller can ask for fewer IDs at once."""
    if budget is None or not params:
        return
    n = request_line_length(method, url, params)
    if n > budget:
        raise UrlTooLong(endpoint, None, f"a request line of {n} bytes passes max_url_length {budget}")


@dataclass
class _Next:
    """The next page, in the two forms it can be asked: our question with the token (`ours`), or
    the link as given (`given`: for a token that remembers the question, the shorter line)."""

    url: str
    ours: list[tuple[str, str]]
    given: list[tuple[str, str]]
    token: str


def _next(base_url: str, href: str, asked: list[tuple[str, str]]) -> _Next:
    url, given = link_target(base_url, href)
    _, ours = resolve_next(base_url, href, asked)
    return _Next(url, ours, given, dict(given).get("continuationToken", href))


def page_form(endpoint: str, nxt: _Next, stats: ListingStats, budget: int | None, ids: int) -> tuple[list, bool]:
    """The query to ask the next page with, and whether it is the link as given (its items are then
    checked against the question). Our filters go with the token while that line fits the
    budget; else the link as given, once tokens are known to carry the question; if neither
    fits, a question of several IDs is refused before it is sent (UrlTooLong: the caller asks
    for fewer IDs, whose tokens and filters are shorter), unless its token alone passes the
    budget; a question of a single ID goes anyway."""
    budget = stats.line_budget(budget)
    if nxt.ours == nxt.given or budget is None:
        return nxt.ours, False
    may_follow = stats.tokens_carry_query == "yes"
    ours, given = (request_line_length("GET", nxt.url, q) for q in (nxt.ours, nxt.given))
    if ours <= budget:
        return nxt.ours, False
    if may_follow and given <= budget:
        return nxt.given, True
    stats.tokens_wanted |= stats.tokens_carry_query == "unknown"
    if ids > 1 and request_line_length("GET", nxt.url, [("continuationToken", nxt.token)]) <= budget:
        shortest = min(ours, given) if may_follow else ours
        raise UrlTooLong(endpoint, None, f"the next page asks {shortest} bytes, past max_url_length {budget}")
    # One ID, or a token past the budget by itself (fewer IDs cannot make it fit): the shortest
    # form goes, and the gateway's answer decides (a refusal splits the chunk).
    return (nxt.given, True) if may_follow and given < ours else (nxt.ours, False)


async def collect(
    fetch: Callable[[str, list[tuple[str, str]]], Awaitable[Any]],
    base_url: str,
    endpoint: str,
    path: str,
    params: list[tuple[str, str]],
    stats: ListingStats,
    budget: int | None = None,
) -> list[Any]:
    """The items of every page of a listing, following `_links.next.href` (`fetch` gets one page),
    every request line held to `budget` (page_form). A next link that leaves the collection
    (another path or host; the spec's own example answer links `/runs` to
    `/connections?continuationToken=…`) is not followed: its continuationToken is taken onto the
    collection asked for, on Adobe's host (never our token elsewhere). If that page fails or
    repeats items already listed, the listing ends there (StrayLink, with the items before it as
    `partial`: never another collection's items as data)."""
    items: list[Any] = []
    try:
        return await _collect(fetch, base_url, endpoint, path, params, stats, budget, items)
    except StrayLink as e:
        e.partial = items  # what the pages before the stray link held: the caller's to keep
        raise


async def _collect(
    fetch: Callable[[str, list[tuple[str, str]]], Awaitable[Any]],
    base_url: str,
    endpoint: str,
    path: str,
    params: list[tuple[str, str]],
    stats: ListingStats,
    budget: int | None,
    items: list[Any],
) -> list[Any]:
    asked, url, tokens_seen = params, f"{base_url}{path}", set()
    check_length(endpoint, "GET", url, params, budget)
    taken: str | None = None  # the stray link whose token this page was asked with
    nxt: _Next | None = None
    as_given = False
    for _ in range(MAX_PAGES):
        if nxt is not None and taken is None:
            url, (params, as_given) = nxt.url, page_form(endpoint, nxt, stats, budget, ids_asked(asked))
            try:
                body, params, as_given = await _later_page(fetch, nxt, params, as_given, stats)
            except ApiError as e:
                e.first_page = False
                raise
        else:
            body = await _page(fetch, url, params, endpoint, taken)
        page, href = items_of(body), next_href(body)
        if nxt is not None and taken is None and as_given and not _answered(page, asked, stats):
            continue  # the same page again, with our filters
        if taken is not None and _repeats(page, items):
            raise StrayLink(endpoint, 200, f"the token of a stray link ({short(taken, 80)}) repeated a page")
        taken, nxt = None, None if href is None else _next(base_url, href, asked)
        stats.count_page(body.get("served", len(page)), None if nxt is None else nxt.token)
        items += page
        if nxt is None:
            return items
        if not same_collection(base_url, path, nxt.url):
            url, params, taken = _take_over(endpoint, base_url, path, asked, nxt.url, nxt.given)
        if nxt.token in tokens_seen:
            raise ApiError(endpoint, 200, "pagination loops: the same continuationToken came back")
        tokens_seen.add(nxt.token)
    raise ApiError(endpoint, 200, f"more than {MAX_PAGES} pages: giving up")


async def _later_page(
    fetch: Callable[[str, list[tuple[str, str]]], Awaitable[Any]],
    nxt: _Next,
    params: list[tuple[str, str]],
    as_given: bool,
    stats: ListingStats,
) -> tuple[Any, list[tuple[str, str]], bool]:
    """A later page in the form page_form chose. Our filters with the token refused (any refusal
    may be of the line's length: nothing is read from its words), where tokens carry the
    question, is learned from: the page is asked by the shorter link as given and, once that is
    answered, that length is kept out of later pages. Any other failure goes to the caller
    (who asks for fewer IDs if it is a refusal)."""
    try:
        body = await fetch(nxt.url, params)
    except ApiError as e:
        ours = request_line_length("GET", nxt.url, params)
        shorter = request_line_length("GET", nxt.url, nxt.given) < ours
        stats.tokens_wanted |= shorter and stats.tokens_carry_query == "unknown"
        if as_given or not refuses_request(e) or stats.tokens_carry_query != "yes" or not shorter:
            raise
        params, as_given = nxt.given, True
        body = await fetch(nxt.url, params)
        stats.line_refused(ours)  # only once the shorter line was answered: then it was the length
    stats.page_answered()
    if not as_given and stats.tokens_wanted and stats.tokens_carry_query == "unknown" and nxt.given != nxt.ours:
        await _learn_tokens(fetch, nxt, body, stats)
    return body, params, as_given


async def _learn_tokens(
    fetch: Callable[[str, list[tuple[str, str]]], Awaitable[Any]], nxt: _Next, body: Any, stats: ListingStats
) -> None:
    """Whether tokens carry the question, learned by trying once it matters (a later page did not
    fit with our filters) on a page where both forms fit: the page just answered to our filters
    is asked again by the link as given; the same items mean the
    token remembers the question, other ones (or a refusal) that it holds only a position.
    Which items a page holds is all that is read: an error's words decide nothing."""
    try:
        again = await fetch(nxt.url, nxt.given)
    except ApiError as e:
        if refuses_request(e):
            stats.tokens_carry_query = "no"
        return  # a failure of another kind (the transport's retries spent) teaches nothing
    want, got = [_ident(i) for i in items_of(body)], [_ident(i) for i in items_of(again)]
    if want or got:
        stats.tokens_carry_query = "yes" if want == got else "no"


def _answered(page: list[Any], asked: list[tuple[str, str]], stats: ListingStats) -> bool:
    """Whether a page asked by the link as given answers our question: an item that does not shows
    the token holds only a position after all."""
    if all(map(answers(asked), page)):
        return True
    stats.tokens_carry_query = "no"
    return False


async def _page(
    fetch: Callable[[str, list[tuple[str, str]]], Awaitable[Any]],
    url: str,
    params: list[tuple[str, str]],
    endpoint: str,
    taken: str | None,
) -> Any:
    """One page; a page asked with a stray link's token that fails ends the listing (StrayLink)."""
    if taken is None:
        return await fetch(url, params)
    try:
        return await fetch(url, params)
    except ApiError as e:
        raise StrayLink(endpoint, 200, f"the token of a stray link ({short(taken, 80)}) failed: {e}") from e


def _take_over(
    endpoint: str, base_url: str, path: str, asked: list[tuple[str, str]], url: str, params: list[tuple[str, str]]
) -> tuple[str, list[tuple[str, str]], str]:
    """The page a stray next link's continuationToken names, asked of our own collection with our
    own question; a stray link without a token cannot be followed at all."""
    token = dict(params).get("continuationToken")
    if token is None:
        raise StrayLink(endpoint, 200, f"the next link leads out of {path} ({short(url, 80)}): not followed")
    ours = [(k, v) for k, v in asked if k != "continuationToken"] + [("continuationToken", token)]
    return f"{base_url}{path}", ours, url


def _repeats(page: list[Any], items: list[Any]) -> bool:
    """Whether a page holds items already listed (by their `id`): a token that restarted."""
    seen = {_ident(i) for i in items} - {None}
    return any(_ident(i) in seen for i in page)


def _ident(item: Any) -> Any:
    return item.get("id") if isinstance(item, dict) else getattr(item, "id", None)
