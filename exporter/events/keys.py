"""Adobe I/O Events' signature keys: fetched from the configured key host only, cached.

Each push carries two RSA-SHA256 signatures of the raw body (`x-adobe-digital-signature-1/-2`) and
the paths of the two public keys (`x-adobe-public-key1-path/-2-path`) on Adobe's key host. The
header names a *path*, never a host: a value that would lead anywhere but the configured
`events.webhook.public_key_base_url` (an absolute URL, `//host/…`, `@host`, `..`) is refused before
any request is made, so a forger cannot have us fetch the key it signed with. A push is genuine
when either signature verifies (Adobe rotates keys one at a time); checking is `cryptography`'s.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from yarl import URL

log = logging.getLogger(__name__)

GENUINE = "genuine"
FORGED = "forged"  # no signature verifies with the key its header names
FOREIGN = "foreign"  # a key path that does not stay on the key host
UNAVAILABLE = "unavailable"  # the key host could not be asked: Adobe should retry later

_PATH_RE = re.compile(r"^/?[A-Za-z0-9._~/-]{1,256}$")
MAX_KEY_BYTES = 16 * 1024
CACHE_SIZE = 16
NEW_KEYS_PER_MINUTE = 10  # fetches of key paths not cached, at most: forgers cannot make us a proxy


class KeyStore:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout: float = 10.0) -> None:
        self.base = URL(base_url.rstrip("/"))
        self.session = session
        self.timeout = timeout
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        # Paths the key host has no key for (a forger's): kept apart, so they cannot evict Adobe's keys.
        self._missing: OrderedDict[str, None] = OrderedDict()
        self._lock = asyncio.Lock()
        self._fetches: list[float] = []

    def url_for(self, path: str) -> URL | None:
        """The key's URL on the key host, or None if `path` would lead elsewhere."""
        if not _PATH_RE.match(path) or ".." in path or "//" in path:
            return None
        url = URL(str(self.base) + "/" + path.lstrip("/"))
        if (url.scheme, url.host, url.port) != (self.base.scheme, self.base.host, self.base.port):
            return None
        if not url.path.startswith(self.base.path.rstrip("/") + "/"):
            return None
        return url

    async def check(self, body: bytes, pairs: Sequence[tuple[str, str]]) -> str:
        """GENUINE if a signature of `body` verifies with the key its path names."""
        outcome = FORGED
        for signature, path in pairs:
            url = self.url_for(path.strip())
            if url is None:
                log.warning("a push named a signature key off the key host %s: refused", self.base.host)
                return FOREIGN
            try:
                key = await self._key(path.strip(), url)
            except _Unavailable:
                outcome = UNAVAILABLE
                continue
            if key is not None and _verifies(key, signature, body):
                return GENUINE
        return outcome

    async def _key(self, path: str, url: URL) -> rsa.RSAPublicKey | None:
        if path in self._keys:
            self._keys.move_to_end(path)
            return self._keys[path]
        if path in self._missing:
            return None
        async with self._lock:  # one fetch at a time: keys change rarely
            if path in self._keys or path in self._missing:
                return self._keys.get(path)
            now = time.monotonic()
            self._fetches = [t for t in self._fetches if now - t < 60]
            if len(self._fetches) >= NEW_KEYS_PER_MINUTE:
                raise _Unavailable()
            self._fetches.append(now)
            key = await self._fetch(url)
            cache: OrderedDict = self._keys if key is not None else self._missing
            cache[path] = key
            while len(cache) > (CACHE_SIZE if key is not None else 16 * CACHE_SIZE):
                cache.popitem(last=False)
            return key

    async def _fetch(self, url: URL) -> rsa.RSAPublicKey | None:
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=self.timeout), allow_redirects=False
            ) as resp:
                if resp.status in (403, 404, 410):
                    return None  # no such key: signatures naming it are forged
                if resp.status != 200:
                    raise _Unavailable()
                pem = await resp.content.read(MAX_KEY_BYTES + 1)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            log.warning("cannot fetch a signature key from %s", self.base.host)
            raise _Unavailable() from None
        try:
            key = load_pem_public_key(pem[:MAX_KEY_BYTES])
        except ValueError:
            return None
        return key if isinstance(key, rsa.RSAPublicKey) else None


class _Unavailable(Exception):
    pass


def _verifies(key: rsa.RSAPublicKey, signature: str, body: bytes) -> bool:
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
