"""A flow's runs as the `runs` command shows them: the listing checked against the question,
filtered, newest first, one row each.

In: the runs the client listed (each beside Adobe's JSON for it) and what the user asked for.
Out: the runs kept, the rows a person reads (Adobe's words made printable) and what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from exporter.adobe.models import Run, arr, obj, text
from exporter.adobe.runfacts import run_facts
from exporter.runs.create import printable
from exporter.runs.follow import clock_text, number_text

HEAD = ("run", "created (UTC)", "duration", "status", "records in/out/failed", "errors")
MESSAGE_CHARS = 120  # the first error message is cut to this on its line (--json has it whole)


@dataclass(frozen=True)
class Question:
    flow: str
    since: float  # epoch s: runs created after it
    status: str | None  # only runs with this status (as canonical_status spells it), if given
    limit: int


def answer(question: Question, listed: list[tuple[Run, dict[str, Any]]]) -> tuple[list[tuple[Run, Any]], int]:
    """The runs that answer the question, newest first and at most `limit`, and how many listed
    items did not belong (another flow, or created before `since`: a listing that ignored a
    filter is no answer, as for the daemon)."""
    flow = question.flow.lower()
    belong = [
        (r, item) for r, item in listed if (r.flow_id or "").lower() == flow and (r.order_time or 0) > question.since
    ]
    strays = len(listed) - len(belong)
    unique = {r.id: (r, item) for r, item in belong}  # a run listed twice (pages shifted) once
    kept = sorted(unique.values(), key=lambda p: p[0].order_time or 0, reverse=True)
    if question.status:
        wanted = question.status.lower()
        kept = [p for p in kept if run_facts(p[0]).status.lower() == wanted]
    return kept[: question.limit], strays


def rows(runs: list[tuple[Run, Any]]) -> list[str]:
    """The table: a header and a row per run, columns aligned, the last one (errors) free."""
    table = [HEAD, *(row(r, item) for r, item in runs)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEAD) - 1)]
    return ["  ".join([*(c.ljust(n) for c, n in zip(r, widths)), r[-1]]).rstrip() for r in table]


def row(run: Run, item: Any) -> tuple[str, ...]:
    f = run_facts(run)
    created = f.created if f.created is not None else f.order_time
    when = datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if created else "-"
    records = f"{number_text(f.input_records)}/{number_text(f.output_records)}/{number_text(f.failed_records)}"
    errors = ", ".join(printable(c) for c in sorted(f.error_codes))
    message = first_message(item)
    if message:
        cut = message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"
        errors = f"{errors}: {printable(cut)}" if errors else printable(cut)
    duration = clock_text(f.duration) if f.duration is not None else "-"
    return printable(run.id), when, duration, printable(f.status), records, errors or "-"


def first_message(item: Any) -> str | None:
    """The first error message Adobe gave for the run: at its level, else an activity's."""
    d = obj(item)
    places = [obj(obj(d.get("metrics")).get("statusSummary"))]
    places += [obj(obj(a).get("statusSummary")) for a in arr(d.get("activities"))]
    for status in places:
        for e in [*arr(status.get("errors")), *arr(obj(status.get("extensions")).get("errors"))]:
            message = text(obj(e).get("message"))
            if message:
                return message
    return None
