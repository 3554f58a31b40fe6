"""Adobe IMS OAuth server-to-server tokens: fetched once, reused, renewed before they expire.

IMS has no refresh token; a new `client_credentials` exchange is the renewal. One token serves
every sandbox (the sandbox is a request header). Concurrent callers share one in-flight exchange.

When IMS says no (a rotated secret: 400/401 invalid_client; or 5xx, 429, no connection) the
failure is kept and handed to every caller until a backoff deadline (1 s, doubling, capped at
5 minutes), so a bad secret costs one token request per backoff step, whatever the number of flows,
cycles or request retries. IMS throttles, then locks out, a client that asks on every request.
A renewal that fails while the current token still lives keeps serving that token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp

from exporter.config import AdobeConfig
from exporter.support.retry import RetryPolicy, backoff_delay
from exporter.support.secrets import register_token
from exporter.support.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

# Renew at this fraction of the token's life (21.6 h of IMS's usual 24 h).
RENEW_AT = 0.9
# The old JWT exchange answered `expires_in` in milliseconds; no S2S token lives 30 days.
_MS_EXPIRES_IN = 30 * 86400
# After a failed fetch, no new one before this many seconds; doubling per failure in a row.
FAILURE_BACKOFF = 1.0
FAILURE_BACKOFF_MAX = 300.0
# A token the Flow Service refuses on its first use is suspect: IMS hands out tokens that do not
# work (a credential without the API, say), and renewing each at once would turn every request
# into a token request. After this many in a row, renewals back off like failed fetches. A token
# that served and is then refused was revoked or expired early: it is renewed at once, always.
_REFUSALS_BEFORE_HOLD = 3  # one refused while Adobe catches up with a new token is normal


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
        failure_backoff: float = FAILURE_BACKOFF,
        failure_backoff_max: float = FAILURE_BACKOFF_MAX,
    ) -> None:
        self._session = session
        self._adobe = adobe
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._clock = clock
        self._backoff = (failure_backoff, failure_backoff_max)
        self._token: str | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._failure = ""  # why the last fetch failed, handed to callers until _hold_until
        self._failures = 0  # failed fetches in a row
        self._refused = 0  # tokens refused on their first use, in a row
        self._served = False  # whether the current token has had an answer that accepted it
        self._hold_until = 0.0
        self._hold_step = 0.0

    async def token(self) -> str:
        """A valid access token, fetching a new one when the current is near its end. Raises
        TokenError, the same for every caller, while a failed fetch's backoff lasts."""
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        if self._holding():
            return self._fallback()
        async with self._lock:
            if self._token is not None and self._clock() < self._renew_at:
                return self._token  # another caller renewed it while we waited
            if self._holding():
                return self._fallback()  # another caller failed while we waited
            try:
                await self._fetch_with_retries()
            except TokenError as e:
                self._hold(str(e), self._failures)
                log.error("%s; next token request in %gs", e, self._hold_step)
                return self._fallback()
            assert self._token is not None
            return self._token

    def served(self, token: str) -> None:
        """Adobe answered a request made with `token` without refusing the token (any status but
        401/403): it works, so a later refusal means it was revoked, not that it never worked."""
        if token == self._token:
            self._served = True

    def invalidate(self, token: str) -> None:
        """Adobe refused `token`: drop it so the next caller fetches a new one (unless another
        caller already has). A token that had served is renewed at once, however often that
        happens. When new tokens are refused on their first use again and again (three in a row),
        the next fetch waits out a backoff step like a failed one, and callers get a TokenError
        meanwhile."""
        if self._token != token:
            return
        self._token = None
        self._refused = 0 if self._served else self._refused + 1
        if self._refused >= _REFUSALS_BEFORE_HOLD:
            what = f"the Flow Service refused {self._refused} new tokens in a row (HTTP 401)"
            self._hold(what, self._refused - _REFUSALS_BEFORE_HOLD + 1)
            log.error("%s; next token request in %gs", what, self._hold_step)

    def _holding(self) -> bool:
        remaining = self._hold_until - self._clock()
        return 0 < remaining <= self._hold_step  # a wall clock stepped back does not extend it

    def _hold(self, failure: str, streak: int) -> None:
        base, cap = self._backoff
        self._failure = failure
        self._hold_step = min(cap, base * 2 ** max(0, streak - 1))
        self._hold_until = self._clock() + self._hold_step

    def _fallback(self) -> str:
        """While fetches fail: the current token if it still lives, else the failure."""
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        raise TokenError(self._failure)

    async def _fetch_with_retries(self) -> None:
        """One fetch. The first after a success rides out a blip with the retry policy; while
        fetches keep failing, each is a single request (the backoff between them is the hold)."""
        deadline = self._clock() + self._retry.max_elapsed
        max_attempts = self._retry.max_attempts if self._failures == 0 else 1
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._fetch()
                self._failures, self._hold_until = 0, 0.0
                return
            except _Retryable as e:
                self._metrics.token_refresh_failures.inc()
                delay = backoff_delay(self._retry, attempt)
                if attempt >= max_attempts or self._clock() + delay > deadline:
                    self._failures += 1
                    raise TokenError(f"cannot obtain an IMS token after {attempt} attempt(s): {e}") from None
                log.warning("IMS token request failed (%s); retrying in %.1fs", e, delay)
                self._metrics.api_retries.labels("token", e.reason).inc()
                await asyncio.sleep(delay)
            except TokenError:
                self._metrics.token_refresh_failures.inc()
                self._failures += 1
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
        register_token(token)
        self._token = token
        self._served = False
        self._renew_at = now + RENEW_AT * float(expires_in)
        self._expires_at = now + float(expires_in)
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
