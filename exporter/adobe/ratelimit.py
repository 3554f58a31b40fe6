"""Client-side rate limit: a token bucket shared by every request to the Flow Service, so a
large config stays under Adobe's quota in the first place instead of learning it from 429s."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Hold:
    """After Adobe throttles (429), every request of the client waits, not only the one that
    got it. `waited` grows by the time added to the hold, once, however many requests sit behind it."""

    def __init__(self, waited: _Counter) -> None:
        self._until = 0.0  # monotonic time before which no request is sent
        self._waited = waited

    def extend(self, seconds: float) -> None:
        now = time.monotonic()
        until = now + seconds
        if until > self._until:
            self._waited.inc(until - max(now, self._until))
            self._until = until

    async def wait(self) -> None:
        while (pause := self._until - time.monotonic()) > 0:
            await asyncio.sleep(pause)


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for one token. Waiters are served in arrival order (the lock is FIFO)."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
