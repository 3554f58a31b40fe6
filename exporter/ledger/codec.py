"""How the ledger's records are written in the state file and read back (store.py and appends.py
write and read the files): a flow's entry, with run facts' counted fields flat beside the other
scalars, activities as lists, sets as sorted lists; the sandboxes' records; the connection spec
names. Pure functions; one flow a call, so the caller decides when to let go of the interpreter
lock."""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
from dataclasses import fields
from typing import Any

from exporter.adobe.fields import ACTIVITY_FIELDS, FACTS
from exporter.adobe.runfacts import ActivityFacts, RunFacts
from exporter.ledger.history import EMPTY, PastRun, RunHistory, of
from exporter.ledger.ledger import Ledger
from exporter.ledger.packed import exported, imported
from exporter.ledger.records import FlowState, SeenRun, SpecName, Totals, interned

log = logging.getLogger(__name__)


def encode(f: FlowState) -> str:
    """One flow's entry, as one line of JSON."""
    return json.dumps(_flow_doc(f), separators=(",", ":"))


_FACT_SCALARS = [
    f.name
    for f in fields(RunFacts)
    if f.name not in ("counts", "error_codes", "error_records", "activities", "error_messages")
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


def _flow_doc(f: FlowState) -> dict[str, Any]:
    """A flow's entry as the file keeps it (the ledger holds still while it is read)."""
    t = f.totals
    return {
        "sandbox": f.sandbox,
        "flow_id": f.flow_id,
        "seen": {k: [v.completed, v.created, v.status] for k, v in f.seen.items()},
        "totals": {
            "runs": t.runs,
            "sums": t.sums,
            "run_errors": t.run_errors,
            "error_records": t.error_records,
            "duration_buckets": t.duration_buckets,
            "duration_sum": t.duration_sum,
            "duration_count": t.duration_count,
            "reported": sorted(t.reported),
        },
        "last_run": _facts_doc(f.last_run),
        "last_completed": _facts_doc(f.last_completed),
        "last_success": f.last_success,
        "in_flight": f.in_flight,
        "oldest_in_flight": f.oldest_in_flight,
        "statuses": sorted(f.statuses),
        "codes": sorted(f.codes),
        "codes_capped": f.codes_capped,
        "horizon": f.horizon,
        "cut_horizon": _number(f.cut_horizon),  # what a cut baseline lacked is older (cut.py)
        "packed_history": _packed_doc(f.history),
    }


def _number(x: float | None) -> float | str | None:
    """A float as JSON has it: inf as text (json would write Infinity, which JSON has not)."""
    return str(x) if x is not None and math.isinf(x) else x


def _packed_doc(history: RunHistory) -> dict[str, Any] | None:
    """The history as it is packed in memory, in base64, with the status names its records
    point to. As a JSON list of ten values a run, 10,000 flows of 50 runs made a 74 MB base that
    took 6.6 s to read back (half a million lists, packed again); packed, 53 MB and 0.8 s."""
    if not history:
        return None
    names, texts, data = exported(history.packed())
    return {"statuses": names, "texts": texts, "runs": base64.b64encode(data).decode("ascii")}


_PAST_FIELDS = [f.name for f in fields(PastRun) if f.name != "errors"]


def _history(d: dict[str, Any]) -> RunHistory:
    """A flow entry's history: packed (this version), as lists of values (files of the versions
    before), or none. A packed history that does not read is dropped with a warning: it is what
    the flow page shows, not what is counted, so the rest of the entry still loads."""
    packed = d.get("packed_history")
    if packed is None:
        return of(_past(r) for r in d.get("history", ()))
    try:
        runs = base64.b64decode(packed["runs"], validate=True)
        return RunHistory(imported(list(packed["statuses"]), list(packed.get("texts", ())), runs))
    except (ValueError, TypeError, KeyError) as e:
        log.warning("the state file's run history of flow %s does not read (%s): it starts empty", d["flow_id"], e)
        return EMPTY


def _past(d: list[Any]) -> PastRun:
    values = dict(zip(_PAST_FIELDS, d))
    return PastRun(**values, errors=tuple((str(c), str(m)) for c, m in d[len(_PAST_FIELDS)]))


def _named(counts: dict[str, Any]) -> dict[str, int]:
    """Counts by status, fact or error code, the names interned: each entry's line is parsed on
    its own, so every flow had its own copies of the same few names (10 MB at 10,000 flows, more
    than a fresh exporter holds for the same counts)."""
    return {sys.intern(str(k)): int(v) for k, v in counts.items()}


def _status(s: Any) -> str | None:
    return None if s is None else sys.intern(str(s))


def restore_flow(d: dict[str, Any]) -> FlowState:
    """A flow's record, built from its entry before the ledger takes it over (Ledger.restore)."""
    f = FlowState(sys.intern(str(d["sandbox"])), str(d["flow_id"]))
    t = d["totals"]
    totals = Totals(
        runs=_named(t["runs"]),
        sums=_named(t["sums"]),
        run_errors=_named(t["run_errors"]),
        error_records=_named(t["error_records"]),
        duration_buckets=[int(x) for x in t["duration_buckets"]],
        duration_sum=float(t["duration_sum"]),
        duration_count=int(t["duration_count"]),
        reported=interned(frozenset(t.get("reported", FACTS))),
    )
    if len(totals.duration_buckets) != len(Totals().duration_buckets):
        raise ValueError("duration buckets do not match this version's")
    f.seen = {
        str(k): SeenRun(bool(v[0]), None if v[1] is None else float(v[1]), _status(v[2] if len(v) > 2 else None))
        for k, v in d["seen"].items()
    }
    f.totals = totals
    f.last_run = _facts(d["last_run"])
    f.last_completed = _facts(d["last_completed"])
    f.last_success = d["last_success"]
    f.in_flight = int(d["in_flight"])
    f.oldest_in_flight = d.get("oldest_in_flight")
    f.statuses = interned(frozenset(sys.intern(str(x)) for x in d["statuses"]))
    f.codes = {sys.intern(str(x)) for x in d["codes"]}
    f.codes_capped = int(d["codes_capped"])
    f.horizon = None if d.get("horizon") is None else float(d["horizon"])  # may be absent: no run forgotten yet
    f.cut_horizon = None if d.get("cut_horizon") is None else float(d["cut_horizon"])
    f.history = _history(d)
    f.baselined = True
    return f


def sandboxes_doc(ledger: Ledger) -> dict[str, Any]:
    return {
        n: {"last_success": s.last_success, "codes_capped_retired": s.codes_capped_retired}
        for n, s in list(ledger.sandboxes.items())
    }


def specs_doc(ledger: Ledger) -> dict[str, Any]:
    """Connection spec names (exporter/fetch/names.py): id → [name, fetched_at]; a restart does
    not ask Adobe again for a day."""
    return {k: [v.name, v.fetched_at] for k, v in list(ledger.spec_names.items())}


def restore_spec_names(d: dict[str, Any]) -> dict[str, SpecName]:
    return {str(k): SpecName(None if v[0] is None else str(v[0]), float(v[1])) for k, v in d.items()}
