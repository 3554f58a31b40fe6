"""The journal: Adobe I/O Events' pull API, read from the position the state file saved.

`GET <journal_url>?since=<position>&limit=N` with the IMS token, `x-api-key` and `x-ims-org-id`:
- 200: `events[]` (each an opaque `position` and the `event`), `_page.last`; read on at once;
- 204: the end of the journal for now; the next read waits `retry-after` (bounded). Its `Link`
  header (`rel="next"`) names the end's position: a first read (`latest=true`) starts there;
- 410: the position is older than the journal keeps (7 days): reset to the oldest position still
  kept (a read without `since`), say so, count it in aep_events_journal_resets_total{reason=
  "expired"}, and have the next sweep reconcile the gap (`on_reset`);
- anything else: retried with a growing pause, the position kept.

Without a saved position the first read asks for `latest=true` (Adobe's "jump to the end of the
journal"), then goes on from the position its `Link` names: runs announced before the exporter
started belong to the baseline polling makes, and 7 days of them would only be ignored.
Each page's events are applied and the position advanced in one synchronous step, so the state
file (saved between polls) always holds a position and the ledger it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from exporter.adobe.ims import TokenError
from exporter.events.envelope import Announcement, announcement
from exporter.events.intake import Intake
from exporter.events.metrics import RESET_EXPIRED

log = logging.getLogger(__name__)

# (source, announcements, then): applies them, and calls `then` in the same synchronous step.
Apply = Callable[[str, list[Announcement], Callable[[], None]], Awaitable[object]]

SOURCE = "journal"
LIMIT = 100  # events a read asks for
DEFAULT_WAIT = 10.0  # seconds after a 204 without retry-after
MAX_WAIT = 300.0
MAX_PAGE_BYTES = 32 * 1024 * 1024


class JournalReader:
    def __init__(
        self,
        url: str,
        intake: Intake,
        apply: Apply,
        session: aiohttp.ClientSession,
        token: Callable[[], Awaitable[str]],
        headers: Callable[[], dict[str, str]],
        on_reset: Callable[[], None],
        position: str | None = None,
        timeout: float = 30.0,
        invalidate: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.intake = intake
        self.apply = apply
        self.session = session
        self.token = token
        self.headers = headers
        self.on_reset = on_reset
        self.position = position
        self.timeout = timeout
        self.invalidate = invalidate
        self._failures = 0
        self._oldest = False  # after a 410: read from the oldest position kept

    def query(self) -> dict[str, str]:
        q = {"limit": str(LIMIT)}
        if self.position is not None:
            q["since"] = self.position
        elif not self._oldest:
            q["latest"] = "true"
        return q

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set; a failure is logged and retried, never raised."""
        while not stop.is_set():
            try:
                wait = await self.read_once()
            except Exception:  # a bug here must not end the events: log it and carry on
                log.exception("journal read failed unexpectedly")
                wait = self._backoff()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                except asyncio.TimeoutError:
                    pass

    async def read_once(self) -> float:
        """One read; returns the seconds to wait before the next."""
        try:
            token = await self.token()
        except TokenError as e:
            log.warning("journal: no token (%s)", e)
            return self._backoff()
        headers = {**self.headers(), "Authorization": f"Bearer {token}"}
        try:
            async with self.session.get(
                self.url, params=self.query(), headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                following = self._next_position(resp)
                if resp.status == 200:
                    entries = await self._page(await resp.content.read(MAX_PAGE_BYTES), following)
                    return 0.0 if entries else DEFAULT_WAIT
                if resp.status == 204:
                    if self.position is None and following is not None:
                        self.position, self._oldest = following, False  # the end of the journal (latest=true)
                    self._ok()
                    return _retry_after(resp.headers.get("retry-after"))
                if resp.status == 410:
                    self._reset()
                    return 0.0
                if resp.status == 401 and self.invalidate is not None:
                    self.invalidate(token)
                log.warning("journal answered %d; reading again later", resp.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            log.warning("journal read failed (%s); reading again later", type(e).__name__)
        return self._backoff()

    def _next_position(self, resp: aiohttp.ClientResponse) -> str | None:
        """The `since` of the `Link: <…>; rel="next"` header, if it stays on the journal's host
        (a 204 to `latest=true` has no event, only this: where the journal's end is)."""
        link = resp.links.get("next")
        href = link.get("url") if link is not None else None
        if href is None:
            return None
        target = URL(self.url).join(URL(str(href)))
        if (target.scheme, target.host, target.port) != (URL(self.url).scheme, URL(self.url).host, URL(self.url).port):
            return None
        return target.query.get("since") or None

    async def _page(self, body: bytes, following: str | None = None) -> int:
        """Apply a page; returns how many entries it had (0: wait before reading again)."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        entries = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            log.warning("journal answered 200 without an events list; reading again later")
            self.intake.reject(SOURCE)
            return 0
        good = [e for e in entries if isinstance(e, dict) and isinstance(e.get("position"), str)]
        if len(good) < len(entries):
            self.intake.reject(SOURCE, len(entries) - len(good))
        last = _page_last(doc) or (good[-1]["position"] if good else None) or following
        await self.apply(SOURCE, [announcement(e.get("event")) for e in good], lambda: self._advance(last))
        self._ok()
        return len(entries)

    def _advance(self, last: str | None) -> None:
        if last is not None:
            self.position, self._oldest = last, False

    def _ok(self) -> None:
        self._failures = 0
        self.intake.alive(SOURCE)

    def _reset(self) -> None:
        log.warning(
            "the journal no longer holds position %s (older than its retention): reading from the oldest "
            "event it keeps; the next polling sweep reconciles the gap",
            self.position,
        )
        self.intake.metrics.resets.labels(RESET_EXPIRED).inc()
        self.intake.on_change()
        self.position, self._oldest = None, True
        self.on_reset()

    def _backoff(self) -> float:
        self._failures += 1
        return min(MAX_WAIT / 5, 2.0 ** min(self._failures, 6))


def _page_last(doc: dict[str, Any]) -> str | None:
    page = doc.get("_page")
    last = page.get("last") if isinstance(page, dict) else None
    return last if isinstance(last, str) and last else None


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_WAIT
    except ValueError:
        seconds = DEFAULT_WAIT
    return min(MAX_WAIT, max(1.0, seconds))
