"""Adobe I/O Events beside polling: the intake, the journal reader, the webhook and the watchdog,
wired to the exporter (exporter/runtime.py builds one when `events:` is configured).

The service talks to the poller through its methods only: `set_interval` (the intake decides the
interval), `wake` (events stopped flowing) and `reconcile_now` (the journal lost track); the
intake hears of the runs polling counts through `Ledger.on_counted`.

- Renderings: /metrics serves what was rendered after the last poll cycle; announced runs would
  wait for the next sweep, so each batch of them is followed by a rendering of its own (debounced
  by RENDER_DELAY). It never overlaps a poll cycle (the poller's `cycle_lock`), and announcements
  are not applied while a rendering reads the ledger (`render_lock`).
- The watchdog counts missed runs and, when events stop flowing, wakes the poller, which then
  polls every `poll_interval` again.
- The journal position is one top-level key of the state file (`events`), saved with the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.events.envelope import Announcement
from exporter.events.intake import Intake
from exporter.events.journal import JournalReader
from exporter.events.keys import KeyStore
from exporter.events.metrics import RESET_URL_CHANGED, EventMetrics
from exporter.events.webhook import Webhook
from exporter.fetch.poller import Poller
from exporter.ledger.ledger import Ledger

log = logging.getLogger(__name__)

STATE_KEY = "events"
RENDER_DELAY = 0.05  # seconds: announcements arriving together share one rendering


class EventService:
    """The events' parts for one exporter, started and stopped with it."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        poller: Poller,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        auth: Callable[[], Any],
        render: Callable[[], Awaitable[object]],
        saved: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`auth`: the current TokenProvider (a reload may replace it); `render`: a rendering of
        /metrics; `saved`: what the state file held under STATE_KEY."""
        ev = config.events
        assert ev is not None
        sources = [name for name, on in (("journal", ev.journal_url), ("webhook", ev.webhook)) if on]
        self.metrics = EventMetrics(registry, sources, [s.name for s in config.sandboxes])
        self.intake = Intake(config, ledger, self.metrics, clock)
        self.intake.on_change = self.changed
        self.poller = poller
        self.render_lock = asyncio.Lock()
        self._render = render
        self._render_task: asyncio.Task[None] | None = None
        self._render_seconds = 0.0
        self._rendered_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        poller.set_interval(self.intake.poll_interval)
        self.journal: JournalReader | None = None
        if ev.journal_url:
            self.journal = JournalReader(
                ev.journal_url,
                self.intake,
                self.apply,
                session,
                token=lambda: auth().token(),
                headers=lambda: {"x-api-key": config.adobe.client_id, "x-ims-org-id": config.adobe.org_id},
                on_reset=self.reconcile,
                position=self._saved_position(ev.journal_url, saved),
                timeout=config.request_timeout,
                invalidate=lambda token: auth().invalidate(token),
            )
        self.webhook: Webhook | None = None
        if ev.webhook is not None:
            keys = KeyStore(ev.webhook.public_key_base_url, session, config.request_timeout)
            self.webhook = Webhook(ev.webhook.path, config.adobe.client_id, self.intake, keys, apply=self.apply)

    def _saved_position(self, url: str, saved: Any) -> str | None:
        journal = saved.get("journal") if isinstance(saved, dict) else None
        if not isinstance(journal, dict) or not isinstance(journal.get("position"), str):
            return None
        if journal.get("url") != url:
            log.warning("the saved journal position belongs to another journal URL: starting at its latest event")
            self.metrics.resets.labels(RESET_URL_CHANGED).inc()
            return None
        log.info("resuming the events journal from the saved position")
        return str(journal["position"])

    def state(self) -> dict[str, Any]:
        """What the state file keeps under STATE_KEY (taken with the ledger's snapshot)."""
        if self.journal is None:
            return {}
        return {"journal": {"url": self.journal.url, "position": self.journal.position}}

    async def apply(self, source: str, announcements: list[Announcement], then: Callable[[], None]) -> list[str]:
        """Apply announcements (and `then`, in the same step) when no rendering is reading the
        ledger, then render soon."""
        async with self.render_lock:
            outcomes = self.intake.take(source, announcements)
            then()
        return outcomes

    def changed(self) -> None:
        """An events metric changed: render /metrics soon (announcements arriving together, or a
        flood of refused pushes, share a rendering: RENDER_DELAY after the first, and four
        renderings' time after the last rendering at the soonest, so that renderings for events
        take a fifth of a core at most)."""
        if self._render_task is None or self._render_task.done():
            self._render_task = asyncio.create_task(self._render_soon())

    async def _render_soon(self) -> None:
        pause = self._rendered_at + 4 * self._render_seconds - time.monotonic()
        await asyncio.sleep(max(RENDER_DELAY, pause))
        async with self.poller.cycle_lock, self.render_lock:
            started = time.monotonic()
            await self._render()
            self._rendered_at = time.monotonic()
            self._render_seconds = self._rendered_at - started

    def reconcile(self) -> None:
        """The events lost track (a journal reset): a sweep of the whole lookback window, now."""
        self.poller.reconcile_now()

    def reconfigure(self, config: Config) -> None:
        """A reload: intervals and grace take effect; the journal URL and webhook path need a restart."""
        if config.events is not None:
            self.intake.config = config

    async def start(self) -> None:
        """Read the journal (if configured) and watch for missed runs, until stop()."""
        self._stop.clear()
        if self.journal is not None:
            self._tasks.append(asyncio.create_task(self.journal.run(self._stop)))
        self._tasks.append(asyncio.create_task(self._watch()))

    async def stop(self) -> None:
        self._stop.set()
        for task in [*self._tasks, self._render_task]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not None), return_exceptions=True)
        self._tasks.clear()

    async def _watch(self) -> None:
        """Count missed runs; when events stop flowing, have the poller speed up now."""
        flowing = self.intake.flowing()
        while not self._stop.is_set():
            step = min(5.0, self.intake.events.quiet_after / 4, self.intake.events.announce_grace / 4)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=step)
            except asyncio.TimeoutError:
                pass
            self.intake.count_missed()
            now = self.intake.flowing()
            if flowing and not now:
                log.warning(
                    "events stopped flowing (or missed runs): polling every %gs again", self.poller.config.poll_interval
                )
                self.poller.wake()
            elif now and not flowing:
                log.info("events flowing: polling slows to a sweep every %gs", self.intake.poll_interval())
            flowing = now
