"""Errors of Flow Service calls, and Adobe's own words from an error body."""

from __future__ import annotations

import json
from typing import Any

from exporter.adobe.models import ParseError


class ApiError(Exception):
    """A Flow Service request that failed for good. `status` is None for transport failures;
    `closed` says the last of them was the server closing the connection before it answered (as
    some gateways refuse a request line too long), not a timeout or a refused connection."""

    def __init__(
        self, endpoint: str, status: int | None, message: str, body: bytes = b"", closed: bool = False
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.closed = closed
        # Whether a listing's first page failed (its question itself), not a page after it, whose
        # line carries Adobe's token as well: only the first says anything of the question's form.
        self.first_page = True
        # The error answer's first bytes, for callers that must tell refusals apart (the message
        # keeps only a short summary): never logged or shown.
        self.body = body[:8192]


class UrlTooLong(ApiError):
    """The request line would pass (or did pass: 414) what Adobe's gateway accepts; `status` is
    None when we refused to send it. The caller sends fewer IDs a request. A 400 is never read as
    this from its words: the batched listings try a smaller request for any refusal instead."""


class StrayLink(ApiError):
    """A next link led out of the collection asked for (another path or host), and its token
    could not be taken onto ours: the listing ends there, never another collection's items as
    data, and our token is not sent there. `partial`: the items of the pages before it."""

    partial: list[Any] = []


class NotFound(ApiError):
    """404: the resource is gone, or hidden from this credential by access labels."""


def refuses_request(answer: object) -> bool:
    """Whether an answer refuses the request itself, which may be its size: a 4xx other than auth
    (401/403), existence (404) and throttling (429), which the transport and the caller handle;
    414 and our own budget's refusal included; or the connection closed before an answer (every
    retry of it). The body's words decide nothing (gateways word a long line in many ways, or not
    at all): a smaller request is tried instead."""
    if isinstance(answer, UrlTooLong) or (isinstance(answer, ApiError) and answer.closed):
        return True
    return (
        isinstance(answer, ApiError)
        and answer.status is not None
        and 400 <= answer.status < 500
        and answer.status not in (401, 403, 404, 429)
    )


def has_id(data: Any) -> None:
    item = (
        data["items"][0] if isinstance(data, dict) and isinstance(data.get("items"), list) and data["items"] else data
    )
    if not isinstance(item, dict) or not item.get("id"):
        raise ParseError("the answer has no run id")


def short(s: str, n: int = 160) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def describe(body: bytes) -> str:
    """Adobe's own words from an error body, whichever of its error formats it used."""
    try:
        data = json.loads(body)
    except ValueError:
        return short(body.decode("utf-8", "replace")) or "empty body"
    if not isinstance(data, dict):
        return short(str(data))
    parts = [
        str(data[k])
        for k in ("title", "errorMessage", "detail", "error_code", "message", "error", "error_description")
        if data.get(k)
    ]
    kind = data.get("type")
    if isinstance(kind, str) and "/errors/" in kind:
        parts.insert(0, kind.rsplit("/", 1)[-1])
    return short(": ".join(parts)) if parts else short(str(data))


def final_error(endpoint: str, status: int, answer: bytes, request_id: str) -> ApiError:
    """The error for an answer not worth another try, in Adobe's own words."""
    message = f"HTTP {status}: {describe(answer)} (request id {request_id})"
    if status == 404:
        return NotFound(endpoint, status, message, answer)
    if status == 414:  # the one status that says "too long" whatever the body's words
        return UrlTooLong(endpoint, status, message, answer)
    if status == 403:
        message += ": the credential lacks permission for this sandbox or flow (check its product profile)"
    return ApiError(endpoint, status, message, answer)
