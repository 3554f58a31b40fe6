"""A POST to Adobe that may act (creating a run, retrying one): its one error type, and the one
way of learning, by trying, which of the two forms Adobe's documents disagree on it accepts.

A refusal's words decide nothing (gateways and Adobe's services word them differently): a
validation refusal (400 or 422, nothing was done) of the first form is answered by sending the
other form once; if that one is refused too, the first refusal is the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from exporter.adobe.client import ApiError
from exporter.adobe.ims import TokenError

T = TypeVar("T")
VALIDATION_STATUSES = (400, 422)


class PostError(Exception):
    """The POST gave no new run id. `refused`: Adobe answered 4xx, so it did nothing.
    `may_have_acted`: the request may have reached Adobe (a timeout, a dropped connection, a 5xx,
    an unreadable answer), so a run may exist whose id we do not know. `status`: a refusal's."""

    def __init__(self, message: str, refused: bool, may_have_acted: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.refused = refused
        self.may_have_acted = may_have_acted
        self.status = status

    @property
    def validation(self) -> bool:
        """A refusal of what was sent (400/422): the other form of it may pass."""
        return self.refused and self.status in VALIDATION_STATUSES


async def post(call: Callable[[], Awaitable[T]], refused_as: str, failed_as: str) -> T:
    """`call`'s answer, or PostError saying whether Adobe refused it or may have acted on it;
    `refused_as` and `failed_as` begin the error's message ("Adobe refused the run", …)."""
    try:
        return await call()
    except ApiError as e:
        if e.status is not None and 400 <= e.status < 500:
            raise PostError(f"{refused_as}: {e}", True, False, e.status) from None
        raise PostError(f"{failed_as}: {e}", False, True) from None
    except TokenError as e:  # no token, so nothing was sent
        raise PostError(str(e), False, False) from None


async def either(
    first: Callable[[], Awaitable[T]], other: Callable[[], Awaitable[T]], trying: Callable[[PostError], None]
) -> tuple[T, bool]:
    """`first`'s answer; after a validation refusal of it (`trying` is told), `other`'s, once.
    Returns the answer and whether it was `other`'s (the caller keeps to that form). Both refused:
    the first refusal is raised (the second says nothing the first did not)."""
    try:
        return await first(), False
    except PostError as e:
        if not e.validation:
            raise
        refusal = e
    trying(refusal)
    try:
        return await other(), True
    except PostError as e:
        if e.validation:
            raise refusal from None
        raise
