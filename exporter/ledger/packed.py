"""The byte format of a flow's run history (history.py): each completed run one record, records
back to back, oldest first.

As slotted objects with their floats and ints a run would take some 350 bytes; packed here 51:
the run ID that is a UUID as its 16 bytes, the creation time in 48 bits of ms and the start and
end as 32-bit offsets from it, record counts and input bytes as 32-bit integers, the status as an
index into a small table, and the errors' codes and truncated messages as an index into a table
of texts (a failing flow fails alike run after run), inline once that table is full. A run whose
numbers do not fit takes the wide form, 77 bytes. Both tables grow in each process as runs come,
so the state file carries the names and texts beside the bytes (`exported`, `imported`).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.adobe.runfacts import COMPLETED_STATUSES, UNKNOWN_STATUS

# The wide form: run ID (UUID bytes), created/started/ended (ms), records in/out/failed, input
# bytes, status index, length of a run ID that is not a UUID (0: it is), the errors' text: its
# length or (forms 2 and 3, with _SHARED set) its index in the table of texts (_TEXTS). The
# narrow form: created as 48 bits of ms, started/ended as ms after it, records and input bytes
# as 32 bits. Each record opens with a byte saying its form; forms 0 and 1 (the narrow one with
# 64-bit created and input bytes, and the wide one with the text always inline) are what the
# version before wrote: still read from state files, no longer written.
_WIDE = struct.Struct("<B16s3q4qBBH")
_NARROW = struct.Struct("<B16sIHiiIIIIBBH")
_FORMS = (struct.Struct("<B16sqiiIIIqBBH"), _WIDE, _NARROW, _WIDE)
# where each form's status byte is
_STATUS_AT = tuple(f.size - 4 for f in _FORMS)
_TAIL = struct.Struct("<BBH")  # each form's head ends with the status, the odd ID's length, the text's field
_NONE = -(2**63)  # a value Adobe did not report (wide form)
_NONE32, _NONE_U32 = -(2**31), 2**32 - 1  # the same in the narrow form's offsets and counts
_SHARED = 0x8000  # the text's field holds an index in _TEXTS, not a length
_SEP, _END = "\x1f", "\x1e"  # between code and message, after each error (stripped from both)
_STATUSES: list[str] = [*COMPLETED_STATUSES, UNKNOWN_STATUS]
_INDEX: dict[str, int] = {s: i for i, s in enumerate(_STATUSES)}
STATUSES_MAX = 250  # statuses Adobe may invent beyond these share "unknown"
# The errors' texts, each kept once: a flow that fails fails alike run after run (the same code
# and message), so 50 runs carried the same 60-300 bytes 50 times. A text enters the table the
# second time it is met: Adobe's messages may name the run's own numbers ("Encountered 17 errors
# in the data"), and texts met once would fill the table for nothing. Bounded in entries and
# bytes; a text not in it is kept inline in its record.
_TEXTS: list[bytes] = []
_TEXT_INDEX: dict[bytes, int] = {}
TEXTS_MAX, TEXT_BYTES_MAX = 8192, 1 << 20
_text_bytes = 0
_MET_ONCE: set[int] = set()  # hashes of texts met once
MET_ONCE_MAX = 4096


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


def _text_index(text: bytes, seen: bool = False) -> int | None:
    """The text's index in _TEXTS, added if it was met before (or `seen`: shared in a state
    file) and there is room; None for a text met the first time, or when the table is full."""
    global _text_bytes
    i = _TEXT_INDEX.get(text)
    if i is None:
        if not seen and not _met_before(text):
            return None
        if len(_TEXTS) >= TEXTS_MAX or _text_bytes + len(text) > TEXT_BYTES_MAX:
            return None
        i = _TEXT_INDEX[text] = len(_TEXTS)
        _TEXTS.append(text)
        _text_bytes += len(text)
    return i


def _met_before(text: bytes) -> bool:
    """Whether the text was met since the set of texts met once last filled (and started over)."""
    h = hash(text)
    if h in _MET_ONCE:
        return True
    if len(_MET_ONCE) >= MET_ONCE_MAX:
        _MET_ONCE.clear()
    _MET_ONCE.add(h)
    return False


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
    text = "".join(f"{_clean(c)}{_SEP}{_clean(m)}{_END}" for c, m in r.errors).encode()[: _SHARED - 1]
    shared = _text_index(text) if text else None
    if shared is not None:
        text, field = b"", _SHARED | shared
    else:
        field = len(text)
    tail = (_status_index(r.status), len(odd), field)
    narrow = _narrow(r)
    if narrow is not None:
        return _NARROW.pack(2, raw, *narrow, *tail) + odd + text
    times = (_ms(r.created), _ms(r.started), _ms(r.ended))
    counts = (_num(r.input_records), _num(r.output_records), _num(r.failed_records), _num(r.input_bytes))
    return _WIDE.pack(3, raw, *times, *counts, *tail) + odd + text


def _narrow(r: PastRun) -> tuple[int, ...] | None:
    """created (ms, low 32 and high 16 bits), start and end as ms after it, record counts and
    input bytes: None if one does not fit."""
    if r.created is None:
        return None
    base = _ms(r.created)
    offsets = [_NONE32 if t is None else _ms(t) - base for t in (r.started, r.ended)]
    counts = [
        _NONE_U32 if n is None else n for n in (r.input_records, r.output_records, r.failed_records, r.input_bytes)
    ]
    if (
        not 0 <= base < 2**48
        or not all(_NONE32 < o < 2**31 for o in offsets if o != _NONE32)
        or not all(0 <= n <= _NONE_U32 for n in counts)
    ):
        return None
    return (base & 0xFFFFFFFF, base >> 32, *offsets, *counts)


def pack(runs: Iterable[PastRun]) -> bytes:
    return b"".join(pack_one(r) for r in runs)


def uuid_of(record: bytes) -> bytes | None:
    """A packed record's run ID as UUID bytes (after the form byte), None if it is not a UUID."""
    raw = record[1:17]
    return None if raw == bytes(16) else raw


