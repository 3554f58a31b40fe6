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
from dataclasses import dataclass, field
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


Key = tuple[str, str]


@dataclass
class Overlay:
    """What the appended changes say of the base's flows: each flow's latest entry (its line, kept
    as text: one string, not the hundreds of objects its parse makes), the flows forgotten, and the
    flows forgotten and entered again (which a replay onto the base's entries moved to the end)."""

    lines: dict[Key, str] = field(default_factory=dict)
    gone: set[Key] = field(default_factory=set)
    moved: set[Key] = field(default_factory=set)

    def forget(self, key: Key) -> None:
        self.lines.pop(key, None)
        self.gone.add(key)

    def put(self, key: Key, line: str) -> None:
        if key in self.gone:
            self.gone.discard(key)
            self.moved.add(key)
        self.lines[key] = line


def replay(
    lines: Iterator[str],
    overlay: Overlay,
    sandboxes: dict[str, Any],
    specs: dict[str, Any],
    sections: dict[str, Any],
) -> Replayed:
    """Read the whole records after the head, one at a time, into `overlay` (the flows' entries)
    and the sandboxes, connection spec names and sections, in the order they were saved. `lines`:
    the file's lines after the head (each with its newline)."""
    records, size, whole = 0, 0, True
    for first in lines:
        if not first.strip():
            break
        try:
            header = json.loads(first)
            count = int(header["flows"])
            body, read = [], len(first)
            for _ in range(count):
                line = next(lines)
                raw = json.loads(line)
                body.append(((str(raw["sandbox"]), str(raw["flow_id"])), line.rstrip("\n")))
                read += len(line)
            last = next(lines)
            end = json.loads(last)
            read += len(last)
        except (ValueError, KeyError, TypeError, StopIteration):
            whole = False
            break
        if end != {"end": count}:
            whole = False
            break
        for key in header["forgotten"]:
            overlay.forget((str(key[0]), str(key[1])))
        for key, line in body:
            overlay.put(key, line)
        sandboxes.update(header["sandboxes"])
        specs.update(header.get("connection_specs", {}))
        sections.update(header.get("sections", {}))
        records += 1
        size += read
    return Replayed(records, size, whole)
