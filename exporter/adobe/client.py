"""Flow Service REST client: the calls the exporter makes (flows, runs, connection specs,
target connections, run creation and retry, and Catalog Service's dataset names), their pagination,
and the checks on what they answer. The HTTP underneath (headers, retries, throttling) is
exporter/adobe/transport.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from exporter.adobe.continuation import ListingStats, collect, resolve_next
from exporter.adobe.errors import ApiError, NotFound, StrayLink, has_id
from exporter.adobe.models import ConnectionSpec, Flow, ParseError, Run, TargetConnection, items_of, text
from exporter.adobe.question import Partial, ids_asked
from exporter.adobe.transport import Transport
from exporter.support.logs import fields

log = logging.getLogger(__name__)

__all__ = ["PAGE_LIMIT", "ApiError", "FlowServiceClient", "NotFound"]

PAGE_LIMIT = 100
LISTING_ATTEMPTS = 3  # a listing cut short by a stray next link is asked for again from page 1
CUT_LOG_EVERY = 3600.0  # seconds: a listing cut short is logged once this often per endpoint and sandbox
T = TypeVar("T")


def _page_shape(convert: Callable[[list[Any]], list[Any]]) -> Callable[[Any], dict[str, Any]]:
    """A parsed page as collect() reads it (`items`, `_links`), its items converted; `served`:
    how many items Adobe put on it (the page size is measured on those, not on what was kept)."""

    def shape(body: Any) -> dict[str, Any]:
        items = items_of(body)
        return {"items": convert(items), "_links": body.get("_links"), "served": len(items)}

    return shape


def catalog_url(base_url: str) -> str:
    """Catalog Service beside the Flow Service: `…/data/foundation/flowservice` → `…/data/foundation/catalog`."""
    root = base_url.rstrip("/")
    return (root.removesuffix("/flowservice") if root.endswith("/flowservice") else root) + "/catalog"


def _keyed(body: Any) -> dict[str, Any]:
    """Catalog answers a lookup with an object keyed by ID."""
    if not isinstance(body, dict):
        raise ParseError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _models(model: Any) -> Callable[[list[Any]], list[Any]]:
    """Items read with `model.from_json`, those it cannot read left out."""
    return lambda items: [m for m in map(model.from_json, items) if m is not None]


def _run_params(properties: list[str]) -> list[tuple[str, str]]:
    return [("property", p) for p in properties] + [("orderby", "-createdAt"), ("limit", str(PAGE_LIMIT))]


class FlowServiceClient(Transport):
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
        # Each page is read into Run models as it is parsed (in a worker thread for a large page,
        # so the event loop gets the interpreter back every few milliseconds meanwhile), and its
        # JSON dropped then: the parsed pages of a listing never exist at once.
        return await self._listing(
            "runs",
            "/runs",
            _run_params(properties),
            sandbox,
            lambda items: [r for r, _ in self._runs_of(items, sandbox)],
        )

    async def find_run_items(self, sandbox: str, properties: list[str]) -> list[tuple[Run, dict[str, Any]]]:
        """As find_runs, each run beside the JSON Adobe sent for it (`aep-flow-exporter runs --json`
        prints what Adobe said, and Adobe's error messages are not in the model). For one flow's
        runs only: the JSON of every page is kept."""
        return await self._listing(
            "runs", "/runs", _run_params(properties), sandbox, lambda items: self._runs_of(items, sandbox)
        )

    def _runs_of(self, items: list[Any], sandbox: str) -> list[tuple[Run, dict[str, Any]]]:
        runs = []
        for item in items:
            run = Run.from_json(item)
            if run is None or run.order_time is None:
                self._metrics.parse_errors.labels("runs").inc()
                log.debug("skipped a run item without id or any time", extra=fields(sandbox=sandbox))
                continue
            runs.append((run, item))
        return runs

    async def list_flows(self, sandbox: str, properties: list[str]) -> list[Flow]:
        """Every flow of the sandbox matching the `property=` filters, all pages."""
        params = [("property", p) for p in properties] + [("limit", str(PAGE_LIMIT))]
        return await self._listing("flows", "/flows", params, sandbox, self._flows_of)

    def _flows_of(self, items: list[Any]) -> list[Flow]:
        flows = []
        for item in items:
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
        params = [("property", f"id=={','.join(ids)}")]
        return await self._listing("connection_specs", "/connectionSpecs", params, sandbox, _models(ConnectionSpec))

    async def get_connection_spec(self, sandbox: str, spec_id: str) -> ConnectionSpec | None:
        """`GET /connectionSpecs/{id}`; None if the answer lacks it (NotFound is raised on a 404)."""
        url = f"{self._adobe.base_url}/connectionSpecs/{spec_id}"
        body = await self._request("connection_specs", "GET", url, [], sandbox, items_of)
        found = [c for c in map(ConnectionSpec.from_json, items_of(body)) if c is not None]
        return next((c for c in found if c.id.lower() == spec_id.lower()), None)

    async def list_target_connections(self, sandbox: str, ids: list[str]) -> list[TargetConnection]:
        """Target connections by ID (`GET /targetConnections?property=id==a,b`), all pages."""
        params = [("property", f"id=={','.join(ids)}"), ("limit", str(PAGE_LIMIT))]
        return await self._listing(
            "target_connections", "/targetConnections", params, sandbox, _models(TargetConnection)
        )

    async def get_target_connection(self, sandbox: str, connection_id: str) -> TargetConnection | None:
        url = f"{self._adobe.base_url}/targetConnections/{connection_id}"
        body = await self._request("target_connections", "GET", url, [], sandbox, items_of)
        found = [t for t in map(TargetConnection.from_json, items_of(body)) if t is not None]
        return next((t for t in found if t.id.lower() == connection_id.lower()), None)

    async def dataset_names(self, sandbox: str, ids: list[str]) -> dict[str, str | None]:
        """Catalog Service: the datasets' names by ID (as asked), in one request
        (`GET /dataSets/{id1},{id2}?properties=name`: Catalog looks several objects up at once and
        answers an object keyed by ID). A dataset the answer lacks is absent (deleted); a 404
        (every one of them deleted) is an empty answer."""
        url = f"{catalog_url(self._adobe.base_url)}/dataSets/{','.join(ids)}"
        try:
            body = await self._request("datasets", "GET", url, [("properties", "name")], sandbox, _keyed)
        except NotFound:
            return {}
        asked = {i.lower(): i for i in ids}
        return {
            asked[k.lower()]: text(v.get("name")) if isinstance(v, dict) else None
            for k, v in body.items()
            if k.lower() in asked
        }

    async def _listing(
        self,
        endpoint: str,
        path: str,
        params: list[tuple[str, str]],
        sandbox: str,
        convert: Callable[[list[Any]], list[T]],
    ) -> list[T]:
        """Every item of a listing, each page converted by `convert` as it is parsed (the parsed
        JSON of one page at a time, not of the whole listing). A listing whose stray next link could
        not be taken onto our collection is asked for again from the first page, twice at most
        (the stray link may not come back); then what its pages before the link held is the answer,
        marked Partial (question.incomplete), for the caller to keep without concluding anything
        from what it lacks."""
        shape = _page_shape(convert)
        stats = self.listing_stats.setdefault(sandbox, ListingStats())
        for attempt in range(LISTING_ATTEMPTS):
            longest = stats.longest_token
            try:
                return await collect(
                    lambda url, query: self._request(endpoint, "GET", url, query, sandbox, items_of, shape=shape),
                    self._adobe.base_url,
                    endpoint,
                    path,
                    params,
                    stats,
                    self.max_url_length,
                )
            except StrayLink as e:
                self._metrics.parse_errors.labels(endpoint).inc()
                if attempt + 1 == LISTING_ATTEMPTS:
                    self._log_cut(endpoint, sandbox, e)
                    return Partial(e.partial)
                self._metrics.api_retries.labels(endpoint, "stray_link").inc()
            finally:
                if stats.longest_token > longest:
                    self.longest_token_ids[sandbox] = ids_asked(params)
        raise AssertionError("unreachable")

    def _log_cut(self, endpoint: str, sandbox: str, e: StrayLink) -> None:
        """A listing cut short is a warning once an hour per endpoint and sandbox, with the count
        of those since: Adobe may send the same stray link every cycle, and a warning a cycle
        buries the others (aep_exporter_parse_errors_total counts every one)."""
        key, now = (endpoint, sandbox), time.monotonic()
        last, since = self.cuts_logged.get(key, (None, 0))
        if last is not None and now - last < CUT_LOG_EVERY:
            self.cuts_logged[key] = (last, since + 1)
            log.debug("%s: listing incomplete again: %s", endpoint, e, extra=fields(sandbox=sandbox))
            return
        self.cuts_logged[key] = (now, 0)
        more = f" ({since} more since the last such warning)" if since else ""
        log.warning(
            "%s: listing incomplete, its pages before it kept: %s%s", endpoint, e, more, extra=fields(sandbox=sandbox)
        )

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

    async def retrigger_run(self, sandbox: str, run_id: str, op: str) -> tuple[str, str | None]:
        """POST /runs/{id}/action?op=…: Adobe re-triggers a failed run; the new run's (id, etag).
        The tutorial answers `{id, etag}`, the spec the whole run: both are read. Not retried
        where Adobe may have acted on it."""
        url = f"{self._adobe.base_url}/runs/{run_id}/action"
        answer = await self._request("retry_run", "POST", url, [("op", op)], sandbox, has_id, body={}, idempotent=False)
        item = answer["items"][0] if isinstance(answer.get("items"), list) and answer["items"] else answer
        etag = item.get("etag") or item.get("eTag")
        return str(item["id"]), (str(etag) if etag is not None else None)

    def resolve_next(self, href: str, params: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        return resolve_next(self._adobe.base_url, href, params)