def _tail(packed: bytes, i: int) -> tuple[int, int, int, int]:
    """The record at i, from the last bytes of its head (status, length of an odd run ID, text
    field): where its status byte is, the status, the record's length, its text's index in the
    table (-1: inline or none)."""
    form = packed[i]
    at = i + _STATUS_AT[form]
    status, n_odd, field = _TAIL.unpack_from(packed, at)
    shared = form >= 2 and field & _SHARED
    return at, status, _FORMS[form].size + n_odd + (0 if shared else field), field & ~_SHARED if shared else -1


def offsets(packed: bytes) -> list[int]:
    """Where each packed run starts (read from the fixed-width heads alone)."""
    found, i = [], 0
    while i < len(packed):
        found.append(i)
        i += _tail(packed, i)[2]
    return found


def read_one(packed: bytes, i: int, statuses: list[str] = _STATUSES, texts: list[bytes] = _TEXTS) -> PastRun:
    """The run at i (its status and text indices point into this process's tables, or those given)."""
    form = _FORMS[packed[i]]
    values = form.unpack_from(packed, i)
    kind, raw = values[0], values[1]
    if kind == 2:  # created in two parts
        values = (kind, raw, values[2] | values[3] << 32, *values[4:])
    _, _, c, s, e, rin, rout, rfail, bts, st, n_odd, field = values
    i += form.size
    run_id = packed[i : i + n_odd].decode(errors="replace") if n_odd else str(uuid.UUID(bytes=raw))
    shared = kind >= 2 and field & _SHARED
    text = (texts[field & ~_SHARED] if shared else packed[i + n_odd : i + n_odd + field]).decode(errors="replace")
    errors = tuple((code, msg) for code, _, msg in (x.partition(_SEP) for x in text.split(_END) if x))
    if kind % 2:  # wide
        t = [None if v == _NONE else v / 1000 for v in (c, s, e)]
        n = [None if v == _NONE else v for v in (rin, rout, rfail, bts)]
    else:
        t = [c / 1000, *(None if v == _NONE32 else (c + v) / 1000 for v in (s, e))]
        n = [None if v == _NONE_U32 else v for v in (rin, rout, rfail)]
        n.append(None if bts == (_NONE_U32 if kind == 2 else _NONE) else bts)
    return PastRun(run_id, t[0], t[1], t[2], statuses[st], n[0], n[1], n[2], n[3], errors)


def exported(packed: bytes) -> tuple[list[str], list[str], bytes]:
    """Packed runs as another process can read them: the status names their records' indices
    point into (this process's table, up to the last one used), the errors' texts they use (only
    those: the table holds a thousand flows' texts), and the bytes, their text indices made
    positions in that list."""
    statuses, used, out, i = -1, dict[int, int](), bytearray(), 0
    while i < len(packed):
        at, status, size, text = _tail(packed, i)
        statuses = max(statuses, status)
        if text >= 0:
            out = out or bytearray(packed)
            struct.pack_into("<H", out, at + 2, _SHARED | used.setdefault(text, len(used)))
        i += size
    return _STATUSES[: statuses + 1], [_TEXTS[k].decode(errors="replace") for k in used], bytes(out) if used else packed


def imported(statuses: list[str], texts: list[str], data: bytes) -> bytes:
    """Runs packed by `exported` in some process, their status and text indices made this
    process's. ValueError when the bytes are not packed runs (a damaged file)."""
    try:
        out, i, full = bytearray(data), 0, False
        while i < len(data):
            at, status, size, text = _tail(data, i)
            out[at] = _status_index(str(statuses[status]))
            if text >= 0:
                shared = _text_index(str(texts[text]).encode(), seen=True)
                full = full or shared is None
                if shared is not None:
                    struct.pack_into("<H", out, at + 2, _SHARED | shared)
            i += size
        if i != len(data):
            raise ValueError("the last run is cut short")
        # This process's table is full: the runs are packed again, the texts it has no room for inline.
        return _reinlined(statuses, texts, data) if full else bytes(out)
    except (IndexError, struct.error) as e:
        raise ValueError(f"not a packed run history ({type(e).__name__})") from None


def _reinlined(statuses: list[str], texts: list[str], data: bytes) -> bytes:
    """The runs of `imported` read with the other process's tables and packed again (texts this
    process's table has no room for go inline)."""
    theirs = [str(t).encode() for t in texts]
    return pack(read_one(data, i, [str(s) for s in statuses], theirs) for i in offsets(data))
