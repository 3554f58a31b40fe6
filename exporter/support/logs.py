"""Logging set-up: logfmt-style text (as Go exporters print) or one JSON object a line.

Every handler carries the RedactingFilter, so a secret that reaches a message is masked.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from exporter.support.secrets import RedactingFilter

# Context an operator filters on, passed as `extra={...}` by the call sites; each becomes a field of
# its own in both formats (never part of the message text).
FIELDS = ("sandbox", "flow_id", "endpoint", "status", "request_id")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _timestamp(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


def fields(**values: object) -> dict[str, object]:
    """`log.warning("…", extra=fields(sandbox=s, flow_id=f))`: context as structured fields."""
    return {k: v for k, v in values.items() if v is not None}


def context(record: logging.LogRecord) -> dict[str, str]:
    """The record's structured fields, in FIELDS order."""
    return {k: str(getattr(record, k)) for k in FIELDS if getattr(record, k, None) is not None}


def _logfmt_value(v: str) -> str:
    return v if v and all(c.isalnum() or c in "-_.:/" for c in v) else json.dumps(v)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            msg = f"{msg}\n{record.exc_text}"
        level = "warn" if record.levelno == logging.WARNING else record.levelname.lower()
        extra = "".join(f" {k}={_logfmt_value(v)}" for k, v in context(record).items())
        return f"time={_timestamp(record)} level={level} source={record.name}{extra} msg={json.dumps(msg)}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": _timestamp(record),
            "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
            "source": record.name,
            **context(record),
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # aiohttp's access log is noise at info; keep it for debug.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
