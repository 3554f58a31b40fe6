"""The webhook: Adobe I/O Events pushes announcements to `events.webhook.path` of the exporter's
own listener (under its TLS, outside its basic auth, which Adobe cannot send).

- `GET ?challenge=X` answers X (Adobe's check when the webhook is registered);
- `POST` is checked before anything is read from it: its size (413 past MAX_BODY), its signatures
  (401 without any, 403 for a forged one or a key path off the key host, 503 when the key host
  cannot be reached, so Adobe retries), then its shape (400 for a body that is not an event) and
  recipient (403 for an event addressed to another client id). A genuine push is answered 200,
  also when it repeats one already counted. No answer changes a run counter; none can stop the
  process; each is given at once (Adobe retries slow deliveries).
"""

from __future__ import annotations

import logging

from aiohttp import web

from exporter.events import keys
from exporter.events.envelope import NotAnEvent, announcement, parse_body
from exporter.events.intake import Intake
from exporter.events.journal import Apply

log = logging.getLogger(__name__)

SOURCE = "webhook"
MAX_BODY = 1024 * 1024  # bytes of one push (a batch of events) at most
MAX_CHALLENGE = 1024
SIGNATURE_HEADERS = (
    ("x-adobe-digital-signature-1", "x-adobe-public-key1-path"),
    ("x-adobe-digital-signature-2", "x-adobe-public-key2-path"),
)
_PLAIN = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}


class Webhook:
    def __init__(self, path: str, client_id: str, intake: Intake, keystore: keys.KeyStore, apply: Apply) -> None:
        self.path = path
        self.apply = apply
        self.client_id = client_id
        self.intake = intake
        self.keys = keystore
        self.max_body = MAX_BODY

    async def challenge(self, request: web.Request) -> web.Response:
        value = request.query.get("challenge")
        if not value or len(value) > MAX_CHALLENGE:
            return _answer(400, "expected ?challenge=")
        return web.Response(text=value, headers=_PLAIN)

    async def push(self, request: web.Request) -> web.Response:
        try:
            return await self._push(request)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, f"a push is {MAX_BODY} bytes at most")

    async def _push(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > self.max_body:
            return self._reject(413, f"a push is {MAX_BODY} bytes at most")
        pairs = [
            (request.headers[s], request.headers[p])
            for s, p in SIGNATURE_HEADERS
            if request.headers.get(s) and request.headers.get(p)
        ]
        if not pairs:
            return self._reject(401, "unsigned: expected x-adobe-digital-signature-1 and x-adobe-public-key1-path")
        body = await request.read()
        verdict = await self.keys.check(body, pairs)
        if verdict == keys.UNAVAILABLE:
            return self._reject(503, "cannot check the signature now; try again")
        if verdict != keys.GENUINE:
            return self._reject(403, "signature does not verify")
        try:
            events = parse_body(body)
        except NotAnEvent as e:
            return self._reject(400, str(e))
        found = [announcement(e) for e in events]
        if any(a.recipient != self.client_id for a in found):
            return self._reject(403, "not addressed to this client id")
        await self.apply(SOURCE, found, _nothing)
        return _answer(200, "ok")

    def _reject(self, status: int, why: str) -> web.Response:
        self.intake.reject(SOURCE)
        log.info("webhook push refused with %d: %s", status, why)
        return _answer(status, why)


def _nothing() -> None:
    pass


def _answer(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=_PLAIN)
