"""Exemplars in the OpenMetrics exposition: a flow's run and failed-record counters name the latest
counted run.

Grafana's exemplar view then leads from a spike of `aep_flow_runs_total` to the run (and, with a
data link, to its page in Adobe). Both formats share every family's sample lines (render.py); the
text format has no exemplars, so for these two families the OpenMetrics body is the shared one
with an exemplar appended to the lines it belongs to: `aep_flow_runs_total`'s line of the run's
status (value 1: one run) and `aep_flow_failed_records_total` (the run's failed records), with the
run's end as the exemplar's timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from exporter.ledger.history import LastCounted
    from exporter.ledger.ledger import Ledger

FAMILIES = frozenset({"aep_flow_runs", "aep_flow_failed_records"})
_LINE = re.compile(rb"^(aep_flow_(runs|failed_records)_total\{([^\n]*)\} [^ \n]+)$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Latest = Mapping[tuple[str, str], "LastCounted"]


def latest(ledger: Ledger) -> dict[tuple[str, str], LastCounted]:
    """Each visible flow's latest counted run (read in the render step, while the ledger holds still)."""
    return {f.key: f.last_counted for f in list(ledger.flows.values()) if f.last_counted is not None and f.visible}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def with_exemplars(body: bytes | bytearray, runs: Latest) -> bytes | bytearray:
    """The family's OpenMetrics body: its lines with the exemplars that belong to them."""
    if not runs:
        return body

    def add(m: re.Match[bytes]) -> bytes:
        labels = dict(_LABEL.findall(m.group(3).decode()))
        run = runs.get((labels.get("sandbox", ""), labels.get("flow_id", "")))
        if run is None:
            return m.group(0)
        if m.group(2) == b"runs":
            if labels.get("status") != run.status:
                return m.group(0)
            value = 1.0
        elif run.failed_records is None:
            return m.group(0)
        else:
            value = float(run.failed_records)
        stamp = "" if run.ended is None else f" {run.ended:.3f}"
        exemplar = f' # {{run_id="{_escape(run.run_id)}"}} {floatToGoString(value)}{stamp}'
        return m.group(0) + exemplar.encode()

    return _LINE.sub(add, body)
