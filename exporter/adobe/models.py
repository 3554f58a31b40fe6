"""Typed, tolerant models of the Flow Service JSON.

Adobe's payloads drift between its documents and over time: activity IDs changed from names to
GUIDs, numbers arrive as strings, -1 stands for "unknown", epochs come in ms or s, summaries are
`{}` or absent. Everything here is parsed defensively: unknown fields are ignored, a missing or
ill-typed field becomes None (`null` where an object is expected is "not reported", like `{}`),
and only a response whose *shape* is wrong (not an object, no `items` list) raises `ParseError`,
which costs the flow one cycle. tests/payloads/ holds a payload in each shape Adobe documents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.adobe.fields import RUN_FIELDS

# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MS_THRESHOLD = 1e11


class ParseError(ValueError):
    """The response is not the shape the Flow Service documents."""


def number(v: Any) -> float | None:
    """A finite number from an int, float or numeric string; anything else is None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def count(v: Any) -> int | None:
    """A non-negative count; Adobe's -1 ("unknown") and anything unparsable are None."""
    f = number(v)
    if f is None or f < 0:
        return None
    return int(f)


def epoch_seconds(v: Any) -> float | None:
    """Epoch seconds from a value in seconds or milliseconds; 0 or negative is None."""
    f = number(v)
    if f is None or f <= 0:
        return None
    return f / 1000.0 if f > _MS_THRESHOLD else f


def obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def arr(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def text(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)  # raw connector codes arrive as bare numbers
    return None


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    code: str
    record_count: int | None = None
    message: str | None = None  # Adobe's text for people (the flow page shows it, truncated)


@dataclass(frozen=True, slots=True)
class Summary:
    """The metric summaries a run (under `metrics`) and each activity (at top level) carry.

    `counts` holds the fields of exporter.adobe.fields.RUN_FIELDS that were reported (a count Adobe did
    not report is simply not there)."""

    status: str | None = None
    started: float | None = None
    completed: float | None = None
    window_end: float | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[ErrorEntry, ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Summary:
        duration = obj(d.get("durationSummary"))
        status = obj(d.get("statusSummary"))
        errors = [*arr(status.get("errors")), *arr(obj(status.get("extensions")).get("errors"))]
        entries = []
        for e in errors:
            code = text(obj(e).get("code"))
            if code:
                entries.append(ErrorEntry(code, count(obj(e).get("recordCount")), text(obj(e).get("message"))))
        counts = {}
        for f in RUN_FIELDS:
            value = count(obj(d.get(f.summary)).get(f.key))
            if value is not None:
                counts[f.fact] = value
        return cls(
            status=text(status.get("status")),
            started=epoch_seconds(duration.get("startedAtUTC")),
            completed=epoch_seconds(duration.get("completedAtUTC")),
            window_end=epoch_seconds(obj(duration.get("extensions")).get("windowEnd")),
            counts=counts,
            errors=tuple(entries),
        )


@dataclass(frozen=True, slots=True)
class Activity:
    name: str
    summary: Summary

    @classmethod
    def from_json(cls, d: dict[str, Any], index: int) -> Activity:
        # New payloads: GUID id + name "Copy Activity"; old ones: id "copyActivity", no name.
        name = text(d.get("name")) or text(d.get("id")) or f"activity-{index}"
        return cls(name=name, summary=Summary.from_json(d))


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    flow_id: str | None
    created: float | None
    updated: float | None
    summary: Summary
    activities: tuple[Activity, ...]
    window_end_param: float | None

    @property
    def order_time(self) -> float | None:
        """When the run happened, for ordering runs and for the lookback window: `createdAt`, else
        `metrics.durationSummary.startedAtUTC`, else `updatedAt`. Destination runs as Adobe
        documents them (file-based-destination-results-api.md) have neither createdAt nor
        updatedAt; they are runs all the same. `created` stays None there: it is what Adobe
        reported, and aep_flow_last_run_created_timestamp_seconds must not claim a creation time."""
        for t in (self.created, self.summary.started, self.updated):
            if t is not None:
                return t
        return None

    @classmethod
    def from_json(cls, d: Any) -> Run | None:
        """A run, or None for an item too broken to identify (no id)."""
        if not isinstance(d, dict):
            return None
        run_id = text(d.get("id"))
        if not run_id:
            return None
        acts = arr(d.get("activities")) or arr(d.get("activites"))  # the SPEC's schema spells it so
        return cls(
            id=run_id,
            flow_id=text(d.get("flowId")),
            created=epoch_seconds(d.get("createdAt")),
            updated=epoch_seconds(d.get("updatedAt")),
            summary=Summary.from_json(obj(d.get("metrics"))),
            activities=tuple(Activity.from_json(a, i) for i, a in enumerate(acts) if isinstance(a, dict)),
            window_end_param=epoch_seconds(obj(d.get("params")).get("windowEndTime")),
        )


@dataclass(frozen=True, slots=True)
class Flow:
    id: str
    name: str | None = None
    state: str | None = None
    flow_spec_id: str | None = None
    source_connection_spec_id: str | None = None
    target_connection_spec_id: str | None = None
    frequency: str | None = None
    interval: int | None = None
    is_destination: bool = False
    target_connection_id: str | None = None  # the first of targetConnectionIds (its dataset, for names)

    @property
    def schedule_seconds(self) -> float | None:
        """Seconds between scheduled runs (frequency × interval); None for `once` or unknown."""
        unit = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}.get((self.frequency or "").lower())
        if unit is None:
            return None
        return float(unit * (self.interval or 1))

    @classmethod
    def from_json(cls, d: Any) -> Flow | None:
        if not isinstance(d, dict) or not text(d.get("id")):
            return None
        inherited = obj(d.get("inheritedAttributes"))
        sources = arr(inherited.get("sourceConnections"))
        targets = arr(inherited.get("targetConnections"))
        schedule = obj(d.get("scheduleParams"))
        return cls(
            id=str(text(d.get("id"))),
            name=text(d.get("name")),
            state=text(d.get("state")),
            flow_spec_id=_spec_id(d.get("flowSpec")),
            source_connection_spec_id=text(obj(obj(sources[0] if sources else {}).get("connectionSpec")).get("id")),
            target_connection_spec_id=text(obj(obj(targets[0] if targets else {}).get("connectionSpec")).get("id")),
            frequency=text(schedule.get("frequency")),
            interval=count(schedule.get("interval")),  # sent as "15" as often as 15
            is_destination=obj(inherited.get("properties")).get("isDestinationFlow") in (True, "true"),
            target_connection_id=_first_id(d.get("targetConnectionIds"), targets),
        )


def _first_id(ids: Any, connections: list[Any]) -> str | None:
    """`targetConnectionIds[0]`, else `inheritedAttributes.targetConnections[0].id`."""
    listed = arr(ids)
    return text(listed[0]) if listed else text(obj(connections[0] if connections else {}).get("id"))


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """A connector's specification (`GET /connectionSpecs/{id}`): all we read is its name."""

    id: str
    name: str | None

    @classmethod
    def from_json(cls, d: Any) -> ConnectionSpec | None:
        if not isinstance(d, dict) or not text(d.get("id")):
            return None
        return cls(id=str(text(d.get("id"))), name=text(d.get("name")))


@dataclass(frozen=True, slots=True)
class TargetConnection:
    """A flow's target connection (`GET /targetConnections/{id}`): the dataset a source flow writes
    to is its `params.dataSetId` (absent for destinations)."""

    id: str
    dataset_id: str | None

    @classmethod
    def from_json(cls, d: Any) -> TargetConnection | None:
        if not isinstance(d, dict) or not text(d.get("id")):
            return None
        return cls(
            id=str(text(d.get("id"))),
            dataset_id=text(obj(d.get("params")).get("dataSetId")),
        )


def _spec_id(v: Any) -> str | None:
    """`flowSpec` is `{"id", "version"}` in payloads and in the SPEC's schema, but the SPEC's own
    FlowItemDTO example gives the bare ID string: read both."""
    return text(v) if isinstance(v, str) else text(obj(v).get("id"))


def items_of(body: Any) -> list[Any]:
    """The `items` list every Flow Service GET answers with; anything else is a ParseError."""
    if not isinstance(body, dict):
        raise ParseError(f"expected a JSON object, got {type(body).__name__}")
    items = body.get("items")
    if not isinstance(items, list):
        raise ParseError("response has no 'items' list")
    return items


def next_href(body: dict[str, Any]) -> str | None:
    """`_links.next.href` of a list page, or None on the last page."""
    href = obj(obj(obj(body.get("_links")).get("next"))).get("href")
    return href if isinstance(href, str) and href.strip() else None
