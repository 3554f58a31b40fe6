"""A simulated Adobe I/O Events for the runs of a `World`: a journal to pull, a signed webhook
sender, and the key host that serves the signatures' public keys (real RSA keys, made at start).

Each run the world completes is announced once in its envelope (legacy or CloudEvents, see
exporter/events/envelope.py) unless `chaos` says otherwise: `lose` (never announced), `duplicate`
(announced twice), `shuffle` (each announcement held back up to that many seconds, so later runs
overtake earlier ones), `envelope` (legacy, cloudevents, or mixed). The journal keeps announcements
for `retention` seconds; a position older than that answers 410, as Adobe's does after 7 days.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import random
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from exporter.simulator.world import SimRun, World

JOURNAL_PATH = "/events/organizations/sim/integrations/sim/journal"
KEYS_PATH = "/adobeio-static"  # the key host's base: events.webhook.public_key_base_url = origin + this
SUCCESS, FAILURE = "sources_flow_run_success", "sources_flow_run_failure"


@dataclass
class EventsChaos:
    lose: float = 0.0
    duplicate: float = 0.0
    shuffle: float = 0.0
    envelope: str = "mixed"  # legacy | cloudevents | mixed
    rng: random.Random = field(default_factory=lambda: random.Random(18))


class EventsHub:
    def __init__(self, world: World, retention: float = 7 * 86400.0, retry_after: int = 1) -> None:
        self.world = world
        self.retention = retention
        self.retry_after = retry_after
        self.chaos = EventsChaos()
        self.keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
        self.key_paths = [f"/prod/keys/pub-key-{secrets.token_hex(5)}.pem" for _ in self.keys]
        self.journal: list[tuple[int, float, dict[str, Any]]] = []  # (sequence, time, event)
        self._seq = 0
        self._oldest = 1  # the oldest sequence number still kept
        self._queue: list[tuple[float, dict[str, Any]]] = []  # (due, event) not yet announced
        self.webhook_url: str | None = None
        self.pushes: list[tuple[int, str]] = []  # (status, event id) of each webhook delivery
        self.lost: list[str] = []  # runs never announced
        self._sender: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        world.on_finish.append(self.announce)

    # --- announcing --------------------------------------------------------------------------------

    def announce(self, run: SimRun) -> None:
        c = self.chaos
        if c.rng.random() < c.lose:
            self.lost.append(run.id)
            return
        event = self.envelope(run)
        now = self.world.clock()
        for _ in range(2 if c.rng.random() < c.duplicate else 1):
            self._queue.append((now + c.rng.uniform(0, c.shuffle), event))
        self.flush()

    def envelope(self, run: SimRun) -> dict[str, Any]:
        code = SUCCESS if run.status == "success" else FAILURE
        body = self.world.run_json(run)
        kind = self.chaos.envelope
        if kind == "mixed":
            kind = self.chaos.rng.choice(["legacy", "cloudevents"])
        if kind == "legacy":
            return {
                "event_id": str(uuid.uuid4()),
                "event": body,
                "recipient_client_id": self.world.client_id,
                "event_code": code,
            }
        return {
            "specversion": "1.0",
            "type": f"com.adobe.platform.{code}",
            "source": "urn:uuid:platform-notifications",
            "id": str(uuid.uuid4()),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "datacontenttype": "application/json",
            "data": body,
            "recipientclientid": self.world.client_id,
        }

    def flush(self) -> None:
        """Announcements that are due enter the journal and the webhook's queue; expired ones leave."""
        now = self.world.clock()
        due = sorted((t, e) for t, e in self._queue if t <= now) if self._queue else []
        self._queue = [(t, e) for t, e in self._queue if t > now]
        for _, event in due:
            self._seq += 1
            self.journal.append((self._seq, now, event))
        while self.journal and self.journal[0][1] < now - self.retention:
            self._oldest = self.journal.pop(0)[0] + 1
        if due:
            self._wakeup.set()

    def expire_all(self) -> None:
        """Every announcement so far is past retention (what 7 days do to a stopped exporter)."""
        if self.journal:
            self._oldest = self.journal[-1][0] + 1
            self.journal.clear()

    # --- the journal -------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get(JOURNAL_PATH, self.read_journal)
        app.router.add_get(KEYS_PATH + "/{path:.*}", self.public_key)

    async def read_journal(self, request: web.Request) -> web.Response:
        self.flush()
        w = self.world
        auth = request.headers.get("Authorization", "")
        if w.tokens.get(auth[7:] if auth.startswith("Bearer ") else "", 0) <= w.clock():
            return web.json_response({"error_code": "401013", "message": "Oauth token is not valid"}, status=401)
        if request.headers.get("x-api-key") != w.client_id or request.headers.get("x-ims-org-id") != w.org_id:
            return web.json_response({"error_code": "403000", "message": "Api Key is invalid"}, status=403)
        limit = max(1, min(int(request.query.get("limit", "100") or 100), 1000))
        since = request.query.get("since")
        if since is not None:
            seq = _seq_of(since)
            if seq is None or seq < self._oldest - 1:
                return web.json_response({"message": "position expired"}, status=410)
            entries = [e for e in self.journal if e[0] > seq][:limit]
        elif request.query.get("latest") == "true":
            entries = []  # the end of the journal: nothing yet, and the position to go on from
        else:
            entries = self.journal[:limit]
        if not entries:
            end = _position(max(self._seq, seq) if since is not None and seq is not None else self._seq)
            link = f'<{request.url.with_query({"since": end, "limit": str(limit)})}>; rel="next"'
            return web.Response(status=204, headers={"retry-after": str(self.retry_after), "Link": link})
        last = _position(entries[-1][0])
        return web.json_response(
            {
                "events": [{"position": _position(seq), "event": event} for seq, _, event in entries],
                "_page": {"last": last, "count": len(entries)},
            },
            headers={"Link": f'<{request.url.with_query({"since": last, "limit": str(limit)})}>; rel="next"'},
        )

    async def public_key(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        if path not in self.key_paths:
            return web.Response(status=404)
        pem = (
            self.keys[self.key_paths.index(path)]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return web.Response(body=pem, content_type="application/x-pem-file")

    # --- the webhook -------------------------------------------------------------------------------

    def signed_headers(self, body: bytes, keys: tuple[int, int] = (0, 1)) -> dict[str, str]:
        """What Adobe sends with a push: two signatures of the body and the paths of their keys."""
        headers = {"Content-Type": "application/json"}
        for n, i in enumerate(keys, start=1):
            sig = self.keys[i].sign(body, padding.PKCS1v15(), hashes.SHA256())
            headers[f"x-adobe-digital-signature-{n}"] = base64.b64encode(sig).decode()
            headers[f"x-adobe-public-key{n}-path"] = self.key_paths[i]
        return headers

    async def start(self) -> None:
        self._sender = asyncio.create_task(self._send_forever())

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send_forever(self) -> None:
        sent = self._seq  # what was announced before the sender started is not pushed
        async with aiohttp.ClientSession() as session:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if self.webhook_url is None:
                    sent = self._seq
                    continue
                for seq, _, event in [e for e in self.journal if e[0] > sent]:
                    sent = seq
                    await self._push(session, event)

    async def _push(self, session: aiohttp.ClientSession, event: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        body = json.dumps(event).encode()
        event_id = str(event.get("event_id") or event.get("id"))
        try:
            async with session.post(self.webhook_url, data=body, headers=self.signed_headers(body), ssl=False) as r:
                self.pushes.append((r.status, event_id))
        except aiohttp.ClientError:
            self.pushes.append((0, event_id))  # Adobe would retry; the sweep finds what is lost


def _position(seq: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{seq}".encode()).decode()


def _seq_of(position: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(position.encode()).decode()
        return int(text[4:]) if text.startswith("sim:") else None
    except (ValueError, UnicodeDecodeError):
        return None
