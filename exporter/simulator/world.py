"""The simulated Flow Service's state: flows, runs and their lifecycle, and the ground truth.

Runs are rendered in the shapes of Adobe's tutorial "Monitor dataflows using the Flow Service API": `metrics`
with duration/size/record/file/status summaries, a copy and a promotion activity (old-style ids
`copyActivity`/`promotionActivity` or new-style GUID ids with names), error codes at run and
activity level, and -1 sentinels on failed runs. The seed's own flow and run are served verbatim.

Tests drive runs explicitly (`start_run`, `finish_run`); the demo turns on `autopilot` so runs go
scheduled → inProgress → success/failed on their own, in real time.
"""

from __future__ import annotations

import copy
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

SEED_FLOW_ID = "c9cef9cb-c934-4467-8ef9-cbc934546741"
SEED_RUN_ID = "9830305a-985f-47d0-b030-5a985fd7d004"
COPY_ACTIVITY_ID = "4f008a00-3a04-11eb-adc1-0242ac120002"
PROMOTION_ACTIVITY_ID = "37b34f84-1ada-11eb-adc1-0242ac120002"
_EPOCH_KEYS = {"createdAt", "updatedAt", "startedAtUTC", "completedAtUTC", "updatedAtUTC", "windowStart", "windowEnd"}


