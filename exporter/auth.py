"""Adobe IMS OAuth server-to-server tokens: fetched once, reused, renewed before they expire.

IMS has no refresh token; a new `client_credentials` exchange is the renewal. One token serves
every sandbox (the sandbox is a request header). Concurrent callers share one in-flight exchange.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp

from exporter.config import AdobeConfig
from exporter.retry import RetryPolicy, backoff_delay
from exporter.secrets import register_secret
from exporter.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

# Renew at this fraction of the token's life (21.6 h of IMS's usual 24 h).
RENEW_AT = 0.9
# The old JWT exchange answered `expires_in` in milliseconds; no S2S token lives 30 days.
_MS_EXPIRES_IN = 30 * 86400


class TokenError(Exception):
    """No token could be had. The message never contains the secret."""


class TokenProvider:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        adobe: AdobeConfig,
        metrics: SelfMetrics,
        timeout: float,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._adobe = adobe
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """A valid access token, fetching a new one when the current is near its end."""
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                await self._fetch_with_retries()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Adobe answered 401 with `token`: drop it so the next caller fetches a new one
        (unless another caller already has)."""
        if self._token == token:
            self._token = None

    async def _fetch_with_retries(self) -> None:
        deadline = self._clock() + self._retry.max_elapsed
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._fetch()
                return
            except _Retryable as e:
                self._metrics.token_refresh_failures.inc()
                delay = backoff_delay(self._retry, attempt)
                if attempt >= self._retry.max_attempts or self._clock() + delay > deadline:
                    raise TokenError(f"cannot obtain an IMS token after {attempt} attempts: {e}") from None
                log.warning("IMS token request failed (%s); retrying in %.1fs", e, delay)
                self._metrics.api_retries.labels("token", e.reason).inc()
                await asyncio.sleep(delay)
            except TokenError:
                self._metrics.token_refresh_failures.inc()
                raise

    async def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._adobe.client_id,
            "client_secret": self._adobe.client_secret.reveal(),
            "scope": ",".join(self._adobe.scopes),
        }
        started = time.monotonic()
        code = "error"
        try:
            async with self._session.post(self._adobe.token_url, data=form, timeout=self._timeout) as resp:
                code = str(resp.status)
                body = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise _Retryable("error", f"cannot reach IMS: {type(e).__name__}") from None
        finally:
            self._metrics.api_requests.labels("token", code).inc()
            self._metrics.api_request_duration.labels("token").observe(time.monotonic() - started)

        status = int(code)
        if status >= 500 or status == 429:
            raise _Retryable(code, f"IMS answered HTTP {status}")
        try:
            data = _json(body)
        except ValueError:
            if status >= 400:
                raise TokenError(f"IMS refused the token request: HTTP {status}") from None
            raise _Retryable("parse", "IMS answered with a body that is not JSON") from None
        if status >= 400:
            # IMS errors are {"error": "invalid_client", "error_description": "..."}: no secrets.
            what = data.get("error_description") or data.get("error") or "no reason given"
            raise TokenError(f"IMS refused the token request: HTTP {status}: {str(what)[:200]}")
        token = data.get("access_token")
        expires_in = data.get("expires_in")
        if (
            not isinstance(token, str)
            or not token
            or isinstance(expires_in, bool)
            or not isinstance(expires_in, (int, float))
        ):
            raise _Retryable("parse", "IMS answer lacks access_token or expires_in")
        if expires_in > _MS_EXPIRES_IN:
            expires_in = expires_in / 1000
        now = self._clock()
        register_secret(token)
        self._token = token
        self._renew_at = now + RENEW_AT * float(expires_in)
        self._metrics.token_expiry.set(now + float(expires_in))
        log.debug("obtained IMS token valid for %ds", int(expires_in))


class _Retryable(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _json(body: bytes) -> dict:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data
