"""Pagination: where `_links.next.href` leads, and with which query."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from yarl import URL


@dataclass
class PageStats:
    """What the pages of one sandbox looked like: Adobe documents neither page sizes nor token
    lengths, so they are measured (`--check` reports them; the batched strategy sizes its
    requests by the longest token)."""

    pages: int = 0
    largest_page: int = 0  # most items on one page
    smallest_full_page: int | None = None  # fewest items on a page that still had a next link
    longest_token: int = 0  # longest continuationToken (or next link, when it has none)

    def page(self, items: int, next_token: str | None) -> None:
        self.pages += 1
        self.largest_page = max(self.largest_page, items)
        if next_token is not None:
            self.longest_token = max(self.longest_token, len(next_token))
            if self.smallest_full_page is None or items < self.smallest_full_page:
                self.smallest_full_page = items


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


def resolve_next(base_url: str, href: str, params: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """URL and query of the next page from `_links.next.href`.

    The href may be absolute, relative to the host (`/data/foundation/flowservice/runs?…`) or
    relative to base_url (`/runs?…`). Whether it repeats our filters is undocumented, so when it
    carries only a continuationToken our own filters are sent again with it."""
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
    query = parse_qsl(split.query, keep_blank_values=True)
    if any(k == "property" for k, _ in query):
        return url, query
    return url, [(k, v) for k, v in params if k != "continuationToken"] + query
