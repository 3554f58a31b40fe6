"""Runs as Adobe announces them: Adobe I/O Events (journal and webhook) beside polling.

In: Adobe's announcements, read from the I/O Events journal or pushed to the webhook. Out: the
runs they announce, counted into the ledger through its methods (once, whoever sees a run first);
the poll interval handed to the poller (a slow sweep while events flow); aep_events_* metrics.

- envelope.py: event payloads (legacy and CloudEvents) → the runs they announce;
- intake.py: announced runs → the ledger, exactly once; missed runs; the poll interval;
- journal.py: Adobe's pull API (the I/O Events journal), from the saved position; webhook.py +
  keys.py: the signed pushes;
- metrics.py: aep_events_*; service.py: the wiring (exporter/runtime.py builds it).

See docs/events.md.
"""
