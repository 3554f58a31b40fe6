"""HTTP to Adobe's Flow Service: one aiohttp session, Adobe's headers, retries, throttling.

Retries: connection errors, timeouts, 500/502/503/504 (Adobe answers some throttling with a 5xx),
429 and unparsable bodies are retried with exponential backoff and full jitter, capped in attempts
and total time. A 429 holds back *every* request of this client until its Retry-After has passed,
not just the one that got it. A 401 (or a first 403) gets one new token and one more try.
exporter/adobe/client.py builds the Flow Service's calls on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from exporter.adobe.continuation import ListingStats
from exporter.adobe.errors import ApiError, describe, final_error, short
from exporter.adobe.ims import TokenProvider
from exporter.adobe.models import ParseError
from exporter.adobe.ratelimit import Hold, TokenBucket
from exporter.config import AdobeConfig
from exporter.support.logs import fields
from exporter.support.retry import RETRY_STATUSES, RetryPolicy, backoff_delay, retry_after_seconds
from exporter.support.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)


def loads(answer: bytes) -> Any:
    """orjson where it can (about twice as fast on a page of runs, so the interpreter lock is held
    half as long); the standard library for what orjson refuses and json accepts (NaN, integers
    past 64 bits), so what parses is unchanged."""
    try:
        return orjson.loads(answer)
    except orjson.JSONDecodeError:
        return json.loads(answer)


def decode(answer: bytes, validate: Callable[[Any], Any], shape: Callable[[Any], Any] | None) -> Any:
    """Parse, check and shape one answer in one step. A page of runs as parsed JSON is some four
    times its size in Python objects, and ten times what its Run models take: shaped page by page,
    the parsed pages of a listing never exist at once (at 10,000 flows they were 140 MB at the
    peak of a baseline cycle)."""
    data = loads(answer)
    validate(data)
    return shape(data) if shape is not None else data


# Answers parsed on the event loop; larger ones in a worker thread. A page of 100 runs is about
# 300 KB and takes some 5 ms to parse even with orjson: on the loop, a listing of them is a stall.
PARSE_ON_LOOP_BYTES = 16 * 1024


class Transport:
    """One API call at a time, with Adobe's headers, retries and throttling."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        adobe: AdobeConfig,
        tokens: TokenProvider,
        metrics: SelfMetrics,
        max_concurrency: int,
        request_timeout: float,
        retry: RetryPolicy = RetryPolicy(),
        max_requests_per_second: float | None = None,
        max_url_length: int | None = None,
        max_retry_after: float | None = None,
    ) -> None:
        self._session = session
        self._adobe = adobe
        self._tokens = tokens
        self._metrics = metrics
        self._limit = asyncio.Semaphore(max_concurrency)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._retry = retry
        self._hold = Hold(metrics.api_throttle_wait)  # after a 429, no request is sent for a while
        self._bucket = TokenBucket(max_requests_per_second) if max_requests_per_second else None
        self.max_url_length = max_url_length  # None: no check before sending
        self._max_retry_after = max_retry_after  # a Retry-After longer than this is cut to it
        self.listing_stats: dict[str, ListingStats] = {}  # by sandbox
        # By sandbox: IDs in the question (`id==a,b,…`) whose listing brought the longest token, so
        # that a token's bytes per ID say whether tokens grow with the query (`--check` reports it).
        self.longest_token_ids: dict[str, int] = {}
        # By (endpoint, sandbox): when a listing cut short was last logged, and the cuts since.
        self.cuts_logged: dict[tuple[str, str], tuple[float, int]] = {}
        # The token fetched because of a 403: a 403 with it is a permission problem, not a stale
        # token, and gets no further renewal (a forbidden flow must not cost a token a cycle).
        self._renewed_on_403: str | None = None

    # --- one request, with retries ----------------------------------------------------------------

    async def _request(
        self,
        endpoint: str,
        method: str,
        url: str,
        params: list[tuple[str, str]],
        sandbox: str,
        validate: Callable[[Any], Any],
        body: Any = None,
        idempotent: bool = True,
        shape: Callable[[Any], Any] | None = None,
    ) -> Any:
        """One API call with retries. `shape`, if given, turns the parsed answer into what the
        caller keeps, in the same step as parsing (see `decode`). A request that is not idempotent (creating a run) is retried
        only where Adobe cannot have acted on it: a refused connection, or a 429. A 401 or 403
        gets one new token and one more try (the spec lists 403 for an unusable token too; once
        per token for 403)."""
        started = time.monotonic()
        attempt = 0
        renewed_token = after_403 = closed = False
        while True:
            attempt += 1
            await self._hold.wait()
            if self._bucket is not None:
                await self._bucket.acquire()
            token = await self._tokens.token()
            if after_403:
                self._renewed_on_403, after_403 = token, False
            request_id = str(uuid.uuid4())
            try:
                status, headers, answer = await self._send(
                    endpoint, method, url, params, sandbox, token, request_id, body
                )
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                reason, problem, wait = "error", f"transport failure ({type(e).__name__})", None
                closed = closed_before_answer(e)
                if not idempotent and not isinstance(e, aiohttp.ClientConnectorError):
                    raise ApiError(endpoint, None, f"{problem}; not retried: Adobe may have acted on it") from None
            else:
                closed = False
                if status < 500 and status not in (401, 403, 429):  # a gateway's 5xx or 429 may precede auth
                    self._tokens.served(token)
                if status in (401, 403) and not renewed_token and not (status == 403 and token == self._renewed_on_403):
                    renewed_token, after_403 = True, status == 403
                    self._tokens.invalidate(token)
                    self._metrics.api_retries.labels(endpoint, str(status)).inc()
                    attempt -= 1  # a token renewal is not a failed attempt
                    continue
                if 200 <= status < 300:
                    data, unparsable = await self._parse(endpoint, answer, validate, shape)
                    if unparsable is None:
                        return data
                    if not idempotent:
                        raise ApiError(endpoint, status, unparsable)
                    reason, problem, wait = "parse", unparsable, None
                else:
                    reason, problem, wait = self._failure(endpoint, status, headers, answer, request_id, idempotent)
            await self._pause_before_retry(endpoint, sandbox, started, attempt, reason, problem, wait, closed)

    async def _parse(
        self, endpoint: str, answer: bytes, validate: Callable[[Any], Any], shape: Callable[[Any], Any] | None
    ) -> tuple[Any, str | None]:
        """(the parsed body, None), or (None, what is wrong with it)."""
        try:
            # A big page parsed on the event loop would stall every scrape meanwhile.
            if len(answer) < PARSE_ON_LOOP_BYTES:
                return decode(answer, validate, shape), None
            return await asyncio.to_thread(decode, answer, validate, shape), None
        except (ValueError, ParseError) as e:
            self._metrics.parse_errors.labels(endpoint).inc()
            return None, f"unparsable answer ({short(str(e))})"

    def _failure(
        self, endpoint: str, status: int, headers: Any, answer: bytes, request_id: str, idempotent: bool
    ) -> tuple[str, str, float | None]:
        """(retry reason, problem, wait) for an answer worth another try; raises for the others.
        A Retry-After is cut to max_retry_after: a throttled cycle ends rather than freezing."""
        if status == 429:
            self._metrics.api_throttled.inc()
            wait = retry_after_seconds(headers.get("Retry-After"))
            if wait is not None and self._max_retry_after is not None:
                wait = min(wait, self._max_retry_after)
            return "429", "throttled (HTTP 429)", wait
        if status in RETRY_STATUSES and idempotent:
            return str(status), f"HTTP {status}: {describe(answer)}", None
        raise final_error(endpoint, status, answer, request_id)

    async def _pause_before_retry(
        self,
        endpoint: str,
        sandbox: str,
        started: float,
        attempt: int,
        reason: str,
        problem: str,
        wait: float | None,
        closed: bool = False,
    ) -> None:
        """Back off before the next attempt, or give up (attempts or total time spent)."""
        delay = wait if wait is not None else backoff_delay(self._retry, attempt)
        if reason == "429":
            self._hold.extend(delay)
        elapsed = time.monotonic() - started
        if attempt >= self._retry.max_attempts or elapsed + delay > self._retry.max_elapsed:
            raise ApiError(
                endpoint, None, f"{problem}; gave up after {attempt} attempts in {elapsed:.1f}s", closed=closed
            )
        self._metrics.api_retries.labels(endpoint, reason).inc()
        log.debug("%s; retry %d in %.2fs", problem, attempt, delay, extra=fields(sandbox=sandbox, endpoint=endpoint))
        await asyncio.sleep(delay)

    async def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        params: list[tuple[str, str]],
        sandbox: str,
        token: str,
        request_id: str,
        body: Any = None,
    ) -> tuple[int, Any, bytes]:
        headers = self.headers(sandbox, token, request_id)
        code = "error"
        async with self._limit:
            started = time.monotonic()
            try:
                async with self._session.request(
                    method, url, params=params, headers=headers, json=body, timeout=self._timeout
                ) as resp:
                    code = str(resp.status)
                    body = await resp.read()
                    return resp.status, resp.headers, body
            finally:
                self._metrics.api_requests.labels(endpoint, code).inc()
                self._metrics.api_request_duration.labels(endpoint).observe(time.monotonic() - started)

    def headers(self, sandbox: str, token: str, request_id: str) -> dict[str, str]:
        """The headers every Flow Service call carries."""
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": self._adobe.client_id,
            "x-gw-ims-org-id": self._adobe.org_id,
            "x-sandbox-name": sandbox.lower(),
            "x-request-id": request_id,
            "Accept": "application/json",
        }


def closed_before_answer(e: BaseException) -> bool:
    """Whether the server closed (or reset) a connection it had accepted before answering: a
    refusal of the request, for some gateways. A connection never made, and a timeout, are not."""
    if isinstance(e, aiohttp.ClientConnectorError):
        return False
    return isinstance(e, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
