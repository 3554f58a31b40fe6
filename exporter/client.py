"""Flow Service REST client: one aiohttp session, Adobe's headers, pagination, retries, throttling.

Retries: connection errors, timeouts, 500/502/503/504 (Adobe answers some throttling with a 5xx),
429 and unparsable bodies are retried with exponential backoff and full jitter, capped in attempts
and total time. A 429 holds back *every* request of this client until its Retry-After has passed,
not just the one that got it. A 401 (or a first 403) gets one new token and one more try.
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

from exporter.apierrors import ApiError, NotFound, StrayLink, describe, final_error, has_id, short
from exporter.auth import TokenProvider
from exporter.config import AdobeConfig
from exporter.logs import fields
from exporter.models import ConnectionSpec, Flow, ParseError, Run, TargetConnection, items_of
from exporter.paging import PageStats, collect, resolve_next
from exporter.ratelimit import Hold, TokenBucket
from exporter.retry import RETRY_STATUSES, RetryPolicy, backoff_delay, retry_after_seconds
from exporter.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

__all__ = ["PAGE_LIMIT", "ApiError", "FlowServiceClient", "NotFound"]

PAGE_LIMIT = 100
LISTING_ATTEMPTS = 3  # a listing spoiled by a stray next link is asked for again from page 1


def loads(answer: bytes) -> Any:
    """orjson where it can (about twice as fast on a page of runs, so the interpreter lock is held
    half as long); the standard library for what orjson refuses and json accepts (NaN, integers
    past 64 bits), so what parses is unchanged."""
    try:
        return orjson.loads(answer)
    except orjson.JSONDecodeError:
        return json.loads(answer)


PARSE_ON_LOOP_MAX = 20  # run items read on the event loop; more go to a worker thread
# Answers parsed on the event loop; larger ones in a worker thread. A page of 100 runs is about
# 300 KB and takes some 5 ms to parse even with orjson: on the loop, a listing of them is a stall.
PARSE_ON_LOOP_BYTES = 16 * 1024


class FlowServiceClient:
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
        self.page_stats: dict[str, PageStats] = {}  # by sandbox
        # The token fetched because of a 403: a 403 with it is a permission problem, not a stale
        # token, and gets no further renewal (a forbidden flow must not cost a token a cycle).
        self._renewed_on_403: str | None = None

    # --- the calls --------------------------------------------------------------------------------

    async def get_flow(self, sandbox: str, flow_id: str) -> Flow:
        body = await self._request("flow", "GET", f"{self._adobe.base_url}/flows/{flow_id}", [], sandbox, items_of)
        for item in items_of(body):
            flow = Flow.from_json(item)
            if flow is not None and flow.id.lower() == flow_id.lower():
                return flow
        self._metrics.parse_errors.labels("flow").inc()
        raise ApiError("flow", 200, f"flow {flow_id}: the answer does not contain the flow")

    async def list_runs(self, sandbox: str, flow_id: str, created_after: float) -> list[Run]:
        """Every run of the flow created after `created_after` (epoch s), newest first, all pages."""
        return await self.find_runs(sandbox, [f"flowId=={flow_id}", f"createdAt>{int(created_after * 1000)}"])

    async def find_runs(self, sandbox: str, properties: list[str]) -> list[Run]:
        """Every run matching the `property=` filters (e.g. `flowId==a,b,c`, `id==x,y`,
        `createdAt>ms`), newest first (if Adobe honours `orderby`), all pages."""
        params = [("property", p) for p in properties] + [("orderby", "-createdAt"), ("limit", str(PAGE_LIMIT))]
        items = await self._listing("runs", "/runs", params, sandbox)
        # Hundreds of runs take tens of milliseconds to read: a worker thread does it, so the event
        # loop (scrapes) gets the interpreter back every few milliseconds meanwhile.
        if len(items) < PARSE_ON_LOOP_MAX:
            return self._runs_of(items, sandbox)
        return await asyncio.to_thread(self._runs_of, items, sandbox)

    def _runs_of(self, items: list[Any], sandbox: str) -> list[Run]:
        runs = []
        for item in items:
            run = Run.from_json(item)
            if run is None or run.order_time is None:
                self._metrics.parse_errors.labels("runs").inc()
                log.debug("skipped a run item without id or any time", extra=fields(sandbox=sandbox))
                continue
            runs.append(run)
        return runs

    async def list_flows(self, sandbox: str, properties: list[str]) -> list[Flow]:
        """Every flow of the sandbox matching the `property=` filters, all pages."""
        params = [("property", p) for p in properties] + [("limit", str(PAGE_LIMIT))]
        flows = []
        for item in await self._listing("flows", "/flows", params, sandbox):
            flow = Flow.from_json(item)
            if flow is None:
                self._metrics.parse_errors.labels("flows").inc()
                continue
            flows.append(flow)
        return flows

    # Names (exporter/fetch/names.py): the connector and dataset behind a flow. The spec documents
    # `property` on both listings; `id==a,b` lists are what the names module tries first.

    async def list_connection_specs(self, sandbox: str, ids: list[str]) -> list[ConnectionSpec]:
        """Connection specs by ID in one listing (`GET /connectionSpecs?property=id==a,b`)."""
        items = await self._listing(
            "connection_specs", "/connectionSpecs", [("property", f"id=={','.join(ids)}")], sandbox
        )
        return [c for c in map(ConnectionSpec.from_json, items) if c is not None]

    async def get_connection_spec(self, sandbox: str, spec_id: str) -> ConnectionSpec | None:
        """`GET /connectionSpecs/{id}`; None if the answer lacks it (NotFound is raised on a 404)."""
        url = f"{self._adobe.base_url}/connectionSpecs/{spec_id}"
        body = await self._request("connection_specs", "GET", url, [], sandbox, items_of)
        found = [c for c in map(ConnectionSpec.from_json, items_of(body)) if c is not None]
        return next((c for c in found if c.id.lower() == spec_id.lower()), None)

    async def list_target_connections(self, sandbox: str, ids: list[str]) -> list[TargetConnection]:
        """Target connections by ID (`GET /targetConnections?property=id==a,b`), all pages."""
        params = [("property", f"id=={','.join(ids)}"), ("limit", str(PAGE_LIMIT))]
        items = await self._listing("target_connections", "/targetConnections", params, sandbox)
        return [t for t in map(TargetConnection.from_json, items) if t is not None]

    async def get_target_connection(self, sandbox: str, connection_id: str) -> TargetConnection | None:
        url = f"{self._adobe.base_url}/targetConnections/{connection_id}"
        body = await self._request("target_connections", "GET", url, [], sandbox, items_of)
        found = [t for t in map(TargetConnection.from_json, items_of(body)) if t is not None]
        return next((t for t in found if t.id.lower() == connection_id.lower()), None)

    async def _listing(self, endpoint: str, path: str, params: list[tuple[str, str]], sandbox: str) -> list[Any]:
        """Every item of a listing. A next link that strays from the collection spoils the whole
        listing (nothing of it is used); it is asked for again from the first page, twice at most."""
        for attempt in range(LISTING_ATTEMPTS):
            try:
                return await collect(
                    lambda url, query: self._request(endpoint, "GET", url, query, sandbox, items_of),
                    self._adobe.base_url,
                    endpoint,
                    path,
                    params,
                    self.page_stats.setdefault(sandbox, PageStats()),
                    self.max_url_length,
                )
            except StrayLink:
                self._metrics.parse_errors.labels(endpoint).inc()
                if attempt + 1 == LISTING_ATTEMPTS:
                    raise
                self._metrics.api_retries.labels(endpoint, "stray_link").inc()
        raise AssertionError("unreachable")

    async def get_run(self, sandbox: str, run_id: str) -> Run | None:
        """One run by ID (the documented `property=id==` filter), or None if it is not listed."""
        body = await self._request(
            "runs", "GET", f"{self._adobe.base_url}/runs", [("property", f"id=={run_id}")], sandbox, items_of
        )
        for item in items_of(body):
            run = Run.from_json(item)
            if run is not None and run.id == run_id:
                return run
        return None

    async def create_run(self, sandbox: str, body: dict[str, Any]) -> tuple[str, str | None]:
        """POST /runs; the new run's (id, etag). Adobe answers `{"items": [{"id", "etag"}]}` or
        the whole run object; both are read. Not retried where Adobe may have acted on it."""
        answer = await self._request(
            "create_run", "POST", f"{self._adobe.base_url}/runs", [], sandbox, has_id, body=body, idempotent=False
        )
        item = answer["items"][0] if isinstance(answer.get("items"), list) and answer["items"] else answer
        etag = item.get("etag") or item.get("eTag")
        return str(item["id"]), (str(etag) if etag is not None else None)

    def resolve_next(self, href: str, params: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        return resolve_next(self._adobe.base_url, href, params)

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
    ) -> Any:
        """One API call with retries. A request that is not idempotent (creating a run) is retried
        only where Adobe cannot have acted on it: a refused connection, or a 429. A 401 or 403
        gets one new token and one more try (the spec lists 403 for an unusable token too; once
        per token for 403)."""
        started = time.monotonic()
        attempt = 0
        renewed_token = after_403 = False
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
                if not idempotent and not isinstance(e, aiohttp.ClientConnectorError):
                    raise ApiError(endpoint, None, f"{problem}; not retried: Adobe may have acted on it") from None
            else:
                if status in (401, 403) and not renewed_token and not (status == 403 and token == self._renewed_on_403):
                    renewed_token, after_403 = True, status == 403
                    self._tokens.invalidate(token)
                    self._metrics.api_retries.labels(endpoint, str(status)).inc()
                    attempt -= 1  # a token renewal is not a failed attempt
                    continue
                if 200 <= status < 300:
                    data, unparsable = await self._parse(endpoint, answer, validate)
                    if unparsable is None:
                        return data
                    if not idempotent:
                        raise ApiError(endpoint, status, unparsable)
                    reason, problem, wait = "parse", unparsable, None
                else:
                    reason, problem, wait = self._failure(endpoint, status, headers, answer, request_id, idempotent)
            await self._pause_before_retry(endpoint, sandbox, started, attempt, reason, problem, wait)

    async def _parse(self, endpoint: str, answer: bytes, validate: Callable[[Any], Any]) -> tuple[Any, str | None]:
        """(the parsed body, None), or (None, what is wrong with it)."""
        try:
            # A big page parsed on the event loop would stall every scrape meanwhile.
            data = loads(answer) if len(answer) < PARSE_ON_LOOP_BYTES else await asyncio.to_thread(loads, answer)
            validate(data)
            return data, None
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
        self, endpoint: str, sandbox: str, started: float, attempt: int, reason: str, problem: str, wait: float | None
    ) -> None:
        """Back off before the next attempt, or give up (attempts or total time spent)."""
        delay = wait if wait is not None else backoff_delay(self._retry, attempt)
        if reason == "429":
            self._hold.extend(delay)
        elapsed = time.monotonic() - started
        if attempt >= self._retry.max_attempts or elapsed + delay > self._retry.max_elapsed:
            raise ApiError(endpoint, None, f"{problem}; gave up after {attempt} attempts in {elapsed:.1f}s")
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
