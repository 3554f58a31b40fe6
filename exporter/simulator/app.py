"""aiohttp fake of Adobe IMS and the Flow Service, serving a `World`.

It checks what Adobe checks (bearer token, x-api-key, org and sandbox headers), filters with the
`property=` syntax, orders with `orderby`, and pages with `continuationToken` links. Where Adobe's
documentation is silent (page sizes, next-link forms, token length, URL limits, which filters are
honoured, its clock), it does what its `ApiProfile` says (profile.py). Pages are cut by offset over
the data *as it is when each page is asked for*, so runs that appear mid-pagination shift later
pages and repeat items: the overlap a real client must survive.

`Simulator.inject()` scripts faults for the next matching requests. With a `retention` (the demo's
autopilot has one) it forgets runs, cursors and its request log past their window, so a demo left
running for days keeps a flat memory.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from exporter.simulator.catalog import CATALOG_PATH, Catalog
from exporter.simulator.connections import CONNECTION_SPECS, connection_spec_json, target_connection_json
from exporter.simulator.events import EventsHub
from exporter.simulator.flowservice import (
    adobe_error,
    create_run,
    json_response,
    line_too_long,
    retrigger_run,
    select_runs,
)
from exporter.simulator.listing import Cursor, Cursors, Query, Refused, match, next_href, parse_filters, sort_items
from exporter.simulator.profile import FRIENDLY, ApiProfile
from exporter.simulator.world import SimFlow, SimRun, World
from exporter.simulator.world import target_connection_id as _tc_id

BASE_PATH = "/data/foundation/flowservice"
TOKEN_PATH = "/ims/token/v3"
# With a retention: how long the request log and continuation tokens are kept, how many token
# requests are kept, and how often old runs are swept (service clock, seconds).
REQUEST_LOG_WINDOW = 600.0
CURSOR_TTL = 3600.0
TOKEN_LOG_MAX = 1000
SWEEP_EVERY = 3600.0
# The demo's retention: past the exporter's default 24 h lookback, so the demo loses nothing.
DEMO_RETENTION = 26 * 3600.0


@dataclass
class Chaos:
    """Random faults, each a probability per request (the fault suite turns them on together)."""

    server_error: float = 0.0  # 500/502/503/504
    throttle: float = 0.0  # 429 with Retry-After
    truncate: float = 0.0  # a 200 whose JSON body is cut short
    revoke: float = 0.0  # the request's token is revoked just before it is checked (answer: 401)
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
    def __init__(
        self,
        world: World,
        max_page_size: int = 100,
        autopilot: bool = False,
        profile: ApiProfile = FRIENDLY,
        retention: float | None = None,
        events: EventsHub | None = None,
    ) -> None:
        self.world = world
        self.events = events  # Adobe I/O Events: the journal, the webhook sender, the key host
        self.max_page_size = max_page_size
        self.autopilot = autopilot
        # Seconds after which completed runs are forgotten (None: never); the autopilot's default
        # keeps the demo's memory flat over days.
        self.retention = retention if retention is not None or not autopilot else DEMO_RETENTION
        self.requests: list[dict[str, Any]] = []  # what clients sent, for tests
        self.faults: deque[Fault] = deque()
        self.cursors = Cursors()
        # Called with (kind, offset) before each list page is cut: tests change the world there.
        self.before_page: Callable[[str, int], None] | None = None
        self.token_requests: list[dict[str, str]] = []
        self.delay = 0.0  # seconds added to every answer: a slow Adobe
        self.chaos: Chaos | None = None
        self.page_links = True  # False: a last page has no `_links` key at all (dataflows/api/monitor.md)
        self._ticker: asyncio.Task[None] | None = None
        self._real_clock = world.clock
        self._next_links = 0
        self._strays = 0
        # On-demand runs (POST /runs): every run created, in order (a test's ground truth for "one
        # run per window"); seconds after creation they start and end (on ticks); and a hook
        # called with each new run before it is answered (a test kills its client there).
        self.created: list[SimRun] = []
        self.run_bodies: list[Any] = []  # every POST /runs body as sent, refused ones too
        self.on_demand_times = (0.5, 2.0)
        self.after_create: Callable[[SimRun], None] | None = None
        # Retries (POST /runs/{id}/action): each new run is also in `created`. While this is above
        # zero, a retry is made and then its answer lost (the connection closed, nothing answered),
        # as when a proxy or the network drops it after Adobe acted; it counts down.
        self.lose_retry_answers = 0
        self._swept_at = float("-inf")
        self.sweep_every = SWEEP_EVERY  # how often old runs are swept (the soak bench sweeps more often)
        self.profile = profile
        self._tc_key: tuple[str, int] | None = None
        self._tc_index: dict[str, SimFlow] = {}
        self.catalog = Catalog(world)  # Catalog Service's dataset names (catalog.py)

    @property
    def profile(self) -> ApiProfile:
        return self._profile

    @profile.setter
    def profile(self, profile: ApiProfile) -> None:
        """Switch Adobe's undocumented behaviour; its clock moves with `clock_offset`."""
        self._profile = profile
        real, offset = self._real_clock, profile.clock_offset
        self.world.clock = (lambda: real() + offset) if offset else real

    @property
    def reject_batched(self) -> bool:
        """Shorthand: an API that answers 400 to comma lists (`flowId==a,b`, `id==a,b`)."""
        return self.profile.comma_lists == "refuse"

    @reject_batched.setter
    def reject_batched(self, on: bool) -> None:
        self.profile = replace(self.profile, comma_lists="refuse" if on else "any", list_fields=None)

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
        app.router.add_post(BASE_PATH + "/runs/{run_id}/action", self.run_action)
        app.router.add_get(BASE_PATH + "/connections", self.list_connections)
        app.router.add_get(BASE_PATH + "/connectionSpecs", self.list_connection_specs)
        app.router.add_get(BASE_PATH + "/connectionSpecs/{spec_id}", self.get_connection_spec)
        app.router.add_get(BASE_PATH + "/targetConnections", self.list_target_connections)
        app.router.add_get(BASE_PATH + "/targetConnections/{connection_id}", self.get_target_connection)
        app.router.add_get(CATALOG_PATH + "/dataSets/{ids}", self.catalog.get)
        if self.events is not None:
            self.events.routes(app)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        if self.events is not None:
            await self.events.start()
        if self.autopilot:
            self._ticker = asyncio.create_task(self._tick_forever())

    async def _stop(self, app: web.Application) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self.events is not None:
            await self.events.stop()

    async def _tick_forever(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(1)

    def tick(self) -> None:
        """One autopilot step: runs move along, and what is past its window is forgotten."""
        self.world.tick()
        if self.events is not None:
            self.events.flush()
        self.forget()

    def forget(self) -> None:
        """With a retention: drop the request log past REQUEST_LOG_WINDOW, cursors past
        CURSOR_TTL, all but the last TOKEN_LOG_MAX token requests, expired tokens, and (every
        `sweep_every` seconds) completed runs created more than `retention` ago."""
        if self.retention is None:
            return
        now = self.world.clock()
        cutoff = now - min(self.retention, REQUEST_LOG_WINDOW)
        old = 0
        while old < len(self.requests) and self.requests[old]["clock"] < cutoff:
            old += 1
        del self.requests[:old]
        del self.token_requests[:-TOKEN_LOG_MAX]
        self.cursors.forget_before(now - min(self.retention, CURSOR_TTL))
        if now - self._swept_at >= self.sweep_every:
            self._swept_at = now
            self.world.forget(int((now - self.retention) * 1000))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        line = f"{request.method} {request.raw_path} HTTP/{request.version.major}.{request.version.minor}"
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "headers": dict(request.headers),
                "time": time.time(),
                "clock": self.world.clock(),
                "line_length": len(line.encode()),
            }
        )
        limit = self.profile.max_request_line
        if limit is not None and len(line.encode()) > limit:
            return line_too_long(
                self.profile.request_line_status, len(line.encode()), limit, self.profile.request_line_body, request
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
                return json_response({"title": "Service unavailable"}, chaos.rng.choice([500, 502, 503, 504]))
            if roll < chaos.server_error + chaos.throttle:
                return web.Response(
                    status=429,
                    text='{"error_code":"429050","message":"Too many requests"}',
                    headers={"Retry-After": chaos.retry_after},
                    content_type="application/json",
                )
        if request.path.startswith((BASE_PATH, CATALOG_PATH)):
            if chaos is not None and chaos.revoke and chaos.rng.random() < chaos.revoke:
                self.world.tokens.pop(request.headers.get("Authorization", "")[7:], None)
            problem = self._check_headers(request)
            if problem is not None:
                return problem
        response = await handler(request)
        if (
            chaos is not None
            and chaos.rng.random() < chaos.truncate
            and response.status == 200
            and isinstance(response, web.Response)
            and isinstance(response.body, bytes)
        ):
            body = response.body
            return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")
        return response

    def _check_headers(self, request: web.Request) -> web.Response | None:
        w = self.world
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not token:
            return json_response({"error_code": "403010", "message": "Oauth token is missing."}, 403)
        if w.tokens.get(token, 0) <= w.clock():
            return json_response({"error_code": "401013", "message": "Oauth token is not valid"}, 401)
        if request.headers.get("x-api-key") != w.client_id:
            return json_response({"error_code": "403000", "message": "Api Key is invalid"}, 403)
        if request.headers.get("x-gw-ims-org-id") != w.org_id:
            return json_response({"error_code": "403025", "message": "Profile is not valid"}, 403)
        sandbox = request.headers.get("x-sandbox-name")
        if not sandbox:
            return adobe_error("2105-400", 400, "header x-sandbox-name is missing")
        if sandbox not in w.sandboxes:
            return adobe_error("2104-403", 403, f"sandbox {sandbox} is not accessible")
        return None

    # --- IMS -------------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests.append({k: str(v) for k, v in form.items()})
        w = self.world
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type", "error_description": "grant_type"}, 400)
        if form.get("client_id") != w.client_id:
            return json_response({"error": "invalid_client", "error_description": "invalid client_id parameter"}, 400)
        if form.get("client_secret") != w.client_secret:
            return json_response(
                {"error": "invalid_client", "error_description": "invalid client_secret parameter"}, 401
            )
        if not form.get("scope"):
            return json_response({"error": "invalid_scope", "error_description": "scope is missing"}, 400)
        token = "eyJ" + secrets.token_urlsafe(48)
        w.tokens[token] = w.clock() + w.token_lifetime
        w.tokens_issued += 1
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": int(w.token_lifetime)})

    # --- Flow Service ----------------------------------------------------------------------------

    async def get_flow(self, request: web.Request) -> web.Response:
        flow_id = request.match_info["flow_id"]
        flow = self.world.flows.get(flow_id)
        if flow is None or flow.sandbox != request.headers["x-sandbox-name"]:
            return adobe_error("FLOW-1439-404", 404, f"Flow with id {flow_id} not found", "Resource not found")
        return json_response({"items": [self.world.flow_json(flow)]})

    async def list_flows(self, request: web.Request) -> web.Response:
        sandbox = request.headers["x-sandbox-name"]
        wanted: set[str] | None = None
        for p in request.query.getall("property", []):
            if p.startswith("id==") and "continuationToken" not in request.query:
                wanted = set(p[4:].split(","))  # turn only the flows asked for into JSON (a shortcut)
        flows = [
            self.world.flow_json(f)
            for f in self.world.flows.values()
            if f.sandbox == sandbox and (wanted is None or f.id in wanted)
        ]
        return self._page(request, "flows", flows)

    async def list_runs(self, request: web.Request) -> web.Response:
        return self._page(request, "runs", None)

    async def create_run(self, request: web.Request) -> web.Response:
        try:
            self.run_bodies.append(await request.json())
        except ValueError:
            self.run_bodies.append(None)
        return await create_run(self.world, request, self.on_demand_times, self._created, self.profile)

    async def run_action(self, request: web.Request) -> web.Response:
        response, run = retrigger_run(self.world, request, self.on_demand_times, self._created, self.profile)
        if run is not None and self.lose_retry_answers > 0:
            self.lose_retry_answers -= 1
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("the retry's answer is lost")
        return response

    def _created(self, run: SimRun) -> None:
        self.created.append(run)
        if self.after_create is not None:
            self.after_create(run)

    async def list_connections(self, request: web.Request) -> web.Response:
        """Source connections of the sandbox's flows. Only here so a next link can stray to
        another collection (profile.foreign_next_every): filters are not applied."""
        sandbox = request.headers["x-sandbox-name"]
        now = self.world.now_ms()
        items = [
            {
                "id": self.world.flow_json(f)["sourceConnectionIds"][0],
                "name": f"{f.name} source connection",
                "connectionSpec": {"id": f.source_spec_id, "version": "1.0"},
                "state": "enabled",
                "createdAt": now,
                "updatedAt": now,
                "sandboxName": f.sandbox,
            }
            for f in self.world.flows.values()
            if f.sandbox == sandbox
        ]
        return json_response({"items": items[: self.max_page_size], "_links": {}})

    # --- names: connection specs and target connections (connections.py) ------------------------

    async def list_connection_specs(self, request: web.Request) -> web.Response:
        specs = [connection_spec_json(i) for i in CONNECTION_SPECS]
        return self._page(request, "connectionSpecs", [s for s in specs if s is not None])

    async def get_connection_spec(self, request: web.Request) -> web.Response:
        spec_id = request.match_info["spec_id"]
        spec = connection_spec_json(spec_id)
        if spec is None:
            return adobe_error(
                "FLOW-1439-404", 404, f"Connection spec with id {spec_id} not found", "Resource not found"
            )
        return json_response({"items": [spec]})

    def _target_connections(self, sandbox: str) -> dict[str, SimFlow]:
        """The sandbox's target connections by ID (one per flow), rebuilt when flows change."""
        key = (sandbox, len(self.world.flows))
        if self._tc_key != key:
            self._tc_key = key
            self._tc_index = {_tc_id(f): f for f in self.world.flows.values() if f.sandbox == sandbox}
        return self._tc_index

    async def list_target_connections(self, request: web.Request) -> web.Response:
        index = self._target_connections(request.headers["x-sandbox-name"])
        wanted: set[str] | None = None
        for p in request.query.getall("property", []):
            if p.startswith("id==") and "continuationToken" not in request.query:
                wanted = set(p[4:].split(","))  # turn only those asked for into JSON (a shortcut)
        # In the index's order either way: later pages (no shortcut) are cut from the same order.
        flows = [f for i, f in index.items() if wanted is None or i in wanted]
        return self._page(request, "targetConnections", [target_connection_json(self.world, f) for f in flows])

    async def get_target_connection(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        flow = self._target_connections(request.headers["x-sandbox-name"]).get(connection_id)
        if flow is None:
            return adobe_error(
                "FLOW-1439-404", 404, f"Target connection with id {connection_id} not found", "Resource not found"
            )
        return json_response({"items": [target_connection_json(self.world, flow)]})

    def _page(self, request: web.Request, kind: str, items: list[dict[str, Any]] | None) -> web.Response:
        """One page of a listing. Continuation tokens hold the position, and the first page's
        filters if the profile says so (else those sent with the token apply)."""
        profile, q = self.profile, request.query
        query = Query(tuple(q.getall("property", [])), q.get("orderby"), q.get("limit"))
        offset = 0
        token = q.get("continuationToken")
        if token:
            cursor = self.cursors.find(token)
            if cursor is None or cursor.kind != kind:
                return adobe_error("FLOW-1431-400", 400, "Invalid continuation token")
            offset, query = cursor.offset, cursor.query or query
        try:
            filters = parse_filters(query.properties, profile)
        except Refused as e:
            return adobe_error(e.code, 400, str(e))
        if self.before_page is not None:
            self.before_page(kind, offset)
        try:
            limit = min(int(query.limit or self.max_page_size), self.max_page_size, profile.page_cap or 1 << 30)
        except ValueError:
            return adobe_error("FLOW-1400-400", 400, "limit must be a number")
        order = query.orderby if profile.orderby else None
        page: list[dict[str, Any]]
        if kind == "runs" and items is None:
            runs, rest = select_runs(
                self.world, request.headers["x-sandbox-name"], filters, order, profile.listing_delay
            )
            if query.orderby and not profile.orderby:
                runs.sort(key=lambda r: r.id)  # its own order, not the one asked for
            if not rest and (not order or order.lstrip("+-") == "createdAt"):
                total = len(runs)  # fast path: only this page is turned into JSON
                page = [self.world.run_json(r) for r in runs[offset : offset + limit]]
            else:
                selected = [j for j in (self.world.run_json(r) for r in runs) if all(match(j, f) for f in rest)]
                total, page = len(selected), sort_items(selected, order)[offset : offset + limit]
        else:
            selected = sort_items([i for i in items or () if all(match(i, f) for f in filters)], order)
            total, page = len(selected), selected[offset : offset + limit]
        body: dict[str, Any] = {"items": page, "_links": {}}
        if offset + limit < total:
            body["_links"] = {"next": {"href": self._next_href(request, kind, offset, offset + limit, query)}}
        elif not self.page_links:
            del body["_links"]
        return json_response(body)

    def _next_href(self, request: web.Request, kind: str, offset: int, next_offset: int, query: Query) -> str:
        profile = self.profile
        self._next_links += 1
        strayed_enough = profile.foreign_next_limit and self._strays >= profile.foreign_next_limit
        link_kind = kind
        if profile.foreign_next_every and self._next_links % profile.foreign_next_every == 0 and not strayed_enough:
            link_kind = "connections"  # a link that strays to another collection
            if not profile.foreign_token_continues:
                kind, next_offset = "connections", 0
            self._strays += 1
        remembered = query if profile.token_carries_query else None
        length = profile.token_length
        if remembered is not None and profile.token_encodes_query:
            length += len(urlencode(remembered.pairs())) * 4 // 3
        token = self.cursors.issue(Cursor(kind, next_offset, remembered, self.world.clock()), length)
        origin = f"{request.scheme}://{request.host}"
        return next_href(profile, origin, BASE_PATH, link_kind, token, offset == 0, query)


async def start_simulator(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve `sim` over real HTTP; returns the runner and the origin URL (http://host:port)."""
    # aiohttp's own 8 KB line cap is lifted: the profile's max_request_line decides.
    runner = web.AppRunner(
        sim.app(),
        access_log=None,
        shutdown_timeout=1.0,
        handler_cancellation=True,
        max_line_size=1 << 20,
        max_field_size=1 << 16,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}"
