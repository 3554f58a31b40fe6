"""The changes appended beside the state file's base: how a save's record is written, and how a
load replays the records onto the base.

The file (`state_file` + ".journal" on disk) opens with a head line (written by store.py: the
generation of the base it continues), then one record per save: a header line (`saved_at`, the
sandboxes, the connection spec names, the sections, the flows no longer watched, how many flow
lines follow), one line per changed flow (codec.py), and an end mark `{"end": n}`. A record is
applied whole or not at all: one cut short by a crash ends the replay there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exporter.ledger.codec import encode
from exporter.ledger.records import FlowState


def record(
    sandboxes: dict[str, Any],
    specs: dict[str, Any],
    sections: dict[str, Any],
    forgotten: list[list[str]],
    changed: list[FlowState],
) -> Iterator[str]:
    """One save's record, as the lines appended (each ending in a newline), made one at a time:
    a cycle that changed a thousand flows appends megabytes, which need not exist at once."""
    header = {
        "saved_at": time.time(),
        "sandboxes": sandboxes,
        "connection_specs": specs,
        "sections": sections,
        "forgotten": forgotten,
        "flows": len(changed),
    }
    yield json.dumps(header) + "\n"
    for f in changed:
        yield encode(f) + "\n"
    yield json.dumps({"end": len(changed)}) + "\n"


@dataclass
class Replayed:
    """What a replay found after the head."""

    records: int  # whole records applied
    size: int  # bytes of the head and those records
    whole: bool  # False: the last record was cut short (and not applied)


def replay(
    lines: list[str],
    flows: dict[tuple[str, str], Any],
    sandboxes: dict[str, Any],
    specs: dict[str, Any],
    sections: dict[str, Any],
) -> Replayed:
    """Apply the whole records after the head (`lines[0]`) to the base's raw flow entries,
    sandboxes, connection spec names and sections, in the order they were saved."""
    records, i, whole = 0, 1, True
    while i < len(lines) and lines[i]:
        try:
            header = json.loads(lines[i])
            count = int(header["flows"])
            body = [json.loads(line) for line in lines[i + 1 : i + 1 + count]]
            end = json.loads(lines[i + 1 + count]) if i + 1 + count < len(lines) else None
        except (ValueError, KeyError, TypeError):
            whole = False
            break
        if len(body) != count or end != {"end": count}:
            whole = False
            break
        for key in header["forgotten"]:
            flows.pop((str(key[0]), str(key[1])), None)
        for raw in body:
            flows[(str(raw["sandbox"]), str(raw["flow_id"]))] = raw
        sandboxes.update(header["sandboxes"])
        specs.update(header.get("connection_specs", {}))
        sections.update(header.get("sections", {}))
        records += 1
        i += count + 2
    return Replayed(records, sum(len(line) + 1 for line in lines[:i]), whole)
