"""The backfill's plan file: where a backfill stands, one JSON file per plan (`--journal`, by
default next to the state file), rewritten atomically after every change, so a backfill stopped
at any point (Ctrl-C, SIGKILL, a reboot) is started again where it was, and never creates a
second run for a window that has one.

The order of writes is what makes that true: a window is written as `creating` (with the time)
*before* its POST /runs is sent, and with its run id as soon as Adobe answers. A window found
`creating` on resume may have a run whose id we never learnt; it is looked up, not created again.

In: the command's arguments (a `Plan`) and the file a previous start wrote, if any. Out: the
plan's windows, each with its state, run and records, and the file written again on `save`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from exporter.support.atomicfile import write_atomic

KIND = "aep-flow-exporter backfill journal"  # the format's name, as every plan file carries it
VERSION = 1
MAX_WINDOWS = 10_000  # a year of hourly windows fits; a slip like --window 1s over a year does not

PENDING = "pending"  # nothing sent
CREATING = "creating"  # POST /runs sent (or about to be): a run may exist, id unknown
RUNNING = "running"  # run id known, not completed
SUCCEEDED = "succeeded"  # completed with status success
FAILED = "failed"  # completed otherwise (failed, cancelled, partial…)
REFUSED = "refused"  # Adobe answered 4xx: no run exists
DONE = (SUCCEEDED, FAILED)


class PlanFileError(ValueError):
    """The plan file cannot be used: unreadable, not a plan file, or written for another plan."""


@dataclass(frozen=True)
class Plan:
    """What identifies a backfill: the same arguments find the same plan file."""

    sandbox: str
    flow: str
    start: int
    end: int
    window: int

    def windows(self) -> list[Window]:
        """[start, end) cut into windows of `window` seconds; the last one may be shorter."""
        return [Window(t, min(t + self.window, self.end)) for t in range(self.start, self.end, self.window)]

    def count(self) -> int:
        return -(-(self.end - self.start) // self.window)


@dataclass
class Window:
    start: int
    end: int
    state: str = PENDING
    run_id: str | None = None
    status: str | None = None  # Adobe's, as translate.canonical_status spells it
    sent_at: float | None = None  # when the last POST /runs for it was sent (epoch s)
    input_records: int | None = None
    output_records: int | None = None
    failed_records: int | None = None
    error_codes: list[str] = field(default_factory=list)
    error: str | None = None  # our own words: a refusal, a create that got no answer, a timeout
    attempts: int = 0  # POSTs sent for it, over every start
    previous_runs: list[str] = field(default_factory=list)  # earlier (failed) runs: never adopted
    # The failed run that `run_id` is Adobe's retry of (POST /runs/{id}/action); None when the run
    # was created by POST /runs. Older plan files have no such key and load as None.
    retry_of: str | None = None

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Window:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def default_path(state_file: str | None, plan: Plan) -> str:
    """Next to the exporter's state file (the working directory when it has none)."""
    directory = os.path.dirname(os.path.abspath(state_file)) if state_file else os.getcwd()
    return os.path.join(directory, f"backfill-{plan.flow}-{plan.start}-{plan.end}.json")


class PlanFile:
    """The windows of a plan as the file at `path` keeps them; `resumed` if an earlier start wrote it."""

    def __init__(self, path: str, plan: Plan, windows: list[Window]) -> None:
        self.path = path
        self.plan = plan
        self.windows = windows
        self.resumed = False

    @classmethod
    def open(cls, path: str, plan: Plan) -> PlanFile:
        """The plan file at `path` if there is one (it must be for the same plan), else a new one."""
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return cls(path, plan, plan.windows())
        except (OSError, ValueError) as e:
            raise PlanFileError(f"--journal {path}: cannot read it: {e}") from None
        plan_file = cls(path, plan, _windows_of(doc, path, plan))
        plan_file.resumed = True
        return plan_file

    def save(self) -> None:
        """Atomically (atomicfile.write_atomic): a crash leaves the old file or the new one, whole."""
        doc = {"kind": KIND, "version": VERSION, **asdict(self.plan), "windows": [asdict(w) for w in self.windows]}
        text = json.dumps(doc, indent=1) + "\n"
        write_atomic(self.path, lambda f: f.write(text), ".backfill-")


def _windows_of(doc: Any, path: str, plan: Plan) -> list[Window]:
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("version") != VERSION:
        raise PlanFileError(f"--journal {path}: not a backfill journal (version {VERSION})")
    theirs = {k: doc.get(k) for k in asdict(plan)}
    if theirs != asdict(plan):
        differ = ", ".join(f"{k} {theirs[k]!r} here, {v!r} now" for k, v in asdict(plan).items() if theirs[k] != v)
        raise PlanFileError(
            f"--journal {path} was written for another backfill ({differ}): "
            "start it with the same arguments, or pass another --journal"
        )
    try:
        windows = [Window.from_doc(w) for w in doc["windows"]]
    except (KeyError, TypeError) as e:
        raise PlanFileError(f"--journal {path}: damaged ({e})") from None
    if [(w.start, w.end) for w in windows] != [(w.start, w.end) for w in plan.windows()]:
        raise PlanFileError(f"--journal {path}: damaged (its windows are not the plan's)")
    return windows
