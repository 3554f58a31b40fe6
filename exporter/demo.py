"""`--demo`: the exporter against the in-package simulator (no credentials, no network), with
Adobe I/O Events on: the simulator announces each finished run in its journal and pushes it,
signed, to the exporter's webhook, with duplicates, shuffling, lost announcements and both
envelopes, so /metrics shows runs arriving in seconds while polling sweeps once a minute."""

from __future__ import annotations

import argparse
import random

from exporter.config import AdobeConfig, Config, EventsConfig, SandboxConfig, WebhookConfig
from exporter.simulator import (
    BASE_PATH,
    JOURNAL_PATH,
    KEYS_PATH,
    TOKEN_PATH,
    EventsChaos,
    EventsHub,
    Simulator,
    demo_world,
    start_simulator,
)
from exporter.support.secrets import Secret


async def demo(args: argparse.Namespace, listen: tuple[str | None, int]) -> int:
    from exporter.cli.main import _dispatch

    world = demo_world()
    hub = EventsHub(world)
    hub.chaos = EventsChaos(lose=0.05, duplicate=0.2, shuffle=3.0, envelope="mixed", rng=random.Random(18))
    runner, origin = await start_simulator(Simulator(world, autopilot=True, events=hub))
    try:
        sandboxes: dict[str, list[str]] = {}
        for flow in world.flows.values():
            sandboxes.setdefault(flow.sandbox, []).append(flow.id)
        webhook = WebhookConfig(public_key_base_url=origin + KEYS_PATH)
        host, port = listen
        if port:  # the simulator pushes to the exporter's own listener
            scheme = "https" if args.web_config.ssl_context else "http"
            target = "127.0.0.1" if host in (None, "0.0.0.0", "::") else host
            hub.webhook_url = f"{scheme}://{target}:{port}{webhook.path}"
        config = Config(
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
                webhook=webhook if hub.webhook_url else None,
                sweep_interval=60.0,
                quiet_after=30.0,
                announce_grace=20.0,
            ),
            source="<demo>",
        )
        note = f"demo mode: simulated Flow Service at {origin}{BASE_PATH}, Adobe I/O Events on"
        return await _dispatch(args, config, listen, demo_note=note)
    finally:
        await runner.cleanup()
