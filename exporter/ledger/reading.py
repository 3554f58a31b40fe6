"""Reading the base a flow at a time: its head line, then one flow entry a line, each parsed,
laid over by the appended changes (appends.Overlay) and restored before the next is read.

So a load never holds the whole document as objects. At 10,000 flows with the default run
history full (50 runs a flow), the base is 118 MB of JSON; parsed whole it made some 750 MB of
small objects, and the RSS stayed at 745 MB after the load (the long-lived records sat among the
freed ones). A base in another layout (a file not written by store.py, or of the first format
version) is read whole, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from exporter.ledger.appends import Overlay

HEAD_END = ',"flows":[\n'  # how store.py ends the base's first line


def open_base(f: TextIO) -> tuple[Any, Iterator[Any]]:
    """The base's document less its flows (with an empty `flows` list), and its flow entries,
    read as they are asked for. ValueError when it is not JSON."""
    first = f.readline()
    if first.endswith(HEAD_END):
        head = json.loads(first[: -len(HEAD_END)] + "}")
        if isinstance(head, dict):
            head["flows"] = []
            return head, _entries(f)
    f.seek(0)
    doc = json.load(f)
    flows = doc.get("flows") if isinstance(doc, dict) else None
    return doc, iter(flows if isinstance(flows, list) else ())


def _entries(f: TextIO) -> Iterator[Any]:
    for line in f:
        if line.startswith("]}"):
            return
        yield json.loads(line[1:] if line.startswith(",") else line)
    raise ValueError("the base ends before its flow list does")


def merged(base: Iterable[Any], overlay: Overlay) -> Iterator[Any]:
    """The flow entries as the base and its appended changes say together, in the order a replay
    onto the base's entries gives: the base's order, a flow the appends changed in its place, the
    ones they added (or forgot and added again) after it. A flow the base names twice: the first."""
    seen: set[tuple[str, str]] = set()
    for raw in base:
        key = (str(raw["sandbox"]), str(raw["flow_id"]))
        if key in seen or key in overlay.gone or key in overlay.moved:
            continue
        seen.add(key)
        line = overlay.lines.pop(key, None)
        yield raw if line is None else json.loads(line)
    for key, line in overlay.lines.items():
        if key not in seen:
            yield json.loads(line)
