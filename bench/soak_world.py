"""The soak benchmark's simulated day (bench/soak.py): flows, their runs, churn, and the ground
truth, kept as runs finish and never read from the exporter."""

from __future__ import annotations

import heapq
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the soak's exporter process imports this module too, and not the simulator
    from exporter.simulator import SimRun, World

MINUTE = 60.0
SANDBOXES = ("prod", "dev", "stage")
# What a run can end as (exporter.simulator.World.finish_run): each adds series of its own (a
# status, error codes, their record counts), so each flow meets each one early, in the warm-up.
OUTCOMES = ("success", "partial", "failed")
# The counted sums, spelled out here on purpose: the ground truth must not share the exporter's table.
SUMS = (
    "input_records",
    "output_records",
    "failed_records",
    "input_bytes",
    "output_bytes",
    "input_files",
    "output_files",
)


class FakeClock:
    """Simulated epoch seconds, shared by Adobe, the poller and the token provider."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Truth:
    """One flow's counters as its runs say, from the first poll on."""

    runs: dict[str, int] = field(default_factory=dict)
    sums: dict[str, int] = field(default_factory=dict)
    run_errors: dict[str, int] = field(default_factory=dict)
    error_records: dict[str, int] = field(default_factory=dict)

    def add(self, run: SimRun) -> None:
        bump(self.runs, run.status, 1)
        for k in SUMS:
            v = getattr(run, k)
            if v is not None and v >= 0:  # -1 is Adobe's "unknown": adds nothing
                bump(self.sums, k, v)
        for code in {e["code"] for e in run.run_errors + run.activity_errors}:
            bump(self.run_errors, code, 1)
        for e in run.activity_errors:
            if "recordCount" in e:
                bump(self.error_records, e["code"], e["recordCount"])

    def view(self) -> dict:
        return {
            k: {n: v for n, v in getattr(self, k).items() if v} for k in ("runs", "sums", "run_errors", "error_records")
        }


def proc_status() -> dict[str, int]:
    """/proc/self/status's memory lines (kB) and thread count: RSS, and its anonymous (heap) and
    file-backed (code and libraries, clean: the kernel may drop them) parts. For both processes
    of the soak: the exporter's (bench/soak_exporter.py) and the simulator's."""
    fields = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "Threads:": "threads"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition("\t")
            if name in fields:
                out[fields[name]] = int(rest.split()[0])
    return out


def bump(d: dict, key: str, by: int) -> None:
    d[key] = d.get(key, 0) + by


class Driver:
    """The simulated Adobe's day: flows, their runs, churn, and the ground truth as runs finish."""

    def __init__(self, world: World, clock: FakeClock, rng: random.Random) -> None:
        self.world, self.clock, self.rng = world, clock, rng
        self.due: list[tuple[float, str]] = []  # (next run at, flow id)
        self.period: dict[str, float] = {}
        self.live: dict[str, tuple[SimRun, float, float, str]] = {}  # run id -> (run, start, end, outcome)
        self.watched: dict[str, str] = {}  # flow id -> sandbox, as in the exporter's config
        self.truth: dict[str, Truth] = {}  # flows baselined by the exporter: counted from then on
        self.removed: list[str] = []
        self.finished = 0
        self.starting = True
        # Outcomes queued for a flow's next runs: each kind once, first thing after its baseline.
        self.first: dict[str, list[str]] = {}

    def add_flows(self, n: int) -> list[str]:
        ids = []
        now = self.clock.now
        for _ in range(n):
            sandbox = self.rng.choice(SANDBOXES)
            flow = self.world.add_flow(sandbox, f"soak-{len(self.period)}")
            self.period[flow.id] = self.rng.uniform(5, 15) * MINUTE
            heapq.heappush(self.due, (now + self.rng.uniform(0, self.period[flow.id]), flow.id))
            self.watched[flow.id] = sandbox
            ids.append(flow.id)
        return ids

    def remove_flows(self, n: int) -> list[str]:
        """Delete n watched flows in Adobe (their runs in flight with them) and from the config."""
        gone = self.rng.sample(sorted(self.watched), n)
        for flow_id in gone:
            del self.watched[flow_id], self.period[flow_id]
            self.first.pop(flow_id, None)
            self.truth.pop(flow_id, None)
            self.world.flows.pop(flow_id)
            for run_id in [r for r, (run, *_) in self.live.items() if run.flow_id == flow_id]:
                self.world.delete_run(run_id)
                del self.live[run_id]
        self.due = [(t, f) for t, f in self.due if f in self.period]
        heapq.heapify(self.due)
        self.removed += gone
        return gone

    def minute(self) -> None:
        """One simulated minute: the clock moves, runs are created, start and finish."""
        self.clock.now += MINUTE
        now = self.clock.now
        while self.starting and self.due and self.due[0][0] <= now:
            _, flow_id = heapq.heappop(self.due)
            heapq.heappush(self.due, (now + self.period[flow_id], flow_id))
            run = self.world.start_run(flow_id, status="scheduled")
            start = now + self.rng.uniform(0, MINUTE)
            end = start + self.rng.uniform(1, min(10, 0.8 * self.period[flow_id] / MINUTE)) * MINUTE
            queued = self.first.pop(flow_id, None)
            outcome = queued.pop() if queued else self.world.next_outcome(self.world.flows[flow_id])
            if queued:
                self.first[flow_id] = queued
            self.live[run.id] = (run, start, end, outcome)
        for run_id, (run, start, end, outcome) in list(self.live.items()):
            if run.status == "scheduled" and now >= start:
                run.status, run.started_ms, run.updated_ms = "inProgress", int(start * 1000), int(start * 1000)
            if now >= end:
                self.world.finish_run(run_id, outcome, completed_ms=int(end * 1000))
                del self.live[run_id]
                self.finished += 1
                if run.flow_id in self.truth:  # else: before the flow's first poll, so in its baseline
                    self.truth[run.flow_id].add(run)

    def baselined(self, done: Collection[str]) -> int:
        """After a poll: flows the exporter has now baselined (`done`, as its ledger says) start
        counting. Returns how many watched flows are still waiting for their first good poll."""
        waiting = 0
        for flow_id in self.watched:
            if flow_id not in self.truth:
                if flow_id in done:
                    self.truth[flow_id] = Truth()
                    self.first[flow_id] = self.rng.sample(OUTCOMES, len(OUTCOMES))
                else:
                    waiting += 1
        return waiting
