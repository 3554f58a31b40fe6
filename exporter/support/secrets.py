"""Secrets that cannot leak by accident.

`Secret` hides its value from str(), repr(), f-strings and logging; only `reveal()` gives it, and
only the auth module calls that. `RedactingFilter` is the second line of defence: any log record
that still contains a registered secret or a recent token (a token echoed in an error body, say)
has it masked. The set of masked values is bounded, and masking is one regex pass per record.
"""

from __future__ import annotations

import logging
import threading

REDACTED = "[REDACTED]"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Two kinds of values are masked. Pinned: configured secrets (the client secret), few and kept
# for the life of the process. Recent tokens: access tokens, one new a day or more often; only the
# last few are kept (a token long expired is worth nothing, and the set must not grow for months).
MAX_PINNED = 32
MAX_RECENT_TOKENS = 8
_MIN_LENGTH = 6  # masking very short strings would mangle ordinary words

_lock = threading.Lock()
_pinned: dict[str, None] = {}  # insertion-ordered sets: the oldest goes first when full
_tokens: dict[str, None] = {}
# Rebuilt when the values change, read without the lock on every log line: longest first, so that
# a value containing another is masked whole. A tuple, not a regex: `re` would keep every pattern
# ever compiled (one a token renewal) in its cache, and with it tokens long expired.
_values: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Remember a configured secret, to be masked wherever it shows up in a log line."""
    _remember(_pinned, value, MAX_PINNED)


def register_token(value: str) -> None:
    """Remember an access token; the oldest of more than MAX_RECENT_TOKENS is forgotten."""
    _remember(_tokens, value, MAX_RECENT_TOKENS)


def _remember(kind: dict[str, None], value: str, limit: int) -> None:
    global _values
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in kind:
            kind[value] = kind.pop(value)  # most recent last
            return
        kind[value] = None
        while len(kind) > limit:
            del kind[next(iter(kind))]
        _values = tuple(sorted(set(_pinned) | set(_tokens), key=len, reverse=True))


def redaction_set_size() -> int:
    """How many values are masked now (bounded by MAX_PINNED + MAX_RECENT_TOKENS)."""
    with _lock:
        return len(set(_pinned) | set(_tokens))


def redact(text: str) -> str:
    for value in _values:  # at most MAX_PINNED + MAX_RECENT_TOKENS substring searches
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in the fully formatted message and in exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
        return True
