"""Pagination: where `_links.next.href` leads, and with which query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit


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
