"""`--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit format.

```yaml
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert   # optional; default NoClientCert
  client_ca_file: ca.crt                         # needed to verify client certificates
  min_version: TLS12                             # optional: TLS10..TLS13
  max_version: TLS13                             # optional
http_server_config:
  headers: {X-Frame-Options: deny}               # optional extra response headers
basic_auth_users:
  prometheus: $2y$10$...                         # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':')
```
load_web_config() reads the file into a `WebConfig`: its SSL context is what start_http() serves
with, its users what auth_middleware() checks. Every endpoint but /healthz then wants the
credentials (liveness probes carry none). A bcrypt
check costs tens of milliseconds, so it runs in a worker thread and good credentials are cached
(by a SHA-256 of user, password and hash) instead of being re-hashed on every scrape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from exporter.config import ConfigError

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def load_web_config(path: str) -> WebConfig:
    """Parse and check the file now, so a bad one stops the start with exit 2."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read web config file: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = Path(path).resolve().parent  # relative file names are relative to the web config
    known = {"tls_server_config", "basic_auth_users", "http_server_config"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{path}: {key}: unknown key")
    cfg = WebConfig()
    tls = raw.get("tls_server_config")
    if tls is not None:
        cfg.ssl_context = _tls(tls, path, base)
    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise ConfigError(f"{path}: basic_auth_users: expected a mapping of user: bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{path}: basic_auth_users.{user}: expected a bcrypt hash ($2y$…)")
        cfg.users[str(user)] = hashed.encode()
    http = raw.get("http_server_config") or {}
    if not isinstance(http, dict) or set(http) - {"headers"}:
        raise ConfigError(f"{path}: http_server_config: only 'headers' is supported")
    cfg.headers = {str(k): str(v) for k, v in (http.get("headers") or {}).items()}
    return cfg


def _tls(tls: Any, path: str, base: Path) -> ssl.SSLContext:
    where = f"{path}: tls_server_config"
    if not isinstance(tls, dict):
        raise ConfigError(f"{where}: expected a mapping")
    allowed = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
    for key in tls:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown or unsupported key")
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise ConfigError(f"{where}.{key}: required key is missing")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(base / tls["cert_file"], base / tls["key_file"])
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{where}.cert_file: cannot load the certificate and key: {e}") from None
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise ConfigError(f"{where}.client_auth_type: one of {', '.join(_CLIENT_AUTH)}, got {auth!r}")
    ctx.verify_mode = _CLIENT_AUTH[auth]
    if tls.get("client_ca_file"):
        try:
            ctx.load_verify_locations(base / tls["client_ca_file"])
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"{where}.client_ca_file: cannot load: {e}") from None
    elif auth in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven", "RequireAnyClientCert"):
        raise ConfigError(f"{where}.client_ca_file: required with client_auth_type {auth}")
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if key in tls:
            if tls[key] not in _VERSIONS:
                raise ConfigError(f"{where}.{key}: one of {', '.join(_VERSIONS)}, got {tls[key]!r}")
            setattr(ctx, attr, _VERSIONS[tls[key]])
    return ctx


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(
    cfg: WebConfig, open_paths: frozenset[str] = frozenset()
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """`open_paths`: served without basic auth besides /healthz (the events webhook: Adobe cannot
    send credentials; its pushes are signed instead)."""
    unauthenticated = UNAUTHENTICATED_PATHS | open_paths
    verified: set[bytes] = set()

    def fingerprint(user: str, password: str, hashed: bytes) -> bytes:
        return hashlib.sha256(user.encode() + b"\0" + password.encode() + b"\0" + hashed).digest()

    async def check(header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = cfg.users.get(user)
        if hashed is None:
            return False
        key = fingerprint(user, password, hashed)
        if any(hmac.compare_digest(key, k) for k in verified):
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        if ok:
            verified.add(key)
        return ok

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if cfg.users and request.path not in unauthenticated:
            if not await check(request.headers.get("Authorization", "")):
                return web.Response(
                    status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="aep-flow-exporter"'}
                )
        response = await handler(request)
        for k, v in cfg.headers.items():
            response.headers[k] = v
        return response

    return middleware
