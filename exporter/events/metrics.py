"""The events' own metrics (docs/metrics.md, "Adobe I/O Events"). They exist only when `events:`
is configured; with polling alone there is no series of theirs at all."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

OUTCOMES = ("counted", "duplicate", "ignored", "rejected")
RESET_EXPIRED = "expired"  # the journal answered 410: our position is past its retention
RESET_URL_CHANGED = "url_changed"  # the saved position belongs to another journal URL


class EventMetrics:
    def __init__(self, registry: CollectorRegistry, sources: Iterable[str], sandboxes: Iterable[str]) -> None:
        self.received = Counter(
            "aep_events_received",
            "Events received from Adobe I/O Events, by source (journal, webhook) and outcome: counted (a "
            "run counted now), duplicate (a run already counted), ignored (not a finished run of a watched, "
            "baselined flow within lookback), rejected (a push that failed its checks, an unreadable entry).",
            ["source", "outcome"],
            registry=registry,
        )
        self.missed = Counter(
            "aep_events_missed_runs",
            "Runs a polling sweep counted that no event announced within events.announce_grace.",
            ["sandbox"],
            registry=registry,
        )
        self.resets = Counter(
            "aep_events_journal_resets",
            "Times the journal position was given up, by reason (expired: a 410, the position was older "
            "than the journal's retention; url_changed: the saved position was another journal's). The "
            "next sweep reconciles the gap.",
            ["reason"],
            registry=registry,
        )
        self.last_received = Gauge(
            "aep_events_last_received_timestamp_seconds",
            "When the last event was received from this source (Unix time); no series before the first.",
            ["source"],
            registry=registry,
        )
        self.sources = tuple(sources)
        for source in self.sources:  # present from the start, so increase() sees the first event
            for outcome in OUTCOMES:
                self.received.labels(source, outcome)
        for sandbox in sandboxes:
            self.missed.labels(sandbox)
        if "journal" in self.sources:
            for reason in (RESET_EXPIRED, RESET_URL_CHANGED):
                self.resets.labels(reason)
