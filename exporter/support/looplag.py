"""How long the event loop was kept from running: the worst stall since the last reset.

A task asks to wake every `interval`; any lateness is time the loop spent on something else.
Exported as a self-metric per cycle, and read by the benchmark."""

from __future__ import annotations

import asyncio
import time


class LoopLagMonitor:
    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def take(self) -> float:
        """The worst stall since the previous take()."""
        worst, self.worst = self.worst, 0.0
        return worst

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            late = time.perf_counter() - before - self.interval
            if late > self.worst:
                self.worst = late
