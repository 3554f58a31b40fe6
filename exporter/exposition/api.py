"""The flow pages and their JSON view: `/flows/{flow_id}`, `/api/v1/flows`, `/api/v1/flows/{id}`.

Served, like `/`, from the last render step's snapshot (status_page.StatusSnapshot's FlowViews):
a request never waits on Adobe. The JSON's shape is documented in docs/api.md; its keys only
grow (a script written against it keeps working).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from exporter.exposition import flow_page
from exporter.exposition.flow_page import FlowView, Links
from exporter.exposition.render import RenderCache
from exporter.exposition.status_page import CSP, StatusSnapshot
from exporter.ledger.history import PastRun, unpack

HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def run_doc(v: FlowView, r: PastRun, links: Links) -> dict[str, Any]:
    return {
        "id": r.run_id,
        "status": r.status,
        "created": r.created,
        "started": r.started,
        "ended": r.ended,
        "duration_seconds": r.duration,
        "input_records": r.input_records,
        "output_records": r.output_records,
        "failed_records": r.failed_records,
        "input_bytes": r.input_bytes,
        "errors": [{"code": c, "message": m} for c, m in r.errors],
        "adobe_url": links.run(v.sandbox, v.flow_id, r.run_id),
    }


def flow_doc(v: FlowView, links: Links, runs: bool) -> dict[str, Any]:
    """A flow as the JSON view gives it; `runs`: with its recent runs, newest first."""
    past = v.runs if runs else unpack(v.history, 1)
    doc: dict[str, Any] = {
        "id": v.flow_id,
        "sandbox": v.sandbox,
        "name": v.name,
        "state": v.state,
        "schedule": v.schedule,
        "source_name": v.source,
        "target_name": v.target,
        "dataset_id": v.dataset_id,
        "dataset_name": v.dataset_name,
        "up": v.up,
        "last_run": run_doc(v, past[0], links) if past else None,
        "adobe_url": links.flow(v.sandbox, v.flow_id),
    }
    if runs:
        doc["runs"] = [run_doc(v, r, links) for r in past]
    return doc


def _snapshot(exposition: RenderCache) -> StatusSnapshot:
    snap = exposition.latest().status
    return snap if snap is not None else StatusSnapshot((), 0.0)


def _found(snap: StatusSnapshot, request: web.Request) -> FlowView:
    v = snap.view(request.match_info["flow_id"])
    if v is None:
        raise web.HTTPNotFound(text="no such flow is watched\n")
    return v


def add_routes(app: web.Application, exposition: RenderCache) -> None:
    async def page(request: web.Request) -> web.Response:
        snap = _snapshot(exposition)
        v = _found(snap, request)
        body = await asyncio.to_thread(flow_page.page, v, snap.links, snap.taken)
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def flows(request: web.Request) -> web.Response:
        """Every flow: made and encoded in a worker thread (10,000 flows are megabytes of JSON)."""
        snap = _snapshot(exposition)
        body = await asyncio.to_thread(
            lambda: json.dumps({"taken": snap.taken, "flows": [flow_doc(v, snap.links, False) for v in snap.views]})
        )
        return web.Response(text=body, content_type="application/json", headers=HEADERS)

    async def one(request: web.Request) -> web.Response:
        snap = _snapshot(exposition)
        doc = flow_doc(_found(snap, request), snap.links, True)
        return web.json_response({"taken": snap.taken, "flow": doc}, headers=HEADERS)

    app.router.add_get("/flows/{flow_id}", page)
    app.router.add_get("/api/v1/flows", flows)
    app.router.add_get("/api/v1/flows/{flow_id}", one)
