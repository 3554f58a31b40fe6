"""The ledger on disk: what makes a restart continue counting instead of starting over.

The file is one JSON document, written atomically (temp file in the same directory, fsync,
rename, fsync of the directory) after each poll cycle and at shutdown. It names the org and base
URL it belongs to; a file of another org or URL, of another format version, or one that cannot be
read or parsed is moved aside (never merged, never fatal) and the exporter starts fresh.

Saving snapshots the ledger on the event loop (cheap: plain dicts and lists) and does the JSON
encoding and file I/O in a worker thread, so a large state never stalls /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TextIO

from exporter.fields import ACTIVITY_FIELDS, FACTS
from exporter.flowstate import FlowState, SeenRun, Totals
from exporter.ledger import Ledger
from exporter.translate import ActivityFacts, RunFacts

log = logging.getLogger(__name__)

FORMAT = "aep-flow-exporter-state"
VERSION = 1


class StateStore:
    def __init__(self, path: str, org_id: str, base_url: str) -> None:
        self.path = path
        self.org_id = org_id
        self.base_url = base_url
        self.saves = 0
        # Further top-level keys, each saved with the ledger in the same file (the events'
        # journal position: exporter/events/service.py); and what the loaded file held under them.
        self.sections: dict[str, Callable[[], Any]] = {}
        self.loaded: dict[str, Any] = {}

    # --- load ------------------------------------------------------------------------------------

    def load(self, ledger: Ledger, sandboxes: set[str]) -> int:
        """Restore the accounting of the flows of these sandboxes into `ledger`; returns how many
        were restored. (Which of them are still watched is for the poller to say.)"""
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            log.info("no state file at %s: starting fresh", self.path)
            return 0
        except (OSError, ValueError) as e:
            self._move_aside(f"cannot be read ({type(e).__name__}: {e})", "corrupt")
            return 0
        problem = self._problem(doc)
        if problem:
            self._move_aside(problem[0], problem[1])
            return 0
        try:
            # Every record is built before the ledger gets any: half-restored would be worse than fresh.
            flows = [_restore_flow(raw) for raw in doc["flows"] if raw["sandbox"] in sandboxes]
            last_success = {
                str(name): float(raw["last_success"])
                for name, raw in doc.get("sandboxes", {}).items()
                if raw.get("last_success") is not None
            }
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            self._move_aside(f"has an unexpected shape ({type(e).__name__}: {e})", "corrupt")
            return 0
        ledger.restore(flows, last_success)
        self.loaded = {k: v for k, v in doc.items() if k not in ("flows", "sandboxes")}
        log.info("restored the run ledger of %d flow(s) from %s", len(flows), self.path)
        return len(flows)

    def _problem(self, doc: Any) -> tuple[str, str] | None:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return "is not an aep-flow-exporter state file", "corrupt"
        if doc.get("version") != VERSION:
            return f"is of format version {doc.get('version')!r}, not {VERSION}", "version"
        if doc.get("org_id") != self.org_id or doc.get("base_url") != self.base_url:
            return (f"belongs to org {doc.get('org_id')!r} at {doc.get('base_url')!r}, not this config's", "other-org")
        if not isinstance(doc.get("flows"), list):
            return "has no flow list", "corrupt"
        return None

    def _move_aside(self, why: str, tag: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = f"{self.path}.{tag}-{stamp}"
        try:
            os.replace(self.path, target)
            log.warning("state file %s %s: moved aside to %s; starting fresh", self.path, why, target)
        except OSError as e:
            log.warning("state file %s %s, and cannot be moved aside (%s); starting fresh", self.path, why, e)

    # --- save ------------------------------------------------------------------------------------

    def snapshot(self, ledger: Ledger) -> dict[str, Any]:
        """A consistent copy of the ledger, taken on the event loop between polls of flows.

        Only shallow copies happen here (run facts are immutable and shared); turning them into
        JSON happens in `write`, off the event loop."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "org_id": self.org_id,
            "base_url": self.base_url,
            "saved_at": time.time(),
            "sandboxes": {n: {"last_success": s.last_success} for n, s in ledger.sandboxes.items()},
            "flows": [_flow_copy(f) for f in ledger.flows.values() if f.baselined],
            **{name: section() for name, section in self.sections.items()},
        }

    async def save(self, ledger: Ledger) -> None:
        snapshot = self.snapshot(ledger)
        await asyncio.to_thread(self.write, snapshot)

    def write(self, doc: dict[str, Any]) -> None:
        def fill(f: TextIO) -> None:
            # Flow by flow: json's C encoder holds the GIL for a whole call, so one call over
            # thousands of flows would stall the event loop for as long.
            head = json.dumps({k: v for k, v in doc.items() if k != "flows"}, separators=(",", ":"))
            f.write(head[:-1] + ',"flows":[')
            for i, flow in enumerate(doc["flows"]):
                f.write(("," if i else "") + json.dumps(_flow_doc(flow), separators=(",", ":")))
            f.write("]}")

        write_atomic(self.path, fill, ".state-")
        self.saves += 1


