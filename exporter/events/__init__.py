"""Runs as Adobe announces them: Adobe I/O Events (journal and webhook) beside polling.

- envelope.py: event payloads (legacy and CloudEvents) → the runs they announce;
- intake.py: announced runs → the ledger, exactly once; missed runs; the poll interval;
- journal.py: Adobe's pull API (the I/O Events journal), from the saved position; webhook.py +
  keys.py: the signed pushes;
- metrics.py: aep_events_*; service.py: the wiring (exporter/runtime.py builds it).

See docs/events.md.
"""
