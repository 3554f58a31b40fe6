"""The soak's exporter, in a process of its own (bench/soak.py starts it): its RSS is then the
exporter's alone, not mixed with the simulated Adobe's, the driver's and the ground truth's.

    python bench/soak_exporter.py FD LOG TRACE

FD is one end of a socket pair, LOG the exporter's log file, TRACE 1 to run under tracemalloc. The driver sends pickled commands and waits for each answer:
the first message is the spec (the simulator's address and credentials, the flows, the options);
then ("cycle", now, reconcile) polls once at simulated time `now` and saves + renders, as the
daemon does; ("reload", watched) takes a new flow list, as SIGHUP does; ("served",) answers the
counters /metrics serves; ("snapshot",) and ("growth",) compare tracemalloc snapshots; ("stop",)
ends it. The exporter is wired as the daemon wires it (exporter.runtime.open_exporter) and set
up as its start does (exporter.support.tuning.tune); only its clocks are the driver's.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import logging
import os
import sys
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from exporter.config import AdobeConfig, Config, SandboxConfig
from exporter.runtime import Exporter, open_exporter
from exporter.support import tuning
from exporter.support.logs import setup_logging
from exporter.support.retry import RetryPolicy
from exporter.support.secrets import Secret

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_world import SANDBOXES, SUMS, FakeClock, proc_status

RETRY = RetryPolicy(max_attempts=4, max_elapsed=10.0, base_delay=0.01, max_delay=0.05)


def make_config(spec: dict, watched: dict[str, str]) -> Config:
    origin = spec["origin"]
    return Config(
        adobe=AdobeConfig(
            client_id=spec["client_id"],
            client_secret=Secret(spec["client_secret"]),
            org_id=spec["org_id"],
            token_url=origin + spec["token_path"],
            base_url=origin + spec["base_path"],
        ),
        sandboxes=sandboxes_of(watched),
        poll_interval=spec["poll_interval"],
        lookback=spec["lookback"],
        fetch_strategy=spec["strategy"],
        state_file=spec["state_file"],
    )


def sandboxes_of(watched: dict[str, str]) -> tuple[SandboxConfig, ...]:
    return tuple(SandboxConfig(s, tuple(f for f, sb in watched.items() if sb == s)) for s in SANDBOXES)


def served(exp: Exporter) -> tuple[dict[str, dict], set[str], float]:
    """Each flow's counters as /metrics serves them now (zeros left out), every flow id any series
    names, and the API retries counted."""
    body, _ = exp.render.body("text/plain", "")
    out: dict[str, dict] = {}
    present: set[str] = set()
    retries = 0.0
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == "aep_exporter_api_retries_total":
                retries += s.value
            flow_id = s.labels.get("flow_id")
            if flow_id is not None:
                present.add(flow_id)
            if flow_id is None or not s.name.startswith("aep_flow_") or not s.name.endswith("_total") or not s.value:
                continue
            view = out.setdefault(flow_id, {"runs": {}, "sums": {}, "run_errors": {}, "error_records": {}})
            name = s.name[len("aep_flow_") : -len("_total")]
            if name == "runs":
                view["runs"][s.labels["status"]] = int(s.value)
            elif name in ("run_errors", "error_records"):
                view[name][s.labels["code"]] = int(s.value)
            elif name in SUMS:
                view["sums"][name] = int(s.value)
    return out, present, retries


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
        + ("keepcost",)
    ]


def allocators() -> dict[str, int]:
    """Where the heap is (kB): pymalloc's arenas (1 MiB mappings of small objects, freed only when
    wholly empty) and glibc's heaps (in use, free inside them, and blocks mapped on their own)."""
    out = {"pymalloc": 0, "pymalloc_high": 0, "pymalloc_used": 0, "glibc_used": 0, "glibc_free": 0, "glibc_mapped": 0}
    with tempfile.TemporaryFile() as err:  # it writes to the C-level stderr
        saved = os.dup(2)
        try:
            os.dup2(err.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        text = err.read().decode()
    for line in text.splitlines():
        if line.startswith("# arenas allocated current"):
            out["pymalloc"] = int(line.split("=")[1].replace(",", "")) * 1024
        elif line.startswith("# arenas highwater mark"):
            out["pymalloc_high"] = int(line.split("=")[1].replace(",", "")) * 1024
        elif line.startswith("# bytes in allocated blocks"):
            out["pymalloc_used"] = int(line.split("=")[1].replace(",", "")) // 1024
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return out
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    out["glibc_used"], out["glibc_free"], out["glibc_mapped"] = (
        info.uordblks // 1024,
        info.fordblks // 1024,
        info.hblkhd // 1024,
    )
    return out


def type_counts() -> dict[str, int]:
    """Live objects by type name (gc-tracked ones): which kind of object grows."""
    counts: dict[str, int] = {}
    for o in gc.get_objects():
        name = type(o).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


class Session:
    """The exporter and what the driver's commands do to it."""

    def __init__(self, exp: Exporter, clock: FakeClock) -> None:
        self.exp, self.clock = exp, clock
        self.snap: tracemalloc.Snapshot | None = None
        self.types: dict[str, int] = {}

    async def cycle(self, now: float, reconcile: bool) -> dict[str, Any]:
        exp = self.exp
        self.clock.now = now
        if reconcile:  # its schedule is on the monotonic clock: due every simulated interval instead
            for caps in exp.poller.capabilities.values():
                caps.reconcile_next()
        t0 = time.monotonic()
        await exp.poller.poll_once()
        t1 = time.monotonic()
        await exp.after_cycle()
        t2 = time.monotonic()
        measured, blocks = {**proc_status(), **allocators()}, sys.getallocatedblocks()
        parts, _ = await exp.render.parts("text/plain", "")
        return {
            "series": sum(p.count(b"\n") - p.count(b"\n#") - p.startswith(b"#") for p in parts),
            **measured,
            "blocks": blocks,
            "poll": t1 - t0,
            "after_cycle": t2 - t1,
            "baselined": [f for (_, f), s in exp.ledger.flows.items() if s.baselined],
            "ledger_runs": sum(len(s.seen) for s in exp.ledger.flows.values()),
        }

    def reload(self, watched: dict[str, str]) -> None:
        tokens = self.exp.tokens
        self.exp.reload(dataclasses.replace(self.exp.config, sandboxes=sandboxes_of(watched)))
        assert self.exp.tokens is tokens, "a reload replaced the token provider: its clock would be lost"

    def snapshot(self) -> None:
        if tracemalloc.is_tracing():
            self.snap, self.types = tracemalloc.take_snapshot(), type_counts()

    def growth(self) -> dict[str, list[str]]:
        if self.snap is None:
            return {}
        snap = tracemalloc.take_snapshot()
        sites = snap.compare_to(self.snap, "lineno")[:15]
        files = snap.compare_to(self.snap, "filename")[:10]
        now = type_counts()
        types = sorted(((now[k] - self.types.get(k, 0), k) for k in now), reverse=True)[:10]
        return {
            "sites": [str(s) for s in sites],
            "files": [str(s) for s in files],
            "types": [f"{n:+d} {name}" for n, name in types],
        }


async def serve(conn: Connection) -> None:
    spec = conn.recv()
    clock = FakeClock(spec["now"])
    async with open_exporter(make_config(spec, spec["watched"]), RETRY, persist=True) as exp:
        exp.poller.clock = clock
        exp.tokens._clock = clock  # one clock for the whole day
        session = Session(exp, clock)
        conn.send({"reconcile_interval": exp.config.reconcile_interval})
        while True:
            command, *args = await asyncio.to_thread(conn.recv)
            if command == "cycle":
                conn.send(await session.cycle(*args))
            elif command == "reload":
                session.reload(*args)
                conn.send(None)
            elif command == "served":
                conn.send(served(exp))
            elif command == "snapshot":
                session.snapshot()
                conn.send(None)
            elif command == "growth":
                conn.send(session.growth())
            else:
                conn.send(None)
                return


def main() -> int:
    conn = Connection(int(sys.argv[1]))
    tuning.tune()  # as the daemon does at start (exporter/cli/daemon.py serve)
    log_path, trace = sys.argv[2], sys.argv[3] == "1"
    if trace:
        tracemalloc.start(1)
    with open(log_path, "w") as log_file:
        setup_logging("info", stream=log_file)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        asyncio.run(serve(conn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