_FACT_SCALARS = [
    f.name for f in fields(RunFacts) if f.name not in ("counts", "error_codes", "error_records", "activities")
]


def _facts_doc(r: RunFacts | None) -> dict[str, Any] | None:
    """A run's facts as the file keeps them: the counted fields flat beside the other scalars
    (null where not reported), activities as [name, duration, *activity fields]."""
    if r is None:
        return None
    d: dict[str, Any] = {name: getattr(r, name) for name in _FACT_SCALARS}
    d.update({name: r.counts.get(name) for name in FACTS})
    d["error_codes"] = sorted(r.error_codes)
    d["error_records"] = [list(x) for x in r.error_records]
    d["activities"] = [[a.name, a.duration, *(a.counts.get(f.fact) for f in ACTIVITY_FIELDS)] for a in r.activities]
    return d


def _counts(values: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in values.items() if v is not None}


def _facts(d: dict[str, Any] | None) -> RunFacts | None:
    if d is None:
        return None
    acts = tuple(
        ActivityFacts(str(a[0]), a[1], _counts(dict(zip((f.fact for f in ACTIVITY_FIELDS), a[2:]))))
        for a in d["activities"]
    )
    return RunFacts(
        **{name: d.get(name) if name == "order_time" else d[name] for name in _FACT_SCALARS},  # type: ignore[arg-type]
        counts=_counts({name: d.get(name) for name in FACTS}),
        error_codes=frozenset(d["error_codes"]),
        error_records=tuple((str(c), int(n)) for c, n in d["error_records"]),
        activities=acts,
    )


def _flow_copy(f: FlowState) -> dict[str, Any]:
    """What `_flow_doc` needs, copied where the poller mutates it in place."""
    t = f.totals
    return {
        "sandbox": f.sandbox,
        "flow_id": f.flow_id,
        "seen": dict(f.seen),  # SeenRun entries are replaced, never changed in place
        "totals": {
            "runs": dict(t.runs),
            "sums": dict(t.sums),
            "run_errors": dict(t.run_errors),
            "error_records": dict(t.error_records),
            "duration_buckets": list(t.duration_buckets),
            "duration_sum": t.duration_sum,
            "duration_count": t.duration_count,
            "reported": sorted(t.reported),
        },
        "last_run": f.last_run,
        "last_completed": f.last_completed,
        "last_success": f.last_success,
        "in_flight": f.in_flight,
        "oldest_in_flight": f.oldest_in_flight,
        "statuses": f.statuses,
        "codes": set(f.codes),
        "codes_capped": f.codes_capped,
    }


def write_atomic(path: str, fill: Callable[[TextIO], object], prefix: str) -> None:
    """Atomic replace (temp file in the same directory, fsync, rename, fsync of the directory):
    a crash at any point leaves the old file or the new one, whole. Also the backfill journal's."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass


def _flow_doc(c: dict[str, Any]) -> dict[str, Any]:
    return {
        **c,
        "seen": {k: [v.completed, v.created, v.status] for k, v in c["seen"].items()},
        "last_run": _facts_doc(c["last_run"]),
        "last_completed": _facts_doc(c["last_completed"]),
        "statuses": sorted(c["statuses"]),
        "codes": sorted(c["codes"]),
    }


def _restore_flow(d: dict[str, Any]) -> FlowState:
    f = FlowState(str(d["sandbox"]), str(d["flow_id"]))
    t = d["totals"]
    totals = Totals(
        runs={str(k): int(v) for k, v in t["runs"].items()},
        sums={str(k): int(v) for k, v in t["sums"].items()},
        run_errors={str(k): int(v) for k, v in t["run_errors"].items()},
        error_records={str(k): int(v) for k, v in t["error_records"].items()},
        duration_buckets=[int(x) for x in t["duration_buckets"]],
        duration_sum=float(t["duration_sum"]),
        duration_count=int(t["duration_count"]),
        reported=set(t.get("reported", FACTS)),
    )
    if len(totals.duration_buckets) != len(Totals().duration_buckets):
        raise ValueError("duration buckets do not match this version's")
    f.seen = {
        str(k): SeenRun(bool(v[0]), None if v[1] is None else float(v[1]), v[2] if len(v) > 2 else None)
        for k, v in d["seen"].items()
    }
    f.totals = totals
    f.last_run = _facts(d["last_run"])
    f.last_completed = _facts(d["last_completed"])
    f.last_success = d["last_success"]
    f.in_flight = int(d["in_flight"])
    f.oldest_in_flight = d.get("oldest_in_flight")
    f.statuses = frozenset(d["statuses"])
    f.codes = set(d["codes"])
    f.codes_capped = int(d["codes_capped"])
    f.baselined = True
    return f
