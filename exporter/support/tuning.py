"""Memory over months: the C allocator's settings, giving freed memory back, and keeping the
cyclic garbage collector off the long-lived data.

The collector. At 10,000 flows the ledger, the render cache and the status rows are some 210,000
objects the collector tracks, and a full collection walks all of them holding the interpreter lock
(in whatever thread it runs): 100-270 ms with the event loop stopped, the worst stalls the
benchmark saw. So after each cycle, settle() collects what is not frozen (the cycle's survivors and
its cyclic garbage: a few thousand objects) and freezes the rest (`gc.freeze()`), and automatic
full collections are put off (GEN2_THRESHOLD): later collections skip the frozen objects. The
ledger's records do not form reference cycles, so freezing them loses nothing; should the frozen
set grow by FROZEN_GROWTH (cycles among frozen objects that became garbage later would show as
growth), everything is unfrozen and collected once, as CPython would have done on its own.

The allocator. Each cycle makes a few buffers of megabytes (the exposition's family bodies, pages
of runs, a state file's lines) in the render, parse and save worker threads. With glibc's defaults,
every thread gets its own heap arena (up to 8 per core), and the threshold above which a block
gets its own mapping rises with every large block freed, up to 32 MB: after a few cycles those
buffers come from the heaps, and the holes they leave stay resident. So, on glibc, at start: at
most two arenas and a fixed 128 KiB mmap threshold (what the environment variables
MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ set; an operator who sets either keeps theirs), and
after each cycle malloc_trim(0), which hands the free pages inside the heaps back to the kernel.
Elsewhere (musl, macOS) nothing is done about the allocator. Python's small objects come from
its own allocator (pymalloc), which gives an arena (1 MiB) back only when every object in it is
gone: a step that makes megabytes of small objects at once leaves arenas behind, held by the few
long-lived objects made meanwhile. So such steps work in small batches (the render: BATCH in
exporter/exposition/families.py); the soak (bench/soak.py) shows pymalloc's arenas against its live
blocks, hour by hour.

Measured (BENCHMARKS.md): 10,000 flows went from 382 to 249 MB peak RSS with the allocator
settings alone; the worst stall from 250 to about 20-35 ms with the collector's.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameters (glibc's malloc.h)
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed

_libc: Any = None


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


def tune() -> bool:
    """Set the allocator up for a long-running process (before any worker thread starts).
    True if this is glibc and the settings were applied (or left to the environment)."""
    global _libc
    tune_collector()
    _libc = _glibc()
    if _libc is None:
        return False
    if "MALLOC_ARENA_MAX" not in os.environ:
        _libc.mallopt(M_ARENA_MAX, ARENAS)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return True


def trim() -> None:
    """Give the heaps' free pages back to the kernel (call it in a worker thread: ctypes lets go
    of the interpreter lock, and the walk over the heaps takes milliseconds)."""
    if _libc is not None:
        _libc.malloc_trim(0)


FROZEN_GROWTH = 0.25  # a full collection when the frozen set grew this much since the last one
GEN2_THRESHOLD = 1000  # gen1 collections between automatic full ones (CPython: 10)
_frozen_base: int | None = None


def tune_collector() -> None:
    """Full collections only when settle() calls for them (or after 1,000 young ones): between
    two cycles the unfrozen objects are few, but mid-cycle they include a rendering's."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GEN2_THRESHOLD)


def settle() -> bool:
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
