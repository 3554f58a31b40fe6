"""`--demo`: a config for the exporter against the in-package simulator (no credentials, no
network), with Adobe I/O Events on: the simulator announces each finished run in its journal and
pushes it, signed, to the exporter's webhook, with duplicates, shuffling, lost announcements and
both envelopes, so /metrics shows runs arriving in seconds while polling sweeps once a minute.

demo() takes the address the exporter will listen on (for the pushes), starts the simulator and
yields the config that points at it with a note to show; the simulator stops when the block ends.
The CLI runs its usual modes with that config.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from exporter.config import AdobeConfig, Config, EventsConfig, SandboxConfig, WebhookConfig
from exporter.simulator import (
    BASE_PATH,
    JOURNAL_PATH,
    KEYS_PATH,
    TOKEN_PATH,
    EventsChaos,
    EventsHub,
    Simulator,
    World,
    demo_world,
    start_simulator,
)
from exporter.support.secrets import Secret


@asynccontextmanager
async def demo(listen: tuple[str | None, int], https: bool = False) -> AsyncIterator[tuple[Config, str]]:
    """The simulator running, and (config, note) for it. `listen`: the exporter's address, where
    the simulator pushes announcements (port 0: no pushes, the journal alone); `https`: whether
    the exporter serves over TLS."""
    world = demo_world()
    hub = EventsHub(world)
    hub.chaos = EventsChaos(lose=0.05, duplicate=0.2, shuffle=3.0, envelope="mixed", rng=random.Random(18))
    runner, origin = await start_simulator(Simulator(world, autopilot=True, events=hub))
    try:
        webhook = WebhookConfig(public_key_base_url=origin + KEYS_PATH)
        host, port = listen
        if port:  # the simulator pushes to the exporter's own listener
            target = "127.0.0.1" if host in (None, "0.0.0.0", "::") else host
            hub.webhook_url = f"{'https' if https else 'http'}://{target}:{port}{webhook.path}"
        config = _config(world, origin, webhook if hub.webhook_url else None)
        yield config, f"demo mode: simulated Flow Service at {origin}{BASE_PATH}, Adobe I/O Events on"
    finally:
        await runner.cleanup()


def _config(world: World, origin: str, webhook: WebhookConfig | None) -> Config:
    """Every flow of the world watched, polled every 10 s, with the simulator's events."""
    sandboxes: dict[str, list[str]] = {}
    for flow in world.flows.values():
        sandboxes.setdefault(flow.sandbox, []).append(flow.id)
    return Config(
        adobe=AdobeConfig(
            client_id=world.client_id,
            client_secret=Secret(world.client_secret),
            org_id=world.org_id,
            token_url=origin + TOKEN_PATH,
            base_url=origin + BASE_PATH,
        ),
        sandboxes=tuple(SandboxConfig(name, tuple(ids)) for name, ids in sandboxes.items()),
        poll_interval=10.0,
        state_file=None,  # the demo's world is new every start: nothing to continue
        events=EventsConfig(
            journal_url=origin + JOURNAL_PATH,
            webhook=webhook,
            sweep_interval=60.0,
            quiet_after=30.0,
            announce_grace=20.0,
        ),
        source="<demo>",
    )