def load_seed() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("seed_001.json").read_text(encoding="utf-8"))


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def shift_epochs(value: Any, delta_ms: int) -> Any:
    """The seed's payload moved in time by `delta_ms`, every epoch-ms field alike."""
    if isinstance(value, dict):
        return {
            k: (v + delta_ms if k in _EPOCH_KEYS and isinstance(v, int) and v > 1e11 else shift_epochs(v, delta_ms))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [shift_epochs(v, delta_ms) for v in value]
    return value


@dataclass
class SimFlow:
    id: str
    sandbox: str
    name: str
    state: str = "enabled"
    flow_spec_id: str = "9753525b-82c7-4dce-8a9b-5ccfce2b9876"
    source_spec_id: str = "ecadc60c-7455-4d87-84dc-2a0e293d997b"
    target_spec_id: str = "c604ff05-7f1a-43c0-8e18-33bf874cb11c"
    frequency: str = "hour"
    interval: int = 1
    old_style_activities: bool = False
    is_destination: bool = False
    table_based: bool = False  # on-demand runs need a deltaColumn on their first run (Adobe's tutorial)
    delta_column: str | None = None
    # Autopilot: seconds between runs, and the outcomes to cycle through ('success', 'failed',
    # 'partial' = success with failed records). Empty means random.
    period: float | None = None
    script: list[str] = field(default_factory=list)
    raw: dict[str, Any] | None = None  # served verbatim when set (the seed flow)
    dataset_id: str | None = None  # its target connection's params.dataSetId (derived from the id if None)


@dataclass
class SimRun:
    id: str
    flow_id: str
    sandbox: str
    created_ms: int
    status: str = "scheduled"
    started_ms: int | None = None
    completed_ms: int | None = None
    updated_ms: int = 0
    input_records: int | None = None
    output_records: int | None = None
    failed_records: int | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    input_files: int | None = None
    output_files: int | None = None
    run_errors: list[dict[str, Any]] = field(default_factory=list)
    activity_errors: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    # autopilot schedule
    start_at: float | None = None
    end_at: float | None = None
    outcome: str | None = None
    # The run this one re-triggers (POST /runs/{id}/action): a retry runs the same window again.
    retry_of: str | None = None

    @property
    def completed(self) -> bool:
        return self.status in ("success", "failed", "cancelled", "partialSuccess", "partialFailure", "completed")


class World:
    def __init__(
        self,
        client_id: str = "demo-client",
        client_secret: str = "demo-secret-not-for-production",
        org_id: str = "0123456789ABCDEF@AdobeOrg",
        token_lifetime: float = 86399,
        clock: Callable[[], float] = time.time,
        seed: int = 7,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.org_id = org_id
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.rng = random.Random(seed)
        self.sandboxes: dict[str, str] = {}  # name -> id
        self.flows: dict[str, SimFlow] = {}
        self.runs: dict[str, SimRun] = {}
        self.runs_by_flow: dict[str, list[SimRun]] = {}  # index for the listing's flowId== filter
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch s)
        self.tokens_issued = 0
        self._script_pos: dict[str, int] = {}
        self._live: dict[str, SimRun] = {}  # runs the autopilot moves along, until they complete
        self._next_run_at: dict[str, float] = {}
        self.on_finish: list[Callable[[SimRun], None]] = []  # told of each run completed (events.py announces it)

    # --- set-up ----------------------------------------------------------------------------------

    def add_sandbox(self, name: str) -> None:
        self.sandboxes.setdefault(name, str(uuid.UUID(int=self.rng.getrandbits(128))))

    def add_flow(self, sandbox: str, name: str, flow_id: str | None = None, **kw: Any) -> SimFlow:
        self.add_sandbox(sandbox)
        flow = SimFlow(id=flow_id or self.new_id(), sandbox=sandbox, name=name, **kw)
        self.flows[flow.id] = flow
        return flow

    def add_seed(self, sandbox: str = "prod", shift_to_now: bool = False) -> SimFlow:
        """Adobe's example flow and run from its monitoring tutorial; moved to the recent past if asked (the demo
        does, so a 24 h lookback finds it; the tests don't, to check the seed's exact numbers)."""
        seed = load_seed()
        flow_raw, run_raw = seed["flow"], seed["run"]
        if shift_to_now:
            delta = int(self.clock() * 1000) - 600_000 - run_raw["createdAt"]
            flow_raw, run_raw = shift_epochs(flow_raw, delta), shift_epochs(run_raw, delta)
        flow_raw["sandboxName"] = sandbox
        run_raw["sandboxName"] = sandbox
        flow = self.add_flow(sandbox, flow_raw["name"], flow_raw["id"], frequency="once", raw=flow_raw)
        run = SimRun(
            id=run_raw["id"],
            flow_id=flow.id,
            sandbox=sandbox,
            created_ms=run_raw["createdAt"],
            status=run_raw["metrics"]["statusSummary"]["status"],
            updated_ms=run_raw["updatedAt"],
            raw=run_raw,
        )
        self._add_run(run)
        return flow

    def serve_run(self, flow_id: str, raw: dict[str, Any]) -> SimRun:
        """Serve `raw` verbatim as a run of `flow_id` (tests/payloads: Adobe's documented shapes).
        Listings filter and order it by its createdAt, else its startedAtUTC, else updatedAt, else
        now: a destination run as Adobe documents it has no createdAt, and whether the real API's
        `createdAt>` filter lists such a run is unknown (see tests/integration/test_contract.py)."""
        metrics = _dict(raw.get("metrics"))
        duration, status = _dict(metrics.get("durationSummary")), _dict(metrics.get("statusSummary"))
        when = next(
            (
                t
                for t in (raw.get("createdAt"), duration.get("startedAtUTC"), raw.get("updatedAt"))
                if isinstance(t, int)
            ),
            self.now_ms(),
        )
        when = when * 1000 if when < 1e11 else when  # epoch seconds, as in notification payloads
        run = SimRun(
            id=str(raw["id"]),
            flow_id=flow_id,
            sandbox=self.flows[flow_id].sandbox,
            created_ms=when,
            status=str(status.get("status") or "unknown"),
            updated_ms=when,
            raw=copy.deepcopy(raw),
        )
        self._add_run(run)
        return run

    def _add_run(self, run: SimRun) -> None:
        self.runs[run.id] = run
        self.runs_by_flow.setdefault(run.flow_id, []).append(run)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # --- driving runs ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start_run(self, flow_id: str, status: str = "inProgress", created_ms: int | None = None) -> SimRun:
        flow = self.flows[flow_id]
        now = self.now_ms()
        run = SimRun(
            id=self.new_id(),
            flow_id=flow_id,
            sandbox=flow.sandbox,
            created_ms=created_ms if created_ms is not None else now,
            status=status,
            updated_ms=now,
        )
        if status != "scheduled":
            run.started_ms = run.created_ms + 500
        self._add_run(run)
        return run

    def finish_run(self, run_id: str, outcome: str = "success", **numbers: Any) -> SimRun:
        """Complete a run. outcome: success, failed, partial (success with failed records), or any
        status string. Numbers not given are made up like a real connector's."""
        run = self.runs[run_id]
        now = self.now_ms()
        run.started_ms = run.started_ms or run.created_ms + 500
        run.completed_ms = numbers.pop("completed_ms", max(now, run.started_ms + 1000))
        run.updated_ms = now
        if outcome == "failed":
            run.status = "failed"
            run.input_records = numbers.get("input_records", 0)
            run.output_records = numbers.get("output_records", 0)
            run.failed_records = numbers.get("failed_records", 0)
            run.input_bytes = numbers.get("input_bytes", -1)  # Adobe's "unknown" on failed runs
            run.output_bytes = numbers.get("output_bytes", 0)
            run.input_files = numbers.get("input_files", -1)
            run.output_files = numbers.get("output_files", 0)
            run.run_errors = [{"code": "CONNECTOR-1001-500", "message": "Error in copying the data from Source."}]
            run.activity_errors = []
        else:
            run.status = "success" if outcome in ("success", "partial") else outcome
            n = numbers.get("input_records", self.rng.randint(1_000, 50_000))
            failed = numbers.get("failed_records", self.rng.randint(1, max(1, n // 200)) if outcome == "partial" else 0)
            run.input_records = n
            run.failed_records = failed
            run.output_records = numbers.get("output_records", n - failed)
            run.input_bytes = numbers.get("input_bytes", n * self.rng.randint(180, 320))
            run.output_bytes = numbers.get("output_bytes", int(run.input_bytes * 0.7))
            run.input_files = numbers.get("input_files", self.rng.randint(1, 4))
            run.output_files = numbers.get("output_files", 1)
            if failed:
                run.run_errors = [{"code": "CONNECTOR-2001-500", "message": "Error occurred at promotion activity."}]
                run.activity_errors = [
                    {
                        "code": "INGEST-1212-400",
                        "message": f"Encountered {failed} errors in the data. Successfully ingested {n - failed} rows.",
                    },
                    {"code": "MAPPER-3700-400", "recordCount": failed, "message": "Mapper Transform Error"},
                ]
        for hook in self.on_finish:
            hook(run)
        return run

    def next_outcome(self, flow: SimFlow) -> str:
        if flow.script:
            pos = self._script_pos.get(flow.id, 0)
            self._script_pos[flow.id] = pos + 1
            return flow.script[pos % len(flow.script)]
        return self.rng.choices(["success", "partial", "failed"], weights=[80, 15, 5])[0]

    def schedule(self, run: SimRun, start_at: float, end_at: float, outcome: str | None = None) -> None:
        """Have the autopilot start `run` at `start_at` and finish it at `end_at`."""
        run.start_at, run.end_at = start_at, end_at
        run.outcome = outcome or self.next_outcome(self.flows[run.flow_id])
        self._live[run.id] = run

    def tick(self) -> None:
        """Autopilot: start runs on each flow's period and move them along."""
        now = self.clock()
        for flow in list(self.flows.values()):
            if flow.period is None or flow.state != "enabled":
                continue
            due = self._next_run_at.setdefault(flow.id, now + self.rng.uniform(0, flow.period / 2))
            if now >= due:
                self._next_run_at[flow.id] = now + flow.period
                run = self.start_run(flow.id, status="scheduled")
                start = now + self.rng.uniform(2, 5)
                self.schedule(run, start, start + self.rng.uniform(8, min(40.0, flow.period * 0.8)))
        for run in list(self._live.values()):
            if run.completed or run.start_at is None:
                del self._live[run.id]
                continue
            if run.status == "scheduled" and now >= run.start_at:
                run.status, run.started_ms, run.updated_ms = "inProgress", int(now * 1000), int(now * 1000)
            if run.status == "inProgress" and run.end_at is not None and now >= run.end_at:
                self.finish_run(run.id, run.outcome or "success")

    def delete_run(self, run_id: str) -> None:
        """Adobe deletes a run (in flight or not): it leaves every listing, and `id==` finds nothing."""
        run = self.runs.pop(run_id)
        kept = [r for r in self.runs_by_flow.pop(run.flow_id, ()) if r.id != run_id]
        if kept:  # no empty lists left behind: a world running for days stays the same size
            self.runs_by_flow[run.flow_id] = kept
        self._live.pop(run_id, None)

    def forget(self, before_ms: int) -> int:
        """Drop completed runs created before `before_ms` (a retention, as Adobe has one) and expired
        tokens, so a world left running for days stays the same size. Returns the runs dropped."""
        old = [r for r in self.runs.values() if r.created_ms < before_ms and r.completed and r.id not in self._live]
        for r in old:
            del self.runs[r.id]
        for flow_id in {r.flow_id for r in old}:
            kept = [r for r in self.runs_by_flow.pop(flow_id, ()) if r.id in self.runs]
            if kept:
                self.runs_by_flow[flow_id] = kept
        now = self.clock()
        for token in [t for t, expiry in self.tokens.items() if expiry <= now]:
            del self.tokens[token]
        return len(old)

    # --- ground truth ----------------------------------------------------------------------------

    def completed_runs(self, flow_id: str) -> list[SimRun]:
        return [r for r in self.runs.values() if r.flow_id == flow_id and r.completed]

    # --- JSON, in the seed's shapes --------------------------------------------------------------

    def flow_json(self, flow: SimFlow) -> dict[str, Any]:
        if flow.raw is not None:
            return copy.deepcopy(flow.raw)
        src_conn, tgt_conn = str(uuid.uuid5(uuid.NAMESPACE_URL, flow.id + "/s")), target_connection_id(flow)
        schedule: dict[str, Any] = {"startTime": "1612310466", "frequency": flow.frequency}
        if flow.frequency != "once":
            schedule["interval"] = str(flow.interval)  # Adobe sends these as strings too
        return {
            "createdAt": 1612310466000,
            "updatedAt": 1612310466000,
            "createdBy": "{CREATED_BY}",
            "updatedBy": "{UPDATED_BY}",
            "createdClient": "exc_app",
            "updatedClient": "exc_app",
            "sandboxId": self.sandboxes[flow.sandbox],
            "sandboxName": flow.sandbox,
            "imsOrgId": self.org_id,
            "id": flow.id,
            "name": flow.name,
            "description": f"Simulated dataflow {flow.name}",
            "flowSpec": {"id": flow.flow_spec_id, "version": "1.0"},
            "state": flow.state,
            "version": '"1"',
            "etag": '"1"',
            "sourceConnectionIds": [src_conn],
            "targetConnectionIds": [tgt_conn],
            "inheritedAttributes": {
                "sourceConnections": [
                    {"id": src_conn, "connectionSpec": {"id": flow.source_spec_id, "version": "1.0"}}
                ],
                "targetConnections": [
                    {"id": tgt_conn, "connectionSpec": {"id": flow.target_spec_id, "version": "1.0"}}
                ],
                "properties": {"isDestinationFlow": True} if flow.is_destination else {"isSourceFlow": True},
            },
            "scheduleParams": schedule,
            "runs": f"/runs?property=flowId=={flow.id}",
        }

    def run_json(self, run: SimRun) -> dict[str, Any]:
        if run.raw is not None:
            return copy.deepcopy(run.raw)
        flow = self.flows.get(run.flow_id)
        old = flow.old_style_activities if flow else False
        copy_id, promo_id = ("copyActivity", "promotionActivity") if old else (COPY_ACTIVITY_ID, PROMOTION_ACTIVITY_ID)
        duration: dict[str, Any] = {}
        if run.started_ms:
            duration["startedAtUTC"] = run.started_ms
        if run.completed_ms:
            duration["completedAtUTC"] = run.completed_ms
        status: dict[str, Any] = {"status": run.status}
        if run.run_errors:
            status["errors"] = run.run_errors
            status["activityRefs"] = [promo_id]
        metrics: dict[str, Any] = {"durationSummary": duration, "statusSummary": status}
        activities: list[dict[str, Any]] = []
        if run.completed:
            metrics["sizeSummary"] = {"inputBytes": run.input_bytes, "outputBytes": run.output_bytes}
            metrics["recordSummary"] = {
                "inputRecordCount": run.input_records,
                "outputRecordCount": run.output_records,
                "failedRecordCount": run.failed_records,
            }
            metrics["fileSummary"] = {
                "inputFileCount": run.input_files,
                "outputFileCount": run.output_files,
                "activityRefs": [promo_id],
            }
            mid = (run.started_ms or 0) + ((run.completed_ms or 0) - (run.started_ms or 0)) // 2
            if run.params:
                window = (int(run.params["windowStartTime"]) * 1000, int(run.params["windowEndTime"]) * 1000)
            else:
                window = (run.created_ms - 3_600_000, run.created_ms)
            copy_act = {
                "id": copy_id,
                "updatedAtUTC": mid,
                "durationSummary": {
                    "startedAtUTC": run.started_ms,
                    "completedAtUTC": mid,
                    "extensions": {"windowStart": window[0], "windowEnd": window[1]},
                },
                "sizeSummary": {"inputBytes": run.input_bytes, "outputBytes": run.input_bytes},
                "recordSummary": {},
                "fileSummary": {"inputFileCount": run.input_files, "outputFileCount": run.input_files},
                "statusSummary": {
                    "status": "failed" if run.status == "failed" else "success",
                    "extensions": {"type": "one-time"},
                },
            }
            promo_act = {
                "id": promo_id,
                "updatedAtUTC": run.completed_ms,
                "durationSummary": {"startedAtUTC": mid, "completedAtUTC": run.completed_ms},
                "sizeSummary": {"inputBytes": run.input_bytes, "outputBytes": run.output_bytes},
                "recordSummary": {
                    "inputRecordCount": run.input_records,
                    "outputRecordCount": run.output_records,
                    "failedRecordCount": run.failed_records,
                },
                "fileSummary": {"inputFileCount": run.input_files, "outputFileCount": run.output_files},
                "statusSummary": {
                    "status": run.status,
                    **({"errors": run.run_errors} if run.run_errors else {}),
                    **({"extensions": {"errors": run.activity_errors}} if run.activity_errors else {}),
                },
            }
            if not old:
                copy_act["name"], promo_act["name"] = "Copy Activity", "Promotion Activity"
            activities = [copy_act, promo_act]
        body: dict[str, Any] = {
            "createdAt": run.created_ms,
            "updatedAt": run.updated_ms or run.created_ms,
            "createdBy": "{CREATED_BY}",
            "updatedBy": "{UPDATED_BY}",
            "createdClient": "{CREATED_CLIENT}",
            "updatedClient": "{UPDATED_CLIENT}",
            "sandboxId": self.sandboxes.get(run.sandbox, ""),
            "sandboxName": run.sandbox,
            "id": run.id,
            "flowId": run.flow_id,
            "etag": f'"{run.id[:8]}-{run.updated_ms}"',
            "metrics": metrics,
            "activities": activities,
        }
        if run.params:
            body["params"] = run.params
        return body


def demo_world(clock: Callable[[], float] = time.time) -> World:
    """Flows in two sandboxes, the seed flow among them, with runs every minute or two."""
    w = World(clock=clock)
    w.add_seed("prod", shift_to_now=True)
    w.add_flow(
        "prod",
        "crm-salesforce-contacts",
        "3abea21c-7e36-4be1-bec1-d3bad0e3e0de",
        period=60,
        source_spec_id="cfc0fee1-7dc0-40ef-b73e-d8b134c436f5",
    )
    w.add_flow(
        "prod",
        "s3-orders-hourly",
        period=90,
        source_spec_id="ecadc60c-7455-4d87-84dc-2a0e293d997b",
        old_style_activities=True,
    )
    w.add_flow(
        "prod",
        "mariadb-customers",
        period=75,
        script=["success", "partial", "failed"],
        source_spec_id="000eb99-cd47-43f3-827c-43caf170f015",
    )
    w.add_flow("dev", "crm-dynamics-leads", period=60, source_spec_id="38ad80fe-8b06-4938-94f4-d4ee80266b07")
    w.add_flow("dev", "sftp-events-test", period=120, state="enabled", script=["failed", "success"])
    for flow in w.flows.values():
        if flow.period:  # some history, so the first scrape is not empty: already completed runs
            for i in range(3, 0, -1):
                run = w.start_run(flow.id, created_ms=w.now_ms() - int(i * flow.period * 1000))
                w.finish_run(run.id, w.next_outcome(flow), completed_ms=run.created_ms + 30_000)
    return w


def target_connection_id(flow: SimFlow) -> str:
    """The flow's target connection: the seed's own, else one derived from the flow's ID."""
    if flow.raw is not None:
        return str(flow.raw["targetConnectionIds"][0])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, flow.id + "/t"))
