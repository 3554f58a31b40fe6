"""The Flow Service's answers that need no Simulator state: run selection for listings, on-demand
runs (POST /runs), their retries (POST /runs/{id}/action), and the bodies of its errors and of a gateway's refusals."""

from __future__ import annotations

import copy
import json
import operator
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web

from exporter.simulator.listing import Filter
from exporter.simulator.profile import FRIENDLY, ApiProfile
from exporter.simulator.world import SimRun, World


def select_runs(
    world: World, sandbox: str, filters: list[Filter], order: str | None, listing_delay: float
) -> tuple[list[SimRun], list[Filter]]:
    """Runs for a listing: the filters on id, flowId and createdAt applied to the simulator's
    own objects (indexed, so 10,000 flows stay cheap); the others are returned, for the JSON.
    Runs created less than the profile's listing_delay ago are not listed yet."""
    w = world
    candidates: list[SimRun] | None = None
    rest = []
    for f in filters:
        name, op, values = f
        if name == "flowId" and op == "==":
            picked = [r for v in dict.fromkeys(values) for r in w.runs_by_flow.get(v, ())]
        elif name == "id" and op == "==":
            picked = [w.runs[v] for v in dict.fromkeys(values) if v in w.runs]
        elif name == "createdAt" and op in (">", "<", ">=") and len(values) == 1:
            bound = float(values[0])
            test = {">": operator.gt, "<": operator.lt, ">=": operator.ge}[op]
            pool = candidates if candidates is not None else w.runs.values()
            picked = [r for r in pool if test(r.created_ms, bound)]
        else:
            rest.append(f)
            continue
        if candidates is None:
            candidates = picked
        else:
            keep = {id(r) for r in picked}
            candidates = [r for r in candidates if id(r) in keep]
    visible_until = w.now_ms() - int(listing_delay * 1000)
    runs = [
        r
        for r in (candidates if candidates is not None else w.runs.values())
        if r.sandbox == sandbox and r.created_ms <= visible_until
    ]
    if order and order.lstrip("+-") == "createdAt":
        runs.sort(key=lambda r: r.created_ms, reverse=order.startswith("-"))
    return runs, rest


