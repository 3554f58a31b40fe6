"""aiohttp fake of Adobe IMS and the Flow Service, serving a `World`.

It checks what Adobe checks (bearer token, x-api-key, org and sandbox headers), filters with the
`property=` syntax, orders with `orderby`, and pages with `continuationToken` links, which it
writes host-relative on the first page and base-relative after, as both forms exist in Adobe's
docs. Pages are cut by offset over the data *as it is when each page is asked for*, so runs that
appear mid-pagination shift later pages and repeat items: the overlap a real client must survive.

`Simulator.inject()` scripts faults for the next matching requests.
"""

from __future__ import annotations

import asyncio
import json
import operator
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from exporter.simulator.world import SimRun, World

BASE_PATH = "/data/foundation/flowservice"
TOKEN_PATH = "/ims/token/v3"
_PROPERTY_RE = re.compile(r"^([A-Za-z_][\w.\[\]]*?)(==|!=|>=|<=|>|<)(.*)$")


@dataclass
class Chaos:
    """Random faults, each a probability per request (the fault suite turns them on together)."""

    server_error: float = 0.0  # 500/502/503/504
    throttle: float = 0.0  # 429 with Retry-After
    truncate: float = 0.0  # a 200 whose JSON body is cut short
    retry_after: str = "0.1"
    seed: int = 1

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


@dataclass
class Fault:
    path: str  # a request path containing this matches ('' = any; '=/x' matches /x exactly)
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


