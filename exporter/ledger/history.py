"""Each flow's recent completed runs, packed into one bytes object: what the flow page shows.

At 10,000 flows and 50 runs each, half a million run records live in memory: as slotted objects
with their floats and ints they would take some 350 bytes each, packed here about 57 (a run ID
that is a UUID as its 16 bytes, the creation time in ms and the start and end as 32-bit offsets
from it, record counts as 32-bit integers, the status as an index into a small shared table, error
codes and truncated messages only for runs that had errors; a run whose numbers do not fit takes
the wide form, 77 bytes). A
flow's history is immutable: the ledger replaces it whole when runs complete (a few per cycle), so
a render step may hold on to it while the ledger moves on. `unpack` gives `PastRun`s, made only
for the flow a page shows.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.adobe.runfacts import COMPLETED_STATUSES, UNKNOWN_STATUS, RunFacts

# The wide form: run ID (UUID bytes), created/started/ended (ms), records in/out/failed, input
# bytes, status index, length of a run ID that is not a UUID (0: it is), length of the errors'
# text. The narrow form: the same with started/ended as ms after created, records as 32 bits.
# Each record opens with a byte saying which.
_WIDE = struct.Struct("<B16s3q4qBBH")
_NARROW = struct.Struct("<B16sqiiIIIqBBH")
_FORMS = (_NARROW, _WIDE)
_STATUS_AT = (struct.calcsize("<B16sqiiIIIq"), struct.calcsize("<B16s3q4q"))  # each form's status byte
_NONE = -(2**63)  # a value Adobe did not report (wide form, and input bytes)
_NONE32, _NONE_U32 = -(2**31), 2**32 - 1  # the same in the narrow form's offsets and counts
_SEP, _END = "\x1f", "\x1e"  # between code and message, after each error (stripped from both)
_STATUSES: list[str] = [*COMPLETED_STATUSES, UNKNOWN_STATUS]
_INDEX: dict[str, int] = {s: i for i, s in enumerate(_STATUSES)}
STATUSES_MAX = 250  # statuses Adobe may invent beyond these share "unknown"


@dataclass(frozen=True, slots=True)
class PastRun:
    """One completed run as the history keeps it (times in epoch seconds)."""

    run_id: str
    created: float | None
    started: float | None
    ended: float | None
    status: str
    input_records: int | None
    output_records: int | None
    failed_records: int | None
    input_bytes: int | None
    errors: tuple[tuple[str, str], ...]  # (code, message truncated)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None or self.ended < self.started:
            return None
        return round(self.ended - self.started, 3)

    @property
    def when(self) -> float:
        """What orders runs: created, else started, else ended."""
        return next((t for t in (self.created, self.started, self.ended) if t is not None), 0.0)


@dataclass(frozen=True, slots=True)
class LastCounted:
    """The run counted last: the OpenMetrics exemplar of the flow's counters (exposition/exemplars.py)."""

    run_id: str
    status: str
    failed_records: int | None
    ended: float | None


def last_counted(last: LastCounted | None, run: RunFacts) -> LastCounted:
    """The run counted last, of `last` and `run` (runs counted in one poll: the one that ended last)."""
    if last is not None and last.ended is not None and run.ended is not None and run.ended < last.ended:
        return last
    return LastCounted(run.run_id, run.status, run.counts.get("failed_records"), run.ended)


def past_run(r: RunFacts) -> PastRun:
    created = r.created if r.created is not None else r.order_time
    return PastRun(
        r.run_id,
        created,
        r.started,
        r.ended,
        r.status,
        r.counts.get("input_records"),
        r.counts.get("output_records"),
        r.counts.get("failed_records"),
        r.counts.get("input_bytes"),
        r.error_messages or tuple((c, "") for c in sorted(r.error_codes)[:5]),
    )


def _status_index(status: str) -> int:
    i = _INDEX.get(status)
    if i is None:
        if len(_STATUSES) >= STATUSES_MAX:
            return _INDEX[UNKNOWN_STATUS]
        i = _INDEX[status] = len(_STATUSES)
        _STATUSES.append(status)
    return i


def _ms(t: float | None) -> int:
    return _NONE if t is None else round(t * 1000)


def _num(n: int | None) -> int:
    return _NONE if n is None or not -(2**63) < n < 2**63 else n


def _clean(s: str) -> str:
    return s.replace(_SEP, " ").replace(_END, " ")


def pack_one(r: PastRun) -> bytes:
    try:
        raw, odd = uuid.UUID(r.run_id).bytes, b""
        if str(uuid.UUID(bytes=raw)) != r.run_id:
            raise ValueError
    except ValueError:
        raw, odd = bytes(16), r.run_id.encode()[:255]
    text = "".join(f"{_clean(c)}{_SEP}{_clean(m)}{_END}" for c, m in r.errors).encode()[:65535]
    tail = (_num(r.input_bytes), _status_index(r.status), len(odd), len(text))
    narrow = _narrow(r)
    if narrow is not None:
        return _NARROW.pack(0, raw, *narrow, *tail) + odd + text
    times = (_ms(r.created), _ms(r.started), _ms(r.ended))
    counts = (_num(r.input_records), _num(r.output_records), _num(r.failed_records))
    return _WIDE.pack(1, raw, *times, *counts, *tail) + odd + text


