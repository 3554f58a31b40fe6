"""The ledger on disk: what makes a restart continue counting instead of starting over.

In: the ledger, after each poll cycle (save), and the files at start (load, into the ledger
through Ledger.restore). Two files: the base (`state_file`), one JSON document with every flow,
and beside it the appended changes (`state_file` + ".journal", appends.py), to which each save
adds the flows that changed since the last one (FlowState.version, bumped by the ledger) and the
flows no longer watched. A save thus costs what changed; when the appended changes have grown as
large as the base, the next save writes a new base (atomically: temp file in the same directory,
fsync, rename, fsync of the directory) and starts the appends anew. The base names a generation,
and the appends the generation they continue: appends left from before a new base (a crash
between the two writes) are not replayed, and a record cut short by a crash is dropped (that
cycle's changes are polled again).

Both name the org and base URL they belong to; a base of another org or URL, of another format
version, or one that cannot be read or parsed is moved aside (never merged, never fatal) and the
exporter starts fresh. A base without a generation and without appends (as the first format
version was written) loads as it is.

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

from exporter.ledger import appends, reading
from exporter.ledger.codec import encode, restore_flow, restore_spec_names, sandboxes_doc, specs_doc
from exporter.ledger.ledger import Ledger
from exporter.ledger.records import FlowState
from exporter.support.atomicfile import write_atomic

log = logging.getLogger(__name__)

FORMAT = "aep-flow-exporter-state"
VERSION = 1
APPENDS_FORMAT = FORMAT + "-journal"  # the format the appended changes' head names
# Lines encoded, then written, WRITE_BATCH at a time. Writing each flow's line as it was encoded
# (a write call per line of ~10 KB, with full run histories) held the event loop up for 150-330 ms
# a save, measured; in batches, 3-5 ms.
WRITE_BATCH = 100
# A base's own keys; any other top-level key is a section (StateStore.sections).
_OWN_KEYS = frozenset(
    ("format", "version", "org_id", "base_url", "saved_at", "generation", "sandboxes", "connection_specs", "flows")
)


class StateStore:
    def __init__(self, path: str, org_id: str, base_url: str) -> None:
        self.path = path
        self.appends_path = path + ".journal"
        self.org_id = org_id
        self.base_url = base_url
        # What the files hold, flow by flow: the record and its version when saved.
        self._saved: dict[tuple[str, str], tuple[FlowState, int]] = {}
        self._generation: str | None = None  # the base's, once this process has read or written it
        self._base_bytes = 0
        self._appended_bytes = 0
        self._specs: dict[str, Any] = {}  # connection spec names as read (base, then appended records)
        self._sections_read: dict[str, Any] = {}  # sections as the appended records updated them
        # Further top-level keys, each saved with the ledger in the same file (the position in
        # Adobe I/O Events' journal: exporter/events/service.py); and what the loaded file held.
        self.sections: dict[str, Callable[[], Any]] = {}
        self.loaded: dict[str, Any] = {}

    # --- load ------------------------------------------------------------------------------------

    def load(self, ledger: Ledger, sandboxes: set[str]) -> int:
        """Restore the accounting of the flows of these sandboxes into `ledger`; returns how many
        were restored. (Which of them are still watched is for the poller to say.)"""
        try:
            f = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            log.info("no state file at %s: starting fresh", self.path)
            return 0
        except OSError as e:
            self._move_aside(f"cannot be read ({type(e).__name__}: {e})", "corrupt")
            return 0
        with f:
            return self._load(f, ledger, sandboxes)

    def _load(self, f: TextIO, ledger: Ledger, sandboxes: set[str]) -> int:
        try:
            doc, entries = reading.open_base(f)  # the flows are read one at a time, below
            self._base_bytes = os.path.getsize(self.path)
        except (OSError, ValueError) as e:
            self._move_aside(f"cannot be read ({type(e).__name__}: {e})", "corrupt")
            return 0
        problem = self._problem(doc)
        if problem:
            self._move_aside(problem[0], problem[1])
            return 0
        try:
            raw_sandboxes = dict(doc.get("sandboxes", {}))
            self._specs = dict(doc.get("connection_specs", {}))
            overlay = appends.Overlay()
            replayed = self._replay(doc.get("generation"), overlay, raw_sandboxes)
            # Every record is built before the ledger gets any: half-restored would be worse than fresh.
            flows, entries_read = [], 0
            for raw in reading.merged(entries, overlay):
                entries_read += 1
                if str(raw["sandbox"]) in sandboxes:
                    flows.append(restore_flow(raw))
            last_success = {
                str(name): float(raw["last_success"])
                for name, raw in raw_sandboxes.items()
                if raw.get("last_success") is not None
            }
            capped_retired = {str(n): int(raw.get("codes_capped_retired", 0)) for n, raw in raw_sandboxes.items()}
            spec_names = restore_spec_names(self._specs)  # may be absent
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            self._move_aside(f"has an unexpected shape ({type(e).__name__}: {e})", "corrupt")
            return 0
        ledger.restore(flows, last_success, capped_retired)
        ledger.restore_spec_names(spec_names)
        self._saved = {(f.sandbox, f.flow_id): (f, f.version) for f in flows}
        self.loaded = {k: v for k, v in doc.items() if k not in _OWN_KEYS}
        self.loaded.update(self._sections_read)
        if replayed is not None and len(flows) == entries_read:
            self._generation = doc.get("generation")  # go on appending to this base's changes
        log.info(
            "restored the run ledger of %d flow(s) from %s%s",
            len(flows),
            self.path,
            f" and {replayed} journal record(s)" if replayed else "",
        )
        return len(flows)

    def _replay(self, generation: Any, overlay: appends.Overlay, sandboxes: dict[str, Any]) -> int | None:
        """Read the appended changes' whole records into `overlay`; how many there were, or None
        when there are none to continue (no file, another base's, or one cut short: the next save
        then writes a new base)."""
        try:
            f = open(self.appends_path, encoding="utf-8")
        except OSError:
            return None
        with f:
            first = f.readline()
            try:
                head = json.loads(first)
            except ValueError:
                return None
            if not generation or head != self._appends_head(generation):
                return None
            found = appends.replay(f, overlay, sandboxes, self._specs, self._sections_read)
        self._appended_bytes = len(first) + found.size
        if not found.whole:
            log.warning(
                "the state journal %s ends with a record cut short: its last cycle is dropped", self.appends_path
            )
            return None
        return found.records

    def _appends_head(self, generation: str) -> dict[str, Any]:
        return {
            "format": APPENDS_FORMAT,
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
        """Append what changed, or write a new base when the appended changes have grown as large
        as the base (or there is no base this process can continue)."""
        current = {f.key: f for f in list(ledger.flows.values()) if f.baselined}
        sandboxes = sandboxes_doc(ledger)
        # A new base when there is none to continue, the appends have grown as large as it, or
        # their file is gone (appending to a file without its head would be lost at the next load).
        if (
            self._generation is None
            or self._appended_bytes >= max(self._base_bytes, 64 * 1024)
            or not os.path.isfile(self.appends_path)
        ):
            self._write_base(current, sandboxes, specs_doc(ledger))
        else:
            self._append(current, sandboxes, specs_doc(ledger))
        saved = self._saved  # entries of unchanged flows are kept as they are (no new tuple per flow)
        self._saved = {
            k: e if (e := saved.get(k)) is not None and e[0] is f and e[1] == f.version else (f, f.version)
            for k, f in current.items()
        }

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
            batch: list[str] = []
            for i, flow in enumerate(current.values()):
                batch.append(("," if i else "") + encode(flow) + "\n")
                size += len(batch[-1])
                if len(batch) == WRITE_BATCH:
                    f.writelines(batch)
                    batch.clear()
            f.writelines(batch)
            f.write("]}\n")

        self._generation = None  # until both files are written: a failure means a new base next time
        write_atomic(self.path, fill, ".state-")
        head_line = json.dumps(self._appends_head(generation), separators=(",", ":")) + "\n"
        write_atomic(self.appends_path, lambda f: f.write(head_line), ".state-journal-")
        self._generation, self._base_bytes, self._appended_bytes = generation, size, len(head_line)

    def _append(
        self, current: dict[tuple[str, str], FlowState], sandboxes: dict[str, Any], specs: dict[str, Any]
    ) -> None:
        saved = self._saved
        changed = [f for k, f in current.items() if (e := saved.get(k)) is None or e[0] is not f or e[1] != f.version]
        forgotten = [list(k) for k in saved if k not in current]
        sections = {name: section() for name, section in self.sections.items()}
        generation, self._generation = self._generation, None  # a failed append: a new base next time
        size = 0
        with open(self.appends_path, "ab") as f:
            batch: list[bytes] = []
            for line in appends.record(sandboxes, specs, sections, forgotten, changed):
                batch.append(line.encode("utf-8"))
                size += len(batch[-1])
                if len(batch) == WRITE_BATCH:
                    f.writelines(batch)
                    batch.clear()
            f.writelines(batch)
            f.flush()
            os.fsync(f.fileno())
        self._generation = generation
        self._appended_bytes += size
