"""Every request the exporter sends, checked against Adobe's published contract.

The exporter is run the ways a user runs it (the daemon, batched and per flow, with discovery and
paging; `trigger --wait`) against the simulator, which records each request as it arrives. Each
request is then checked against the facts below, copied from Adobe's documents: method and path,
query parameter names and types, headers, the POST /runs body and its types. What our requests do
beyond those documents is not an error but must be named in UNDOCUMENTED (nothing documents it) or
TUTORIAL_NOT_SPEC (a tutorial shows it, the OpenAPI spec says otherwise); the test fails on a
request that relies on anything else, and on a named assumption no request relies on any more, so
both lists stay exact. Issue 10 makes the exporter check the undocumented ones at run time.

Sources:
- SPEC: AdobeDocs/experience-platform-apis static/swagger-specs/flow-service.yaml @16c60cd7 (2026-06-11)
- SORT: AdobeDocs/experience-platform.en help/dataflows/api/sort-and-filter.md @0cc1cd61
- MONITOR: AdobeDocs/experience-platform.en help/dataflows/api/monitor.md, help/sources/tutorials/api/monitor.md
- ON-DEMAND: help/sources/tutorials/api/on-demand-ingestion.md
- NAMES: the connection specs and target connections the exporter reads for names: SPEC
  listConnectionSpecs (`property` only), retrieveConnectionSpec, getTargetConnections (LIST_QUERY),
  retrieveTargetConnection; SORT's tables show `id==a,b` on both.
- CATALOG: AdobeDocs/experience-platform-apis static/swagger-specs/catalog.yaml, retrieveDataset
  (`GET /dataSets/{DATASET_ID}` with `properties`, answered as an object keyed by ID).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from typing import Any

import pytest
from aiohttp import web
from conftest import ExporterProcess, config_yaml, eventually, scrape, value

from exporter.simulator import BASE_PATH, TOKEN_PATH, Simulator, World, start_simulator
from exporter.simulator.catalog import CATALOG_PATH

# --- the documented contract -------------------------------------------------------------------

# SPEC `info.description` and each operation's parameters: `required: true` on these three.
REQUIRED_HEADERS = ("Authorization", "x-api-key", "x-gw-ims-org-id")
# SPEC: declared on every operation without `required`, but info.description says "All requests
# to Platform APIs require the header x-sandbox-name whose value is the all-lowercase name".
SANDBOX_HEADER = "x-sandbox-name"
# SPEC info.description: "All requests with a payload in the request body (such as POST, PUT, and
# PATCH calls) must include the header Content-Type with a value of application/json".
BODY_CONTENT_TYPE = "application/json"
# Headers any HTTP client sends, outside the contract.
HTTP_HEADERS = {"host", "accept", "accept-encoding", "user-agent", "content-length", "content-type"}

# SPEC components.parameters shared by listFlows and listFlowRuns (types as declared).
LIST_QUERY = {
    "property": "array",  # items string, style form, explode false
    "limit": "integer",
    "orderby": "string",
    "continuationToken": "string",
    "count": "boolean",
}
CATALOG = "catalog:"  # a template under Catalog Service's base path rather than the Flow Service's
# (method, path template) -> (SPEC or CATALOG operationId, query parameters).
OPERATIONS: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("GET", "/flows"): ("listFlows", LIST_QUERY),
    ("GET", "/flows/{FLOW_ID}"): ("retrieveFlow", {}),
    ("GET", "/runs"): ("listFlowRuns", LIST_QUERY),
    ("GET", "/runs/{RUN_ID}"): ("retrieveFlowRun", {}),
    ("POST", "/runs"): ("createFlowRun", {}),
    ("GET", "/connectionSpecs"): ("listConnectionSpecs", {"property": "array"}),
    ("GET", "/connectionSpecs/{CONNECTION_SPEC_ID}"): ("retrieveConnectionSpec", {}),
    ("GET", "/targetConnections"): ("getTargetConnections", LIST_QUERY),
    ("GET", "/targetConnections/{TARGET_CONNECTION_ID}"): ("retrieveTargetConnection", {}),
    ("GET", CATALOG + "/dataSets/{DATASET_ID}"): ("retrieveDataset", {"properties": "string"}),
}
LISTINGS = ("/flows", "/runs", "/connectionSpecs", "/targetConnections")
# SPEC CreateFlowRunRequest: flowId string; params.startTime, windowStartTime, windowEndTime integer.
CREATE_FLOW_RUN_REQUEST = {"flowId": str, "params": {"startTime": int, "windowStartTime": int, "windowEndTime": int}}
# SPEC createFlowRun 201: `{id, etag}`; ON-DEMAND shows `{"items": [{id, etag}]}` (both are read).

# Filter operators the documents show: SORT (==, >, <) and SPEC's `lastRunDetails.startedAtUTC>=`.
OPERATORS = ("==", ">=", ">", "<")
# (endpoint, property path, operator) -> whether a comma list of values is shown ("any of").
DOCUMENTED_FILTERS: dict[tuple[str, str, str], bool] = {
    # SORT "Filterable properties by resource", run table.
    ("/runs", "id", "=="): True,  # /runs?property=id==736873,9485095
    ("/runs", "flowId", "=="): False,  # /runs?property=flowId==8749844; MONITOR: GET /runs?property=flowId=={FLOW_ID}
    ("/runs", "state", "=="): False,  # /runs?property=state==inProgress
    # SORT "Use cases".
    ("/runs", "metrics.durationSummary.startedAtUTC", ">"): False,
    ("/runs", "metrics.durationSummary.startedAtUTC", "<"): False,
    ("/runs", "metrics.statusSummary.status", "=="): False,
    ("/runs", "metrics.recordSummary.targetSummaries[].entitySummaries[].id", "=="): False,
    # SORT flow table and use cases; SPEC listFlows' property description.
    ("/flows", "id", "=="): True,
    ("/flows", "name", "=="): False,
    ("/flows", "description", "=="): False,
    ("/flows", "flowSpec.id", "=="): True,
    ("/flows", "state", "=="): False,  # /flows?property=state==enabled
    ("/flows", "sourceConnectionIds[]", "=="): True,
    ("/flows", "targetConnectionIds[]", "=="): True,
    ("/flows", "inheritedAttributes.properties.isDestinationFlow", "=="): False,
    ("/flows", "inheritedAttributes.targetConnections[].connectionSpec.id", "=="): False,
    ("/flows", "transformations[].params.segmentSelectors.selectors[].value.id", "=="): False,
    ("/flows", "lastRunDetails.startedAtUTC", ">="): False,
    # SORT "Filterable properties by resource", connectionSpec and targetConnection tables.
    ("/connectionSpecs", "id", "=="): True,  # /connectionSpecs?property=id==736873,9485095
    ("/connectionSpecs", "name", "=="): False,
    ("/connectionSpecs", "providerId", "=="): False,
    ("/targetConnections", "id", "=="): True,  # /targetConnections?property=id==736873,9485095
    ("/targetConnections", "connectionSpec.id", "=="): True,
    ("/targetConnections", "baseConnectionId", "=="): True,
}
# SORT: "Runs" are listed as sortable, but only flow fields are shown: orderby=name, -name, createdAt.
DOCUMENTED_ORDERBY = {
    "/flows": {"name", "createdAt"},
    "/runs": set(),
    "/connectionSpecs": set(),
    "/targetConnections": set(),
}
# Adobe's OAuth server-to-server token call (help/landing/platform-apis/api-authentication.md).
TOKEN_FORM = {"grant_type", "client_id", "client_secret", "scope"}

# --- what we do beyond it -------------------------------------------------------------------------

UNDOCUMENTED = {
    "/runs property=createdAt>": "new runs since a time by createdAt; SORT documents only "
    "metrics.durationSummary.startedAtUTC> and < for a time window on /runs",
    "/runs property=flowId== comma list": "many flows per request (the batched strategy); comma lists are "
    "shown for id and flowSpec.id, flowId only with one value",
    "/runs orderby=createdAt": "newest first; /runs is sortable (SORT) but no run field is shown",
    "/flows property=state== comma list": "discovery over several states; state is shown with one value",
    "limit=100": "page size; no default or maximum is documented for GET lists (FlowFilterRequest's "
    "maximum 1000 is for POST /flows/search)",
    "continuationToken with the filters sent again": "SPEC's PageLink example is a bare "
    "`/connections?continuationToken=…`; whether the token carries the filters is not said, so they are re-sent",
    "x-request-id header": "sent for tracing; the Flow Service spec does not declare it",
    "Catalog dataSets/a,b": "several datasets in one lookup, IDs joined by commas in the path (Catalog's guide "
    "shows it for looking up several objects; CATALOG's retrieveDataset takes one DATASET_ID)",
}
TUTORIAL_NOT_SPEC = {
    "property repeated": "one `property=` per filter (SORT 'Combining filters'); the SPEC declares property "
    "as one array in form style, explode false, i.e. a single comma-separated value",
    "POST /runs params as strings": "ON-DEMAND sends startTime/windowStartTime/windowEndTime as strings of "
    "unix seconds; CreateFlowRunRequest types them integer ('milliseconds', with examples in seconds). We send "
    "the strings first, and the same seconds as integers after a validation refusal (or with --params-as integer)",
    "POST /runs params.deltaColumn": "ON-DEMAND requires deltaColumn on a table-based flow's first run; "
    "CreateFlowRunRequest has no such property",
}

_FILTER = re.compile(r"^([A-Za-z_][\w.\[\]]*?)(==|!=|>=|<=|>|<)(.*)$")


def _operation(method: str, path: str) -> tuple[str, str] | None:
    if path.startswith(CATALOG_PATH):
        path = BASE_PATH + CATALOG + path[len(CATALOG_PATH) :]
    if not path.startswith(BASE_PATH):
        return None
    rest = path[len(BASE_PATH) :]
    for m, template in OPERATIONS:
        pattern = "^" + re.sub(r"\{[A-Z_]+\}", "[^/]+", template) + "$"
        if m == method and re.match(pattern, rest):
            return m, template
    return None


def check_request(req: dict[str, Any]) -> tuple[list[str], set[str]]:
    """(problems, assumptions) of one recorded request: `problems` are departures from the
    contract that no list names; `assumptions` the named ones it relies on."""
    where = f"{req['method']} {req['path']}"
    op = _operation(req["method"], req["path"])
    if op is None:
        return [f"{where}: not a documented operation"], set()
    method, template = op
    endpoint = template if template in LISTINGS else ""
    problems: list[str] = []
    used: set[str] = set()
    if template.startswith(CATALOG) and "," in req["path"]:
        used.add("Catalog dataSets/a,b")
    problems += _check_headers(where, method, req["headers"], used)
    problems += _check_query(where, endpoint, OPERATIONS[op][1], req["query"], used)
    if method == "POST":
        problems += _check_body(where, req.get("body"), used)
    return problems, used


def _check_headers(where: str, method: str, headers: dict[str, str], used: set[str]) -> list[str]:
    h = {k.lower(): v for k, v in headers.items()}
    problems = [f"{where}: header {k} missing" for k in REQUIRED_HEADERS if not h.get(k.lower())]
    if not h.get("authorization", "").startswith("Bearer "):
        problems.append(f"{where}: Authorization is not 'Bearer <token>'")
    sandbox = h.get(SANDBOX_HEADER, "")
    if not sandbox or sandbox != sandbox.lower():
        problems.append(f"{where}: {SANDBOX_HEADER} missing or not all-lowercase: {sandbox!r}")
    if method == "POST" and not h.get("content-type", "").startswith(BODY_CONTENT_TYPE):
        problems.append(f"{where}: Content-Type is not {BODY_CONTENT_TYPE}")
    known = {k.lower() for k in (*REQUIRED_HEADERS, SANDBOX_HEADER)} | HTTP_HEADERS
    for k in h:
        if k == "x-request-id":
            used.add("x-request-id header")
        elif k not in known:
            problems.append(f"{where}: header {k} is not in the contract")
    return problems


def _check_query(where: str, endpoint: str, allowed: dict[str, str], query: list, used: set[str]) -> list[str]:
    problems = []
    names = [k for k, _ in query]
    for name, v in query:
        kind = allowed.get(name)
        if kind is None:
            problems.append(f"{where}: query parameter {name} is not documented here")
        elif kind == "integer" and not re.fullmatch(r"\d+", v):
            problems.append(f"{where}: {name}={v!r} is not an integer")
        elif kind == "boolean" and v not in ("true", "false"):
            problems.append(f"{where}: {name}={v!r} is not a boolean")
        elif name == "limit":
            used.add("limit=100")
        elif name == "property":
            problems += _check_filter(where, endpoint, v, used)
        elif name == "orderby" and v.lstrip("+-") not in DOCUMENTED_ORDERBY[endpoint]:
            used.add(f"{endpoint} orderby={v.lstrip('+-')}")
    if names.count("property") > 1:
        used.add("property repeated")
    if "continuationToken" in names and len(set(names)) > 1:
        used.add("continuationToken with the filters sent again")
    return problems


def _check_filter(where: str, endpoint: str, expr: str, used: set[str]) -> list[str]:
    m = _FILTER.match(expr)
    if m is None or m.group(2) not in OPERATORS:
        return [f"{where}: property={expr!r} is not a filter in the documented syntax"]
    path, op, values = m.groups()
    multi = DOCUMENTED_FILTERS.get((endpoint, path, op))
    if multi is None:
        used.add(f"{endpoint} property={path}{op}")
    elif "," in values and not multi:
        used.add(f"{endpoint} property={path}{op} comma list")
    return []


def _check_body(where: str, body: Any, used: set[str]) -> list[str]:
    if not isinstance(body, dict):
        return [f"{where}: body is not a JSON object"]
    problems = [
        f"{where}: body field {k} is not in CreateFlowRunRequest" for k in body if k not in CREATE_FLOW_RUN_REQUEST
    ]
    if not isinstance(body.get("flowId"), str):
        problems.append(f"{where}: flowId is not a string")
    params = body.get("params")
    if not isinstance(params, dict):
        return [*problems, f"{where}: params is not an object"]
    spec = CREATE_FLOW_RUN_REQUEST["params"]
    assert isinstance(spec, dict)
    for k, v in params.items():
        if k == "deltaColumn":
            used.add("POST /runs params.deltaColumn")
        elif k not in spec:
            problems.append(f"{where}: params.{k} is not in CreateFlowRunRequest")
        elif isinstance(v, str) and v.isdigit():
            used.add("POST /runs params as strings")
        elif not isinstance(v, spec[k]) or isinstance(v, bool):
            problems.append(f"{where}: params.{k}={v!r} is not an integer")
    return problems


# --- the checker itself can fail ------------------------------------------------------------------


def _req(method: str, path: str, query=(), body=None, **headers: str) -> dict[str, Any]:
    h = {"Authorization": "Bearer t", "x-api-key": "k", "x-gw-ims-org-id": "o@AdobeOrg", "x-sandbox-name": "prod"}
    return {"method": method, "path": BASE_PATH + path, "query": list(query), "headers": {**h, **headers}, "body": body}


@pytest.mark.parametrize(
    "req, problem",
    [
        (_req("GET", "/runs", [("start", "0")]), "query parameter start is not documented"),
        (_req("GET", "/runs", [("limit", "ten")]), "limit='ten' is not an integer"),
        (_req("GET", "/runs", [("property", "name~crm")]), "not a filter in the documented syntax"),
        (_req("GET", "/flows/x", [("limit", "5")]), "query parameter limit is not documented"),
        (_req("DELETE", "/flows/x"), "not a documented operation"),
        (_req("GET", "/runs", **{"x-sandbox-name": "Prod"}), "not all-lowercase"),
        (_req("GET", "/runs", **{"x-api-key": ""}), "header x-api-key missing"),
        (_req("POST", "/runs", body={"flowId": "f", "params": {"startTime": 1}}), "Content-Type"),
        (
            _req("POST", "/runs", body={"flowId": "f", "params": {"start": 1}}, **{"Content-Type": "application/json"}),
            "params.start is not in CreateFlowRunRequest",
        ),
        (
            _req("POST", "/runs", body={"flowId": 1, "params": {}}, **{"Content-Type": "application/json"}),
            "flowId is not a string",
        ),
    ],
)
def test_the_checker_catches_departures(req, problem):
    problems, _ = check_request(req)
    assert any(problem in p for p in problems), problems


def test_the_checker_names_assumptions():
    _, used = check_request(
        _req("GET", "/runs", [("property", "flowId==a,b"), ("property", "createdAt>1"), ("orderby", "-createdAt")])
    )
    assert used == {
        "/runs property=flowId== comma list",
        "/runs property=createdAt>",
        "/runs orderby=createdAt",
        "property repeated",
    }
    problems, used = check_request(_req("GET", "/runs", [("property", "flowId==a")]))
    assert problems == [] and used == set()  # MONITOR's own call


# --- every request the exporter sends ------------------------------------------------------------


@pytest.fixture
async def recording():
    """The simulator with small pages (so continuation requests are sent) and POST bodies kept."""
    world = World()
    simulator = Simulator(world, max_page_size=2)
    bodies: list[Any] = []
    create_run = simulator.create_run

    async def recorded_create_run(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return await create_run(request)

    simulator.create_run = recorded_create_run  # type: ignore[method-assign]
    runner, origin = await start_simulator(simulator)
    simulator.origin = origin  # type: ignore[attr-defined]
    yield simulator, bodies
    await runner.cleanup()


async def _cycles(exp: ExporterProcess, n: int) -> None:
    seen: list[float] = []

    async def moved() -> bool:
        v = value(await scrape(exp.url), "aep_exporter_last_poll_success_timestamp_seconds", sandbox="prod")
        if v is not None and (not seen or v != seen[-1]):
            seen.append(v)
        return len(seen) > n

    await eventually(moved, what=f"{n} poll cycles")


async def _trigger(config: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "trigger",
        "--config.file",
        config,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEST_AEP_SECRET": "demo-secret-not-for-production"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, (out + err).decode()


async def test_every_request_the_exporter_sends_is_documented_or_a_named_assumption(recording, tmp_path):
    sim, bodies = recording
    world = sim.world
    flows = [world.add_flow("prod", f"crm-{i}", period=None) for i in range(3)]
    world.add_flow("prod", "old-feed", state="disabled", flow_spec_id="14518937-270c-4525-bdec-c2ba7cce3860")
    table = world.add_flow("prod", "crm-accounts", table_based=True)
    for i in range(5):  # more than a page
        run = world.start_run(flows[0].id, created_ms=world.now_ms() - (i + 2) * 60_000)
        world.finish_run(run.id, "success")
    world.start_run(flows[1].id, created_ms=world.now_ms() - 3_600_000)  # in flight, older than the overlap

    # 1. The daemon, batched, with named flows and discovery over two states.
    discover = "    discover:\n      states: [enabled, disabled]\n      flow_spec_ids: [9753525b-82c7-4dce-8a9b-5ccfce2b9876]\n"
    text = config_yaml(sim, {"prod": [flows[0].id]}).replace("    flows: [", discover + "    flows: [")
    batched = tmp_path / "batched.yaml"
    batched.write_text(text + "discovery_interval: 1s\nstate_file: null\nfetch_strategy: batched\n")
    async with ExporterProcess("--config.file", str(batched)) as exp:
        await _cycles(exp, 3)

    # 2. The daemon, per flow.
    per_flow = tmp_path / "per_flow.yaml"
    per_flow.write_text(
        config_yaml(sim, {"prod": [flows[0].id, flows[2].id]}) + "state_file: null\nfetch_strategy: per_flow\n"
    )
    async with ExporterProcess("--config.file", str(per_flow)) as exp:
        await _cycles(exp, 2)

    # 3. trigger: a table-based flow's first run (with deltaColumn), followed until it completes.
    async def tick() -> None:
        while True:
            world.tick()
            await asyncio.sleep(0.1)

    ticker = asyncio.create_task(tick())
    try:
        now = int(time.time())
        code, out = await _trigger(
            str(per_flow), "--sandbox", "prod", "--flow", table.id, "--window-start", str(now - 7200),
            "--window-end", str(now - 3600), "--delta-column", "DOB", "--wait", "--wait-interval", "0.2",
        )  # fmt: skip
    finally:
        ticker.cancel()
    assert code == 0, out

    # 4. trigger against an API that wants the spec's integers: the strings are refused, then the
    #    same body with integers, which must match CreateFlowRunRequest with no assumption.
    sim.profile = sim.profile.but(run_params="integer")
    code, out = await _trigger(str(per_flow), "--sandbox", "prod", "--flow", flows[2].id, "--window-start",
                               str(now - 7200), "--window-end", str(now - 3600))  # fmt: skip
    assert code == 0 and "as integers" in out, out
    assert check_request(_req("POST", "/runs", body=bodies[-1], **{"Content-Type": "application/json"})) == ([], set())

    for req, body in zip(
        [r for r in sim.requests if r["method"] == "POST" and r["path"].startswith(BASE_PATH)], bodies
    ):
        req["body"] = body
    problems: list[str] = []
    used: set[str] = set()
    operations: set[tuple[str, str]] = set()
    for req in sim.requests:
        if req["path"] == TOKEN_PATH:
            continue
        p, u = check_request(req)
        problems += p
        used |= u
        op = _operation(req["method"], req["path"])
        if op:
            operations.add(op)
    assert sorted(set(problems)) == []
    assert used == set(UNDOCUMENTED) | set(TUTORIAL_NOT_SPEC), "name new assumptions; drop ones no longer made"
    assert operations == {
        ("GET", "/flows"),
        ("GET", "/flows/{FLOW_ID}"),
        ("GET", "/runs"),
        ("POST", "/runs"),
        ("GET", "/connectionSpecs"),  # names: one list of the connectors' specs
        ("GET", "/targetConnections"),  # names: the flows' datasets
        ("GET", CATALOG + "/dataSets/{DATASET_ID}"),  # names: the datasets' names, several at once
    }
    assert sim.token_requests and all(set(form) == TOKEN_FORM for form in sim.token_requests)
    assert json.loads(json.dumps(bodies))  # a POST /runs was sent and recorded
