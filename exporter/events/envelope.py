"""Adobe I/O Events payloads → the runs they announce.

Adobe's pages show two envelopes for the same announcement (docs/events.md): the legacy one
(`event_id`, `event`, `recipient_client_id`) and CloudEvents (`specversion`, `id`, `type`, `time`,
`data`, `recipientclientid`); the event codes differ between pages (`sources_flow_run_success`,
`…_failure`, `platform_event`…). So an announcement is not recognised by its code: the run is
found by its *shape* (an object with `id`, `flowId` and `metrics`, the same object as an item of
`GET /runs`), and classified later by its own `metrics.statusSummary.status`. Anything else on the
registration (another provider's events) is not a run and is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exporter.adobe.models import Run

MAX_DEPTH = 4  # how deep under the envelope a run is looked for (data.event, event.body, …)
MAX_BATCH = 1000  # events in one webhook batch at most


class NotAnEvent(ValueError):
    """The body is not JSON, or not an object (or a batch of objects)."""


@dataclass(frozen=True)
class Announcement:
    """One event: the run it announces (None: not a run announcement) and where it came from."""

    event_id: str | None
    run: Run | None
    sandbox: str | None  # the run's `sandboxName`, when Adobe put it there
    recipient: str | None  # the client id the event was addressed to, when given


def parse_body(body: bytes) -> list[Any]:
    """A webhook body: one event object, or a batch (a JSON list of them)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotAnEvent("the body is not JSON") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items or len(items) > MAX_BATCH or not all(isinstance(i, dict) for i in items):
        raise NotAnEvent("the body is not an event object or a batch of them")
    return items


def announcement(event: Any) -> Announcement:
    """The run inside one event envelope, whichever envelope it is."""
    if not isinstance(event, dict):
        return Announcement(None, None, None, None)
    event_id = _text(event.get("event_id")) or _text(event.get("id"))
    recipient = _text(event.get("recipient_client_id")) or _text(event.get("recipientclientid"))
    raw = find_run(event)
    run = Run.from_json(raw) if raw is not None else None
    sandbox = _text(raw.get("sandboxName")) if raw is not None else None
    return Announcement(event_id, run, sandbox, recipient)


def find_run(value: Any, depth: int = 0) -> dict[str, Any] | None:
    """The first object shaped like a flow run: the value itself, else its object fields in order
    (and fields holding an object as a JSON string), each searched the same way."""
    if depth > MAX_DEPTH or not isinstance(value, dict):
        return None
    if _looks_like_run(value):
        return value
    children: list[Any] = [v for v in value.values() if isinstance(v, dict)]
    children += [v for v in value.values() if isinstance(v, str) and v[:1] == "{"]  # data as a JSON string
    for child in children:
        if isinstance(child, str):
            try:
                child = json.loads(child)
            except ValueError:
                continue
        found = find_run(child, depth + 1)
        if found is not None:
            return found
    return None


def _looks_like_run(d: dict[str, Any]) -> bool:
    return isinstance(d.get("id"), str) and isinstance(d.get("flowId"), str) and isinstance(d.get("metrics"), dict)


def _text(v: Any) -> str | None:
    return v.strip() or None if isinstance(v, str) else None
