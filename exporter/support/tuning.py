"""Process tuning: every setting by which the exporter trades CPU, memory or latency for a process
that runs for months, each with why it exists and the BENCHMARKS.md figure it rests on.

Nothing enters here but the calls: the daemon calls tune() at start (before any worker thread);
after each poll cycle exporter/runtime.py calls freeze_survivors() and trim(); the render step
reads RENDER_BATCH (exporter/exposition/families.py) and /metrics writes its bodies WRITE_SLICE
bytes at a time (exporter/exposition/render.py). The ledger shares one object per set of status
and count names (`interned` in exporter/ledger/records.py), with the records it belongs to.

Threads. Rendering, gzip and file writes run in worker threads; CPython hands the interpreter
lock over every 5 ms by default, so a scrape could wait that long per switch. SWITCH_INTERVAL
lets the event loop answer scrapes promptly while a worker runs (no BENCHMARKS.md row measures it
alone: it came with the first render benchmark, and every row since was measured with it).

Writing bodies. A family body of megabytes handed to the transport at once is copied into its
buffer in one step of the event loop; WRITE_SLICE bytes at a time, scrapes and the poll go on
between the slices. BENCHMARKS.md: 10,000 flows (friendly, alone), worst loop stall 28-94 ms over
five runs before, 26 ms after.

Rendering in batches. The render step makes ~20 KB of small sample objects per flow it renders;
RENDER_BATCH flows at a time, the sample objects of thousands of flows never exist at once. At
500 a batch they were ~10 MB at every render's peak, pymalloc took arenas for them and the
long-lived objects made meanwhile kept some from being given back: the soak's RSS crept 74 → 79
MB over 11 hours (+6.8%). At 100 a batch the 72-hour soak held at +3.8% (BENCHMARKS.md, soak).

The collector. At 10,000 flows the ledger, the render cache and the status rows are some 210,000
objects the collector tracks, and a full collection walks all of them holding the interpreter lock
(in whatever thread it runs): 100-270 ms with the event loop stopped, the worst stalls the
benchmark saw. So after each cycle, freeze_survivors() collects what is not frozen (the cycle's
survivors and its cyclic garbage: a few thousand objects) and freezes the rest (`gc.freeze()`), and
automatic full collections are put off (GEN2_THRESHOLD): later collections skip the frozen objects.
The ledger's records do not form reference cycles, so freezing them loses nothing; should the
frozen set grow by FROZEN_GROWTH (cycles among frozen objects that became garbage later would show
as growth), everything is unfrozen and collected once, as CPython would have done on its own.
BENCHMARKS.md: worst stall 219 → 50 ms at 10,000 flows.

The allocator. Each cycle makes a few buffers of megabytes (the exposition's family bodies, pages
of runs, a state file's lines) in the render, parse and save worker threads. With glibc's defaults,
every thread gets its own heap arena (up to 8 per core), and the threshold above which a block
gets its own mapping rises with every large block freed, up to 32 MB: after a few cycles those
buffers come from the heaps, and the holes they leave stay resident. So, on glibc, at start: at
most two arenas and a fixed 128 KiB mmap threshold (what the environment variables
MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ set; an operator who sets either keeps theirs), and
after each cycle malloc_trim(0), which hands the free pages inside the heaps back to the kernel.
Elsewhere (musl, macOS) nothing is done about the allocator. BENCHMARKS.md: 10,000 flows went
from 382 to 249 MB peak RSS (friendly) with the allocator settings alone.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from typing import Any

SWITCH_INTERVAL = 0.001  # seconds a thread holds the interpreter lock before handing it over
WRITE_SLICE = 256 * 1024  # bytes of a /metrics body handed to the transport at once
RENDER_BATCH = 100  # flows whose sample objects the render step makes together

M_MMAP_THRESHOLD = -3  # mallopt parameters (glibc's malloc.h)
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed

FROZEN_GROWTH = 0.25  # a full collection when the frozen set grew this much since the last one
GEN2_THRESHOLD = 1000  # gen1 collections between automatic full ones (CPython: 10)

_libc: Any = None
_frozen_base: int | None = None


def tune() -> None:
    """Set the process up for a long run: the switch interval, the collector, and (on glibc)
    the allocator. Call it before any worker thread starts."""
    global _libc
    sys.setswitchinterval(SWITCH_INTERVAL)
    tune_collector()
    _libc = _glibc()
    if _libc is None:
        return
    if "MALLOC_ARENA_MAX" not in os.environ:
        _libc.mallopt(M_ARENA_MAX, ARENAS)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    # gnu_get_libc_version: glibc's alone (musl has mallopt but ignores these parameters)
    if not all(hasattr(libc, f) for f in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def trim() -> None:
    """Give the heaps' free pages back to the kernel (call it in a worker thread: ctypes lets go
    of the interpreter lock, and the walk over the heaps takes milliseconds)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def tune_collector() -> None:
    """Full collections only when freeze_survivors() calls for them (or after 1,000 young ones):
    between two cycles the unfrozen objects are few, but mid-cycle they include a rendering's."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GEN2_THRESHOLD)


def freeze_survivors() -> bool:
    """After a cycle: collect what is not frozen (what this cycle left: its cyclic garbage, such
    as exceptions with their tracebacks, goes now, not frozen), then freeze what survived. True
    when a full collection followed (the frozen set had grown by FROZEN_GROWTH since the last
    one: cycles among frozen objects that became garbage later)."""
    global _frozen_base
    gc.collect()  # skips the frozen objects: the walk covers the last cycle's survivors only
    gc.freeze()
    full = _frozen_base is not None and gc.get_freeze_count() > _frozen_base * (1 + FROZEN_GROWTH)
    if full:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    if full or _frozen_base is None:
        _frozen_base = gc.get_freeze_count()
    return full
