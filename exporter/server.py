"""HTTP endpoints: /metrics, /, /healthz, /ready.

A scrape renders what the registry's collectors hold right now; it never waits on Adobe.
"""

from __future__ import annotations

import gzip
import html
from typing import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter import __version__


def parse_listen_address(addr: str) -> tuple[str | None, int]:
    """':7941' (all interfaces), 'host:port' or '[v6]:port' → (host or None, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address: expected [host]:port, got {addr!r}")
    host = host.strip("[]")
    return (host or None), int(port)


def make_app(
    registry: CollectorRegistry,
    ready: Callable[[], bool],
    telemetry_path: str = "/metrics",
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def landing(request: web.Request) -> web.Response:
        path = html.escape(telemetry_path)
        page = (
            "<!DOCTYPE html><html><head><title>AEP Flow Exporter</title></head><body>"
            f"<h1>AEP Flow Exporter</h1><p>Prometheus exporter for Adobe Experience Platform "
            f"Flow Service runs, version {html.escape(__version__)}.</p>"
            f'<ul><li><a href="{path}">Metrics</a></li><li><a href="/healthz">Health</a></li>'
            '<li><a href="/ready">Readiness</a></li></ul></body></html>'
        )
        return web.Response(text=page, content_type="text/html")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: the first poll cycle has not finished\n")

    app = web.Application()
    app.router.add_get(telemetry_path, metrics)
    if telemetry_path != "/":
        app.router.add_get("/", landing)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ready", readyz)
    return app
