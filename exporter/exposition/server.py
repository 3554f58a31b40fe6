"""HTTP endpoints: /metrics, / (the flow status page), /flows/{id} and /api/v1/flows (api.py), /healthz, /ready, /docs.

make_app() takes the render cache (render.py) and a readiness test, and gives the aiohttp
application; start_http() serves it (behind a deadline for request headers) and stop_http() stops
it. A scrape serves the exposition rendered after the last poll cycle: bytes from memory, never a
wait on Adobe, never per-series work (one that comes while the render step splices the flow
families' bodies waits for them: render.py). The status page is served the same way, its rows
made from the flows' views taken in that render step (status_page.py).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from exporter.exposition import api, status_page
from exporter.exposition.render import PartsPayload, RenderCache
from exporter.exposition.status_page import StatusSnapshot

Handler = Callable[[web.Request], Awaitable[web.Response]]


def parse_listen_address(addr: str) -> tuple[str | None, int]:
    """':7941' (all interfaces), 'host:port' or '[v6]:port' → (host or None, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address: expected [host]:port, got {addr!r}")
    host = host.strip("[]")
    return (host or None), int(port)


# Requests to this server are small GETs: cap what a client can make it read.
MAX_REQUEST_BODY = 64 * 1024
MAX_LINE_SIZE = MAX_FIELD_SIZE = 8190
MAX_HEADERS = 64
KEEPALIVE_TIMEOUT = 15.0
HEADER_TIMEOUT = 10.0  # seconds a new connection gets to send its request headers


def make_app(
    exposition: RenderCache,
    ready: Callable[[], bool],
    telemetry_path: str = "/metrics",
    middlewares: Iterable[Any] = (),
    webhook: Any = None,
) -> web.Application:
    """`webhook` (exporter/events/webhook.py's Webhook, when events.webhook is configured) is
    served at its path: GET for Adobe's challenge, POST for pushes, which it bounds itself."""
    max_body = max(MAX_REQUEST_BODY, webhook.max_body if webhook is not None else 0)
    app = web.Application(client_max_size=max_body, middlewares=[_limit_body(webhook), *middlewares])
    if webhook is not None:
        app.router.add_get(webhook.path, webhook.challenge)
        app.router.add_post(webhook.path, webhook.push)
    # add_get also answers HEAD; any other method gets 405.
    app.router.add_get(telemetry_path, _metrics(exposition))
    if telemetry_path != "/":
        app.router.add_get("/", _StatusPage(exposition, telemetry_path).get)
    api.add_routes(app, exposition)  # /flows/{id} and /api/v1/flows[/{id}]
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/ready", _readiness(ready))
    if telemetry_path != status_page.DOCS_PATH:
        app.router.add_get(status_page.DOCS_PATH, _docs)
    return app


def _metrics(exposition: RenderCache) -> Handler:
    async def metrics(request: web.Request) -> web.Response:
        parts, headers = await exposition.parts(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
        )
        return web.Response(body=PartsPayload(parts), headers=headers)

    return metrics


class _StatusPage:
    """/ : the status page of the latest rendering; without ?q= (the common case) its bytes are
    made once per rendering, then only served."""

    def __init__(self, exposition: RenderCache, telemetry_path: str) -> None:
        self.exposition = exposition
        self.telemetry_path = telemetry_path
        # The snapshot the unfiltered page below is made of, weakly: a look at / must not keep a
        # rendering's rows (and this page) alive once the next rendering replaces it (at 10,000
        # flows some 25 MB, held until the next look).
        self._of: weakref.ref[StatusSnapshot] | None = None
        self.unfiltered = b""

    def _forget(self, _: object) -> None:
        self._of, self.unfiltered = None, b""

    async def get(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")[:200]
        snap = self.exposition.latest().status
        if snap is not None:  # rows are made at the first look after a render: off the event loop
            await asyncio.to_thread(lambda: snap.rows)
        if query.strip():
            body = status_page.page(snap, query, self.telemetry_path).encode()
        else:
            if snap is None or self._of is None or self._of() is not snap or not self.unfiltered:
                self.unfiltered = status_page.page(snap, "", self.telemetry_path).encode()
                self._of = None if snap is None else weakref.ref(snap, self._forget)
            body = self.unfiltered
        return web.Response(
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": status_page.CSP, "X-Content-Type-Options": "nosniff"},
        )


async def _docs(request: web.Request) -> web.Response:
    return web.Response(text=_readme(), content_type="text/plain")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _readiness(ready: Callable[[], bool]) -> Handler:
    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: the first poll cycle has not finished\n")

    return readyz


def _limit_body(webhook: Any) -> Any:
    """Refuse a request body above MAX_REQUEST_BODY (or one of unknown length): handlers here
    never read a body, so aiohttp's client_max_size alone would not refuse one. The webhook
    reads pushes, within its own limit."""

    @web.middleware
    async def limit_body(request: web.Request, handler: Any) -> web.StreamResponse:
        if webhook is not None and request.path == webhook.path:
            return await handler(request)
        if (request.content_length or 0) > MAX_REQUEST_BODY or (
            request.content_length is None and request.headers.get("Transfer-Encoding")
        ):
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BODY, actual_size=request.content_length or 0)
        return await handler(request)

    return limit_body


def _readme() -> str:
    """The README, as installed with the package (its metadata's long description)."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        text = metadata("aep-flow-exporter").json.get("description")
    except PackageNotFoundError:
        text = None
    return str(text) if text else "aep-flow-exporter: see README.md and docs/ in the source distribution.\n"


class _HeaderDeadline(asyncio.Protocol):
    """Wraps aiohttp's protocol to close a connection that has not sent complete request headers
    within `timeout` seconds (aiohttp has no header timeout of its own: a client trickling bytes
    would hold a connection forever)."""

    def __init__(self, inner: asyncio.Protocol, timeout: float) -> None:
        self.inner = inner
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)
        self.timer = asyncio.get_running_loop().call_later(self.timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.timer is not None:
            self.head = (self.head + data)[-8192:]
            if b"\r\n\r\n" in self.head:
                self.timer.cancel()
                self.timer, self.head = None, b""
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


async def start_http(
    app: web.Application,
    host: str | None,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    header_timeout: float = HEADER_TIMEOUT,
) -> tuple[web.AppRunner, asyncio.AbstractServer, tuple[str, int]]:
    """Serve `app` (over TLS when given a context); returns the runner, the listening server and
    the address actually bound (port 0 picks a free one)."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=2.0,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
        max_headers=MAX_HEADERS,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    await runner.setup()
    protocol = runner.server
    assert protocol is not None
    try:
        server = await asyncio.get_running_loop().create_server(
            lambda: _HeaderDeadline(protocol(), header_timeout),
            host,
            port,
            ssl=ssl_context,
            reuse_address=True,
            backlog=128,
        )
    except BaseException:
        await runner.cleanup()
        raise
    sockname = server.sockets[0].getsockname()
    return runner, server, (sockname[0], sockname[1])


async def stop_http(runner: web.AppRunner, server: asyncio.AbstractServer) -> None:
    server.close()
    await runner.shutdown()
    await runner.cleanup()