class Simulator:
    def __init__(self, world: World, max_page_size: int = 100, autopilot: bool = False) -> None:
        self.world = world
        self.max_page_size = max_page_size
        self.autopilot = autopilot
        self.requests: list[dict[str, Any]] = []  # what clients sent, for tests
        self.faults: deque[Fault] = deque()
        self._cursors: dict[str, tuple[str, int]] = {}
        # Called with (kind, offset) before each list page is cut: tests change the world there.
        self.before_page: Callable[[str, int], None] | None = None
        self.token_requests: list[dict[str, str]] = []
        self.delay = 0.0  # seconds added to every answer: a slow Adobe
        self.chaos: Chaos | None = None
        self.reject_batched = False  # answer 400 to `flowId==a,b` / `id==a,b` (an API without batching)
        self._ticker: asyncio.Task[None] | None = None
        # On-demand runs (POST /runs): every run created, in order (a test's ground truth for "one
        # run per window"); seconds after creation they start and end (on ticks); and a hook
        # called with each new run before it is answered (a test kills its client there).
        self.created: list[SimRun] = []
        self.on_demand_times = (0.5, 2.0)
        self.after_create: Callable[[SimRun], None] | None = None

    # --- faults ----------------------------------------------------------------------------------

    def inject(
        self, status: int, path: str = "", times: int = 1, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next `times` requests whose path contains `path` with `status`."""
        raw = body if isinstance(body, bytes) else json.dumps(body or {"title": "Injected fault"}).encode()
        self.faults.append(Fault(path, status, raw, headers or {}, times))

    def _take_fault(self, path: str) -> Fault | None:
        for f in self.faults:
            if (path == f.path[1:]) if f.path.startswith("=") else (f.path in path):
                f.times -= 1
                if f.times <= 0:
                    self.faults.remove(f)
                return f
        return None

    # --- app -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(TOKEN_PATH, self.token)
        app.router.add_get(BASE_PATH + "/flows", self.list_flows)
        app.router.add_get(BASE_PATH + "/flows/{flow_id}", self.get_flow)
        app.router.add_get(BASE_PATH + "/runs", self.list_runs)
        app.router.add_post(BASE_PATH + "/runs", self.create_run)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        if self.autopilot:
            self._ticker = asyncio.create_task(self._tick_forever())

    async def _stop(self, app: web.Application) -> None:
        if self._ticker:
            self._ticker.cancel()

    async def _tick_forever(self) -> None:
        while True:
            self.world.tick()
            await asyncio.sleep(1)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "headers": dict(request.headers),
                "time": time.time(),
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        fault = self._take_fault(request.path)
        if fault is not None:
            return web.Response(
                status=fault.status,
                body=fault.body,
                headers=fault.headers,
                content_type=None if "Content-Type" in fault.headers else "application/json",
            )
        chaos = self.chaos
        if chaos is not None:
            roll = chaos.rng.random()
            if roll < chaos.server_error:
                return _json({"title": "Service unavailable"}, chaos.rng.choice([500, 502, 503, 504]))
            if roll < chaos.server_error + chaos.throttle:
                return web.Response(
                    status=429,
                    text='{"error_code":"429050","message":"Too many requests"}',
                    headers={"Retry-After": chaos.retry_after},
                    content_type="application/json",
                )
        if request.path.startswith(BASE_PATH):
            problem = self._check_headers(request)
            if problem is not None:
                return problem
        response = await handler(request)
        if (
            chaos is not None
            and chaos.rng.random() < chaos.truncate
            and response.status == 200
            and isinstance(response, web.Response)
            and response.body
        ):
            body = bytes(response.body)
            return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")
        return response

    def _check_headers(self, request: web.Request) -> web.Response | None:
        w = self.world
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not token:
            return _json({"error_code": "403010", "message": "Oauth token is missing."}, 403)
        if w.tokens.get(token, 0) <= w.clock():
            return _json({"error_code": "401013", "message": "Oauth token is not valid"}, 401)
        if request.headers.get("x-api-key") != w.client_id:
            return _json({"error_code": "403000", "message": "Api Key is invalid"}, 403)
        if request.headers.get("x-gw-ims-org-id") != w.org_id:
            return _json({"error_code": "403025", "message": "Profile is not valid"}, 403)
        sandbox = request.headers.get("x-sandbox-name")
        if not sandbox:
            return _adobe_error("2105-400", 400, "header x-sandbox-name is missing")
        if sandbox not in w.sandboxes:
            return _adobe_error("2104-403", 403, f"sandbox {sandbox} is not accessible")
        return None

    # --- IMS -------------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests.append({k: str(v) for k, v in form.items()})
        w = self.world
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type", "error_description": "grant_type"}, 400)
        if form.get("client_id") != w.client_id:
            return _json({"error": "invalid_client", "error_description": "invalid client_id parameter"}, 400)
        if form.get("client_secret") != w.client_secret:
            return _json({"error": "invalid_client", "error_description": "invalid client_secret parameter"}, 401)
        if not form.get("scope"):
            return _json({"error": "invalid_scope", "error_description": "scope is missing"}, 400)
        token = "eyJ" + secrets.token_urlsafe(48)
        w.tokens[token] = w.clock() + w.token_lifetime
        w.tokens_issued += 1
        return _json({"access_token": token, "token_type": "bearer", "expires_in": int(w.token_lifetime)})

    # --- Flow Service ----------------------------------------------------------------------------

    async def get_flow(self, request: web.Request) -> web.Response:
        flow_id = request.match_info["flow_id"]
        flow = self.world.flows.get(flow_id)
        if flow is None or flow.sandbox != request.headers["x-sandbox-name"]:
            return _adobe_error("FLOW-1439-404", 404, f"Flow with id {flow_id} not found", "Resource not found")
        return _json({"items": [self.world.flow_json(flow)]})

    async def list_flows(self, request: web.Request) -> web.Response:
        sandbox = request.headers["x-sandbox-name"]
        wanted: set[str] | None = None
        for p in request.query.getall("property", []):
            if p.startswith("id=="):  # turn only the flows asked for into JSON
                wanted = set(p[4:].split(","))
        flows = [
            self.world.flow_json(f)
            for f in self.world.flows.values()
            if f.sandbox == sandbox and (wanted is None or f.id in wanted)
        ]
        return self._page(request, "flows", flows)

    async def list_runs(self, request: web.Request) -> web.Response:
        return self._page(request, "runs", None)

    def _select_runs(
        self, sandbox: str, filters: list[tuple[str, str, list[str]]], order: str | None
    ) -> list[dict[str, Any]] | tuple[list[Any], list]:
        """Runs for a listing: the filters on id, flowId and createdAt applied to the simulator's
        own objects (indexed, so 10,000 flows stay cheap), the rest to the JSON."""
        w = self.world
        candidates: Any = None
        rest = []
        for f in filters:
            name, op, values = f
            if name == "flowId" and op == "==":
                picked = [r for v in values for r in w.runs_by_flow.get(v, ())]
            elif name == "id" and op == "==":
                picked = [w.runs[v] for v in values if v in w.runs]
            elif name == "createdAt" and op in (">", "<", ">=") and len(values) == 1:
                bound = float(values[0])
                test = {">": operator.gt, "<": operator.lt, ">=": operator.ge}[op]
                picked = [
                    r for r in (candidates if candidates is not None else w.runs.values()) if test(r.created_ms, bound)
                ]
            else:
                rest.append(f)
                continue
            if candidates is None:
                candidates = picked
            else:
                keep = {id(r) for r in picked}
                candidates = [r for r in candidates if id(r) in keep]
        runs = [r for r in (candidates if candidates is not None else w.runs.values()) if r.sandbox == sandbox]
        if order and order.lstrip("+-") == "createdAt":
            runs.sort(key=lambda r: r.created_ms, reverse=order.startswith("-"))
        return runs, rest

    async def create_run(self, request: web.Request) -> web.Response:
        """POST /runs as seeds 002/003 describe it. Table-based flows need `deltaColumn` on their
        first run and refuse a different one later; file-based flows answer with the whole run,
        table-based ones with `{"items": [{"id", "etag"}]}` (the seeds show both shapes)."""
        try:
            body = await request.json()
        except ValueError:
            return _adobe_error("FLOW-1400-400", 400, "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("params", {}), dict):
            return _adobe_error("FLOW-1400-400", 400, "request body must be an object with params")
        flow = self.world.flows.get(body.get("flowId"))
        if flow is None or flow.sandbox != request.headers["x-sandbox-name"]:
            return _adobe_error("FLOW-1439-404", 404, "Flow not found", "Resource not found")
        params = body.get("params") or {}
        for key in ("windowStartTime", "windowEndTime"):
            if not str(params.get(key, "")).isdigit():
                return _adobe_error("FLOW-1452-400", 400, f"Invalid value {params.get(key)!r} for field {key}")
        delta = (params.get("deltaColumn") or {}).get("name") if isinstance(params.get("deltaColumn"), dict) else None
        if flow.table_based:
            first = not any(r.flow_id == flow.id for r in self.world.runs.values())
            if first and not delta:
                return _adobe_error(
                    "FLOW-1466-400", 400, "deltaColumn is required for the first flow run of a table-based source"
                )
            if delta and flow.delta_column and delta != flow.delta_column:
                return _adobe_error(
                    "FLOW-1467-400",
                    400,
                    f"deltaColumn cannot be changed from "
                    f"{flow.delta_column!r}: it is part of the flow's copy transformation",
                )
            flow.delta_column = flow.delta_column or delta
        run = self.world.start_run(flow.id, status="scheduled")
        run.params = params
        now = self.world.clock()
        starts, ends = self.on_demand_times
        self.world.schedule(run, now + starts, now + ends)
        self.created.append(run)
        if self.after_create is not None:
            self.after_create(run)
        if flow.table_based:
            return _json({"items": [{"id": run.id, "etag": f'"{run.id[:8]}"'}]}, 201)
        return _json(self.world.run_json(run), 201)

    def _page(self, request: web.Request, kind: str, items: list[dict[str, Any]] | None) -> web.Response:
        q = request.query
        token = q.get("continuationToken")
        if token:
            if token not in self._cursors:
                return _adobe_error("FLOW-1431-400", 400, "Invalid continuation token")
            signature, offset = self._cursors[token]
            params = json.loads(signature)
        else:
            params = {"property": q.getall("property", []), "orderby": q.get("orderby"), "limit": q.get("limit")}
            offset = 0
        try:
            filters = [_parse_property(p) for p in params["property"]]
        except ValueError as e:
            return _adobe_error("FLOW-1453-400", 400, str(e))
        if self.reject_batched and any(len(values) > 1 for _, _, values in filters):
            return _adobe_error("FLOW-1443-400", 400, "Operator '==' is not allowed for multiple values")
        if self.before_page is not None:
            self.before_page(kind, offset)
        try:
            limit = min(int(params.get("limit") or self.max_page_size), self.max_page_size)
        except ValueError:
            return _adobe_error("FLOW-1400-400", 400, "limit must be a number")
        order = params.get("orderby")
        if kind == "runs" and items is None:
            runs, rest = self._select_runs(request.headers["x-sandbox-name"], filters, order)
            if not rest and (not order or order.lstrip("+-") == "createdAt"):
                selected = runs  # fast path: only this page is turned into JSON
                page = [self.world.run_json(r) for r in runs[offset : offset + limit]]
            else:
                selected = [j for j in (self.world.run_json(r) for r in runs) if all(_match(j, f) for f in rest)]
                page = self._sorted(selected, order)[offset : offset + limit]
        else:
            selected = self._sorted([i for i in items or () if all(_match(i, f) for f in filters)], order)
            page = selected[offset : offset + limit]
        body: dict[str, Any] = {"items": page, "_links": {}}
        if offset + limit < len(selected):
            next_token = secrets.token_urlsafe(12)
            self._cursors[next_token] = (json.dumps(params), offset + limit)
            prefix = BASE_PATH if offset == 0 else ""  # host-relative first, base-relative after
            body["_links"] = {"next": {"href": f"{prefix}/{kind}?continuationToken={next_token}"}}
        return _json(body)

    @staticmethod
    def _sorted(items: list[dict[str, Any]], order: str | None) -> list[dict[str, Any]]:
        if order:
            key = order.lstrip("+-")
            items.sort(key=lambda i: (i.get(key) is None, i.get(key) or 0), reverse=order.startswith("-"))
        return items


def _parse_property(p: str) -> tuple[str, str, list[str]]:
    m = _PROPERTY_RE.match(p)
    if not m:
        raise ValueError(f"Invalid query value {p}")
    name, op, value = m.groups()
    values = value.split(",")
    if op != "==" and len(values) > 1:
        raise ValueError(f"Operator '{op}' is not allowed for multiple values")
    return name, op, values


def _lookup(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _match(item: dict[str, Any], f: tuple[str, str, list[str]]) -> bool:
    name, op, values = f
    actual = _lookup(item, name)
    if op in ("==", "!="):
        hit = str(actual) in values or (isinstance(actual, str) and actual.lower() in [v.lower() for v in values])
        return hit if op == "==" else not hit
    try:
        a, b = float(actual), float(values[0])
    except (TypeError, ValueError):
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")


def _adobe_error(code: str, status: int, message: str, title: str = "Bad request") -> web.Response:
    """Flow Service's RFC7807-like error body (see flow-service-notes §4)."""
    return _json(
        {
            "type": f"https://ns.adobe.com/aep/errors/{code}",
            "title": title,
            "status": status,
            "report": {"detailed-message": message, "request-id": secrets.token_hex(8)},
            "errorMessage": message,
        },
        status,
    )


async def start_simulator(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve `sim` over real HTTP; returns the runner and the origin URL (http://host:port)."""
    runner = web.AppRunner(sim.app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}"
