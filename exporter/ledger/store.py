"""The ledger on disk: what makes a restart continue counting instead of starting over.

Two files: the base (`state_file`), one JSON document with every flow, and beside it a journal
(`state_file` + ".journal") to which each poll cycle appends the flows that changed since the
last save (FlowState.version, bumped by the ledger) and the flows no longer watched. A save thus
costs what changed; when the journal has grown as large as the base, the next save writes a new
base (atomically: temp file in the same directory, fsync, rename, fsync of the directory) and
starts a new journal. The base names a generation, and the journal the generation it continues:
a journal left from before a new base (a crash between the two writes) is not replayed, and a
record cut short by a crash is dropped (that cycle's changes are polled again).

Both name the org and base URL they belong to; a base of another org or URL, of another format
version, or one that cannot be read or parsed is moved aside (never merged, never fatal) and the
exporter starts fresh. Files of the previous release (a base without generation, no journal)
load as they are.

Saving runs in a worker thread and reads the ledger directly: the poller awaits the save between
cycles (Exporter.after_cycle), so the ledger holds still meanwhile, as it does for rendering. Flows
are encoded one at a time, so json's C encoder never holds the interpreter lock for long.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from exporter.ledger.codec import encode, flow_doc, restore_flow, restore_spec_names, sandboxes_doc, specs_doc
from exporter.ledger.ledger import Ledger
from exporter.ledger.records import FlowState
from exporter.support.atomicfile import write_atomic

log = logging.getLogger(__name__)

FORMAT = "aep-flow-exporter-state"
VERSION = 1


JOURNAL_FORMAT = FORMAT + "-journal"
# A base's own keys; any other top-level key is a section (StateStore.sections).
_OWN_KEYS = frozenset(
    ("format", "version", "org_id", "base_url", "saved_at", "generation", "sandboxes", "connection_specs", "flows")
)


class StateStore:
    def __init__(self, path: str, org_id: str, base_url: str) -> None:
        self.path = path
        self.journal_path = path + ".journal"
        self.org_id = org_id
        self.base_url = base_url
        self.saves = 0
        self.base_writes = 0  # saves that wrote a whole new base (the others appended to the journal)
        # What the files hold, flow by flow: the record and its version when saved.
        self._saved: dict[tuple[str, str], tuple[FlowState, int]] = {}
        self._generation: str | None = None  # the base's, once this process has read or written it
        self._base_bytes = 0
        self._journal_bytes = 0
        self._specs: dict[str, Any] = {}  # connection spec names as read (base, then journal records)
        self._sections_read: dict[str, Any] = {}  # sections as the journal's records updated them
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
            self._base_bytes = os.path.getsize(self.path)
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
            raw_flows = {(str(raw["sandbox"]), str(raw["flow_id"])): raw for raw in doc["flows"]}
            raw_sandboxes = dict(doc.get("sandboxes", {}))
            self._specs = dict(doc.get("connection_specs", {}))
            replayed = self._replay(doc.get("generation"), raw_flows, raw_sandboxes)
            # Every record is built before the ledger gets any: half-restored would be worse than fresh.
            flows = [restore_flow(raw) for (sandbox, _), raw in raw_flows.items() if sandbox in sandboxes]
            last_success = {
                str(name): float(raw["last_success"])
                for name, raw in raw_sandboxes.items()
                if raw.get("last_success") is not None
            }
            capped_retired = {str(n): int(raw.get("codes_capped_retired", 0)) for n, raw in raw_sandboxes.items()}
            spec_names = restore_spec_names(self._specs)  # absent before names
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            self._move_aside(f"has an unexpected shape ({type(e).__name__}: {e})", "corrupt")
            return 0
        ledger.restore(flows, last_success, capped_retired)
        ledger.restore_spec_names(spec_names)
        self._saved = {(f.sandbox, f.flow_id): (f, f.version) for f in flows}
        self.loaded = {k: v for k, v in doc.items() if k not in _OWN_KEYS}
        self.loaded.update(self._sections_read)
        if replayed is not None and len(flows) == len(raw_flows):
            self._generation = doc.get("generation")  # go on appending to this base's journal
        log.info(
            "restored the run ledger of %d flow(s) from %s%s",
            len(flows),
            self.path,
            f" and {replayed} journal record(s)" if replayed else "",
        )
        return len(flows)

    def _replay(self, generation: Any, flows: dict[tuple[str, str], Any], sandboxes: dict[str, Any]) -> int | None:
        """Apply the journal's whole records to the base's flows; how many there were, or None
        when there is no journal to continue (none, another base's, or one cut short: the next
        save then writes a new base)."""
        try:
            with open(self.journal_path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except OSError:
            return None
        try:
            head = json.loads(lines[0])
        except ValueError:
            return None
        if not generation or head != self._journal_head(generation):
            return None
        records, i, whole = 0, 1, True
        while i < len(lines) and lines[i]:
            try:
                record = json.loads(lines[i])
                count = int(record["flows"])
                body = [json.loads(line) for line in lines[i + 1 : i + 1 + count]]
                end = json.loads(lines[i + 1 + count]) if i + 1 + count < len(lines) else None
            except (ValueError, KeyError, TypeError):
                whole = False
                break
            if len(body) != count or end != {"end": count}:
                whole = False
                break
            for key in record["forgotten"]:
                flows.pop((str(key[0]), str(key[1])), None)
            for raw in body:
                flows[(str(raw["sandbox"]), str(raw["flow_id"]))] = raw
            sandboxes.update(record["sandboxes"])
            self._specs.update(record.get("connection_specs", {}))
            self._sections_read.update(record.get("sections", {}))
            records += 1
            i += count + 2
        self._journal_bytes = sum(len(line) + 1 for line in lines[:i])
        if not whole:
            log.warning(
                "the state journal %s ends with a record cut short: its last cycle is dropped", self.journal_path
            )
            return None
        return records

    def _journal_head(self, generation: str) -> dict[str, Any]:
        return {
            "format": JOURNAL_FORMAT,
            "version": VERSION,
            "org_id": self.org_id,
            "base_url": self.base_url,
            "generation": generation,
        }

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

    async def save(self, ledger: Ledger) -> None:
        """Between poll cycles (the ledger holds still until this returns)."""
        await asyncio.to_thread(self.save_now, ledger)

    def save_now(self, ledger: Ledger) -> None:
        """Append what changed to the journal, or write a new base when the journal has grown as
        large as the base (or there is no base this process can continue)."""
        current = {f.key: f for f in list(ledger.flows.values()) if f.baselined}
        sandboxes = sandboxes_doc(ledger)
        # A new base when there is none to continue, the journal has grown as large as it, or the
        # journal is gone (appending to a file without its head would be lost at the next load).
        if (
            self._generation is None
            or self._journal_bytes >= max(self._base_bytes, 64 * 1024)
            or not os.path.isfile(self.journal_path)
        ):
            self._write_base(current, sandboxes, specs_doc(ledger))
        else:
            self._append(current, sandboxes, specs_doc(ledger))
        saved = self._saved  # entries of unchanged flows are kept as they are (no new tuple per flow)
        self._saved = {
            k: e if (e := saved.get(k)) is not None and e[0] is f and e[1] == f.version else (f, f.version)
            for k, f in current.items()
        }
        self.saves += 1

    def _write_base(
        self, current: dict[tuple[str, str], FlowState], sandboxes: dict[str, Any], specs: dict[str, Any]
    ) -> None:
        generation = uuid.uuid4().hex
        head = {
            "format": FORMAT,
            "version": VERSION,
            "org_id": self.org_id,
            "base_url": self.base_url,
            "saved_at": time.time(),
            "generation": generation,
            "sandboxes": sandboxes,
            "connection_specs": specs,
            **{name: section() for name, section in self.sections.items()},
        }
        size = 0

        def fill(f: TextIO) -> None:
            nonlocal size
            # One flow a line (and a call): json's C encoder holds the GIL for a whole call.
            text = json.dumps(head, separators=(",", ":"))[:-1] + ',"flows":[\n'
            f.write(text)
            size = len(text)
            for i, flow in enumerate(current.values()):
                line = ("," if i else "") + encode(flow) + "\n"
                f.write(line)
                size += len(line)
            f.write("]}\n")

        self._generation = None  # until both files are written: a failure means a new base next time
        write_atomic(self.path, fill, ".state-")
        head_line = json.dumps(self._journal_head(generation), separators=(",", ":")) + "\n"
        write_atomic(self.journal_path, lambda f: f.write(head_line), ".state-journal-")
        self._generation, self._base_bytes, self._journal_bytes = generation, size, len(head_line)
        self.base_writes += 1

    def _append(
        self, current: dict[tuple[str, str], FlowState], sandboxes: dict[str, Any], specs: dict[str, Any]
    ) -> None:
        saved = self._saved
        changed = [f for k, f in current.items() if (e := saved.get(k)) is None or e[0] is not f or e[1] != f.version]
        forgotten = [list(k) for k in saved if k not in current]
        lines = [
            json.dumps(
                {
                    "saved_at": time.time(),
                    "sandboxes": sandboxes,
                    "connection_specs": specs,
                    "sections": {name: section() for name, section in self.sections.items()},
                    "forgotten": forgotten,
                    "flows": len(changed),
                }
            )
        ]
        lines += [encode(f) for f in changed]
        lines.append(json.dumps({"end": len(changed)}))
        text = "\n".join(lines) + "\n"
        generation, self._generation = self._generation, None  # a failed append: a new base next time
        with open(self.journal_path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self._generation = generation
        self._journal_bytes += len(text.encode("utf-8"))

    # --- the previous interface (bench/state_file.py) --------------------------------------------

    def snapshot(self, ledger: Ledger) -> dict[str, Any]:
        """The whole ledger as one document (what a base holds)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "org_id": self.org_id,
            "base_url": self.base_url,
            "saved_at": time.time(),
            "sandboxes": sandboxes_doc(ledger),
            "connection_specs": specs_doc(ledger),
            "flows": [flow_doc(f) for f in ledger.flows.values() if f.baselined],
            **{name: section() for name, section in self.sections.items()},
        }
