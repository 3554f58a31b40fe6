"""The interface a fetch strategy implements (`Strategy`), and what it works with for one cycle
(`FetchContext`: the config, the client, the ledger and the sandbox's capabilities)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from exporter.adobe.client import FlowServiceClient
from exporter.config import Config
from exporter.fetch.capabilities import Capabilities
from exporter.ledger.ledger import Ledger


@dataclass
class FetchContext:
    """What a strategy works with during one cycle (a reload brings a new config and client)."""

    config: Config
    client: FlowServiceClient
    ledger: Ledger
    clock: Callable[[], float] = field(default=time.time)
    capabilities: dict[str, Capabilities] = field(default_factory=dict)  # by sandbox, kept across cycles

    def caps(self, sandbox: str) -> Capabilities:
        return self.capabilities.setdefault(sandbox, Capabilities())

    def window_start(self, now: float) -> float:
        """Runs created at or before this are outside lookback: never asked for, never counted."""
        return now - self.config.lookback


class Strategy(Protocol):
    name: str

    async def poll(self, ctx: FetchContext, sandbox: str, flow_ids: list[str]) -> list[bool]:
        """Poll these flows of the sandbox once; per flow, True if it was polled without error
        (a flow found gone counts as polled)."""
        ...


class BatchRefused(Exception):
    """Batched listings cannot be trusted in this sandbox (Adobe refused a list with a 400, or
    answered one as if it were a single ID): the sandbox goes per-flow, this cycle included."""

    def __init__(self, message: str, reason: str = "lists_refused") -> None:
        super().__init__(message)
        self.reason = reason
