"""The byte format of a flow's run history (history.py): each completed run one record, records
back to back, oldest first.

As slotted objects with their floats and ints a run would take some 350 bytes; packed here about
57: the run ID that is a UUID as its 16 bytes, the creation time in ms and the start and end as
32-bit offsets from it, record counts as 32-bit integers, the status as an index into a small
table, error codes and truncated messages only for runs that had errors. A run whose numbers do
not fit takes the wide form, 77 bytes. The status table grows in each process as Adobe names
statuses beyond the documented ones, so the state file carries the names beside the bytes
(`exported`, `imported`).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.adobe.runfacts import COMPLETED_STATUSES, UNKNOWN_STATUS

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


def pack(runs: Iterable[PastRun]) -> bytes:
    return b"".join(pack_one(r) for r in runs)


def uuid_of(record: bytes) -> bytes | None:
    """A packed record's run ID as UUID bytes (after the form byte), None if it is not a UUID."""
    raw = record[1:17]
    return None if raw == bytes(16) else raw


def offsets(packed: bytes) -> list[int]:
    """Where each packed run starts (read from the fixed-width heads alone)."""
    found, i = [], 0
    while i < len(packed):
        found.append(i)
        form = _FORMS[packed[i]]
        n_odd, n_text = form.unpack_from(packed, i)[-2:]
        i += form.size + n_odd + n_text
    return found


def read_one(packed: bytes, i: int) -> PastRun:
    form = _FORMS[packed[i]]
    wide, raw, c, s, e, rin, rout, rfail, bts, st, n_odd, n_text = form.unpack_from(packed, i)
    i += form.size
    run_id = packed[i : i + n_odd].decode(errors="replace") if n_odd else str(uuid.UUID(bytes=raw))
    text = packed[i + n_odd : i + n_odd + n_text].decode(errors="replace")
    errors = tuple((code, msg) for code, _, msg in (x.partition(_SEP) for x in text.split(_END) if x))
    if wide:
        t = [None if v == _NONE else v / 1000 for v in (c, s, e)]
        n = [None if v == _NONE else v for v in (rin, rout, rfail)]
    else:
        t = [c / 1000, *(None if v == _NONE32 else (c + v) / 1000 for v in (s, e))]
        n = [None if v == _NONE_U32 else v for v in (rin, rout, rfail)]
    n.append(None if bts == _NONE else bts)
    return PastRun(run_id, t[0], t[1], t[2], _STATUSES[st], n[0], n[1], n[2], n[3], errors)


def exported(packed: bytes) -> tuple[list[str], bytes]:
    """Packed runs as another process can read them: the status names their records' indices
    point into (this process's table), and the bytes."""
    used = [packed[i + _STATUS_AT[packed[i]]] for i in offsets(packed)]
    return _STATUSES[: max(used, default=-1) + 1], packed


def imported(names: list[str], data: bytes) -> bytes:
    """Runs packed by `exported` in some process, their status indices made this process's.
    ValueError when the bytes are not packed runs (a damaged file)."""
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