async def create_run(
    world: World,
    request: web.Request,
    times: tuple[float, float] = (0.5, 2.0),
    on_created: Callable[[SimRun], None] | None = None,
    profile: ApiProfile = FRIENDLY,
) -> web.Response:
    """POST /runs as Adobe's on-demand and ad hoc flow run tutorials describe it. Table-based flows need `deltaColumn` on their
    first run and refuse a different one later; file-based flows answer with the whole run,
    table-based ones with `{"items": [{"id", "etag"}]}` (the tutorials show both shapes). The time
    params must have the form `profile.run_params` says; an API that wants the spec's integers
    answers in the spec's shape, `{id, etag}`."""
    try:
        body = await request.json()
    except ValueError:
        return adobe_error("FLOW-1400-400", 400, "request body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("params", {}), dict):
        return adobe_error("FLOW-1400-400", 400, "request body must be an object with params")
    flow = world.flows.get(str(body.get("flowId")))
    if flow is None or flow.sandbox != request.headers["x-sandbox-name"]:
        return adobe_error("FLOW-1439-404", 404, "Flow not found", "Resource not found")
    params = body.get("params") or {}
    for key in ("windowStartTime", "windowEndTime"):
        if not str(params.get(key, "")).isdigit():
            return adobe_error("FLOW-1452-400", 400, f"Invalid value {params.get(key)!r} for field {key}")
    wrong = wrong_param_types(params, profile.run_params)
    if wrong:
        return validation_error(profile.run_params_status, wrong, profile.run_params)
    delta = (params.get("deltaColumn") or {}).get("name") if isinstance(params.get("deltaColumn"), dict) else None
    if flow.table_based:
        first = not flow.delta_column and not world.runs_by_flow.get(flow.id)
        if first and not delta:
            return adobe_error(
                "FLOW-1466-400", 400, "deltaColumn is required for the first flow run of a table-based source"
            )
        if delta and flow.delta_column and delta != flow.delta_column:
            return adobe_error(
                "FLOW-1467-400",
                400,
                f"deltaColumn cannot be changed from "
                f"{flow.delta_column!r}: it is part of the flow's copy transformation",
            )
        flow.delta_column = flow.delta_column or delta
    run = world.start_run(flow.id, status="scheduled")
    run.params = params
    now = world.clock()
    world.schedule(run, now + times[0], now + times[1])
    if on_created is not None:
        on_created(run)
    etag = f'"{run.id[:8]}"'
    if profile.run_params == "integer":
        return json_response({"id": run.id, "etag": etag}, 201)
    if flow.table_based:
        return json_response({"items": [{"id": run.id, "etag": etag}]}, 201)
    return json_response(world.run_json(run), 201)


def retrigger_run(
    world: World,
    request: web.Request,
    times: tuple[float, float] = (0.5, 2.0),
    on_created: Callable[[SimRun], None] | None = None,
    profile: ApiProfile = FRIENDLY,
) -> tuple[web.Response, SimRun | None]:
    """POST /runs/{id}/action?op=… as Adobe's tutorial "Retry failed dataflow runs" describes it:
    only a failed run, or a successful one that ingested no records, is re-triggered; the new run
    runs the same window again (its params are the old run's) and links to it (`retry_of`). The op
    must be spelled as `profile.retrigger_op` says; the tutorial's spelling is answered with
    `{id, etag}`, the spec's with the whole new run. Returns the answer and the new run, if any."""
    op = request.query.get("op")
    if op != profile.retrigger_op:
        message = f"Invalid value {op!r} for query parameter op: expected one of [{profile.retrigger_op}]"
        return adobe_error("FLOW-1400-400", 400, f"Request validation failed: {message}"), None
    old = world.runs.get(request.match_info["run_id"])
    if old is None or old.sandbox != request.headers["x-sandbox-name"]:
        return adobe_error("FLOW-1439-404", 404, "Flow run not found", "Resource not found"), None
    ingested = old.output_records or 0
    if not (old.status == "failed" or (old.status == "success" and ingested == 0)):
        message = (
            f"Flow run {old.id} cannot be re-triggered: its status is {old.status} with {ingested} records "
            "ingested (only failed runs, or successful runs that ingested no records, can be)"
        )
        return adobe_error("FLOW-1481-400", 400, message), None
    run = world.start_run(old.flow_id, status="scheduled")
    run.params, run.retry_of = copy.deepcopy(old.params), old.id
    now = world.clock()
    world.schedule(run, now + times[0], now + times[1])
    if on_created is not None:
        on_created(run)
    if profile.retrigger_op == "RE_TRIGGER":
        return json_response(world.run_json(run)), run
    return json_response({"id": run.id, "etag": f'"{run.id[:8]}"'}), run


TIME_PARAMS = ("startTime", "windowStartTime", "windowEndTime")


def wrong_param_types(params: dict, wanted: str) -> list[str]:
    """The time params (present ones) not in the wanted form: digit strings, or JSON integers."""
    kind = str if wanted == "string" else int
    return [k for k in TIME_PARAMS if k in params and (not isinstance(params[k], kind) or isinstance(params[k], bool))]


def validation_error(status: int, fields: list[str], wanted: str) -> web.Response:
    """A schema validation refusal of the body, in the shape of Adobe's errors (nothing created)."""
    found = "integer" if wanted == "string" else "string"
    detail = "; ".join(f"params.{k}: expected type {wanted}, found {found}" for k in fields)
    code = "FLOW-1400-400" if status == 400 else "FLOW-1422-422"
    title = "Bad request" if status == 400 else "Unprocessable Entity"
    return adobe_error(code, status, f"Request body validation failed: {detail}", title)


def line_too_long(
    status: int, length: int, limit: int, body: str = "words", request: web.Request | None = None
) -> web.Response:
    """A gateway's refusal of a long request line: 414, or a 400 that says why, or one that
    does not (Adobe's generic "Bad request", or a bare HTML page as nginx-style gateways send),
    or ("close") no answer at all: the connection is closed under the request."""
    if body == "close" and request is not None and request.transport is not None:
        request.transport.abort()
        return web.Response(status=400)  # never reaches the client
    if status == 414:
        return web.Response(status=414, text="414 Request-URI Too Large", content_type="text/html")
    if body == "html":
        page = "<html><head><title>400 Bad Request</title></head><body><h1>400 Bad Request</h1></body></html>"
        return web.Response(status=400, text=page, content_type="text/html")
    if body == "adobe":
        return adobe_error("400", 400, "Bad request")
    return json_response({"title": "Bad Request", "detail": f"Request line too long ({length} > {limit} bytes)"}, 400)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")


def adobe_error(code: str, status: int, message: str, title: str = "Bad request") -> web.Response:
    """Flow Service's RFC7807-like error body, as Adobe's API docs show it."""
    return json_response(
        {
            "type": f"https://ns.adobe.com/aep/errors/{code}",
            "title": title,
            "status": status,
            "report": {"detailed-message": message, "request-id": secrets.token_hex(8)},
            "errorMessage": message,
        },
        status,
    )