def _narrow(r: PastRun) -> tuple[int, ...] | None:
    """created (ms), start and end as ms after it, record counts: None if one does not fit."""
    if r.created is None:
        return None
    base = _ms(r.created)
    offsets = [_NONE32 if t is None else _ms(t) - base for t in (r.started, r.ended)]
    counts = [_NONE_U32 if n is None else n for n in (r.input_records, r.output_records, r.failed_records)]
    if not all(_NONE32 < o < 2**31 for o in offsets if o != _NONE32) or not all(0 <= n <= _NONE_U32 for n in counts):
        return None
    return (base, *offsets, *counts)


def _offsets(history: bytes) -> list[int]:
    """Where each packed run starts (read from the fixed-width heads alone)."""
    offsets, i = [], 0
    while i < len(history):
        offsets.append(i)
        form = _FORMS[history[i]]
        n_odd, n_text = form.unpack_from(history, i)[-2:]
        i += form.size + n_odd + n_text
    return offsets


def _one(history: bytes, i: int) -> PastRun:
    form = _FORMS[history[i]]
    wide, raw, c, s, e, rin, rout, rfail, bts, st, n_odd, n_text = form.unpack_from(history, i)
    i += form.size
    run_id = history[i : i + n_odd].decode(errors="replace") if n_odd else str(uuid.UUID(bytes=raw))
    text = history[i + n_odd : i + n_odd + n_text].decode(errors="replace")
    errors = tuple((code, msg) for code, _, msg in (x.partition(_SEP) for x in text.split(_END) if x))
    if wide:
        t = [None if v == _NONE else v / 1000 for v in (c, s, e)]
        n = [None if v == _NONE else v for v in (rin, rout, rfail)]
    else:
        t = [c / 1000, *(None if v == _NONE32 else (c + v) / 1000 for v in (s, e))]
        n = [None if v == _NONE_U32 else v for v in (rin, rout, rfail)]
    n.append(None if bts == _NONE else bts)
    return PastRun(run_id, t[0], t[1], t[2], _STATUSES[st], n[0], n[1], n[2], n[3], errors)


def unpack(history: bytes, newest: int | None = None) -> list[PastRun]:
    """The runs of a packed history, oldest first; only the `newest` n if given."""
    offsets = _offsets(history)
    if newest is not None:
        offsets = offsets[max(0, len(offsets) - newest) :] if newest > 0 else []
    return [_one(history, i) for i in offsets]


def pack(runs: Iterable[PastRun]) -> bytes:
    return b"".join(pack_one(r) for r in runs)


def with_runs(history: bytes, new: Iterable[PastRun], limit: int) -> bytes:
    """The history with these runs added (a run already in it is not added twice), the newest
    `limit` kept, oldest first."""
    new = list(new)
    appended = _appended(history, new, limit)
    if appended is not None:
        return appended
    runs = unpack(history)
    known = {r.run_id for r in runs}
    added = [r for r in new if r.run_id not in known]
    if not added and len(runs) <= limit:
        return history
    runs.extend(added)
    runs.sort(key=lambda r: r.when)
    return pack(runs[-limit:] if limit > 0 else [])


def _appended(history: bytes, new: list[PastRun], limit: int) -> bytes | None:
    """The common case without decoding the history (the ledger does this on the event loop, for
    every flow whose runs completed: a full history of 50 took 0.7 ms to decode, sort and pack,
    so 100 such flows between two yields stalled the loop for 70 ms): runs with UUIDs, none of
    them in the history, none older than its newest, appended, and the oldest records cut off by
    their offsets. None when that is not the case (with_runs then decodes, sorts and packs)."""
    if not new or not 0 < len(new) <= limit:
        return None
    offsets = _offsets(history)
    newest = _one(history, offsets[-1]).when if offsets else None
    added = sorted(new, key=lambda r: r.when)
    if newest is not None and added[0].when < newest:
        return None
    packed = [pack_one(r) for r in added]
    for p in packed:
        raw = p[1:17]  # the run ID's UUID bytes, after the form byte; zeros: not a UUID
        if raw == bytes(16) or history.find(raw) >= 0:
            return None  # maybe already kept (or found by chance in other bytes): decode to be sure
    excess = len(offsets) + len(added) - limit
    cut = 0 if excess <= 0 else offsets[excess] if excess < len(offsets) else len(history)
    return history[cut:] + b"".join(packed)


def exported(history: bytes) -> tuple[list[str], bytes]:
    """The history as another process can read it: the status names its records' indices point
    into (this process's table, which grows as Adobe names new statuses), and the bytes."""
    used = [history[i + _STATUS_AT[history[i]]] for i in _offsets(history)]
    return _STATUSES[: max(used, default=-1) + 1], history


def imported(names: list[str], data: bytes) -> bytes:
    """A history written by `exported` in some process, its status indices made this process's.
    ValueError when the bytes are not such a history (a damaged file)."""
    try:
        out, i = bytearray(data), 0
        while i < len(data):
            form = _FORMS[data[i]]
            n_odd, n_text = form.unpack_from(data, i)[-2:]
            at = i + _STATUS_AT[data[i]]
            out[at] = _status_index(str(names[data[at]]))
            i += form.size + n_odd + n_text
        if i != len(data):
            raise ValueError("the last run is cut short")
    except (IndexError, struct.error) as e:
        raise ValueError(f"not a packed run history ({type(e).__name__})") from None
    return bytes(out)
