"""Secrets that cannot leak by accident.

`Secret` hides its value from str(), repr(), f-strings and logging; only `reveal()` gives it, and
only the auth module calls that. `RedactingFilter` is the second line of defence: any log record
that still contains a registered secret (a token echoed in an error body, say) has it masked.
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


_lock = threading.Lock()
_known: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a value to be masked wherever it shows up in a log line."""
    if len(value) >= 6:  # masking very short strings would mangle ordinary words
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
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
