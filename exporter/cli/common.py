"""The command line shared by the run commands (`trigger`, `backfill`): their common flags, the
reading of times and of the config they name, and how bad input reaches the operator.

In: argparse's strings. Out: unix seconds, a loaded config, or an InputError whose message is
for the operator, printed without a traceback by `bad_input` (exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

from exporter.config import Config, ConfigError, load_config
from exporter.support.logs import LEVELS

YEAR_2000 = 946684800
MAX_AHEAD = 86400  # seconds: a time further in the future than this is a slip unless --force


class InputError(ValueError):
    """Bad command-line input: the message is for the operator."""


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """--config.file: every run command reads its credentials from the exporter's config."""
    p.add_argument(
        "--config.file",
        dest="config_file",
        metavar="FILE",
        help="the exporter's config, for credentials (default: $AEP_EXPORTER_CONFIG)",
    )


def add_flow_args(p: argparse.ArgumentParser) -> None:
    """--config.file, --sandbox, --flow: the commands about one flow (trigger, backfill, runs)."""
    add_config_arg(p)
    p.add_argument("--sandbox", required=True, help="sandbox of the flow")
    p.add_argument("--flow", required=True, metavar="ID", help="flow ID")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """--force, --dry-run, following a run, --log.level: trigger's and backfill's."""
    p.add_argument("--force", action="store_true", help="allow times far in the future or before 2000")
    p.add_argument("--dry-run", action="store_true", help="print the request(s) instead of sending them")
    p.add_argument(
        "--params-as",
        choices=["string", "integer"],
        help="send startTime/windowStartTime/windowEndTime only in this form (default: strings as Adobe's "
        "tutorials do, once more as integers, as its spec types them, if Adobe refuses the strings)",
    )
    add_wait_args(p)
    add_log_arg(p)


def add_wait_args(p: argparse.ArgumentParser) -> None:
    """--wait-timeout, --wait-interval: how a command follows a run (trigger, backfill, retry)."""
    p.add_argument(
        "--wait-timeout", default="3h", metavar="DURATION", help="give up waiting for a run after (default 3h)"
    )
    p.add_argument(
        "--wait-interval", default="15s", metavar="DURATION", help="how often to look at a run (default 15s)"
    )


def add_log_arg(p: argparse.ArgumentParser) -> None:
    """--log.level: the run commands log warnings and worse unless asked."""
    p.add_argument("--log.level", dest="log_level", default="warn", choices=list(LEVELS))


def parse_time(text: str, flag: str) -> int:
    """Unix seconds (an integer or decimal) or ISO-8601 (a trailing Z or an offset; UTC if none)."""
    value = text.strip()
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"{flag}: {text!r} is neither unix seconds nor an ISO-8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())


def check_times(
    times: dict[str, int], now: float, force: bool, start: str = "--window-start", end: str = "--window-end"
) -> list[str]:
    """Every problem with the times, each a line. `start` and `end` name the flags of the window
    (backfill calls them --from and --to)."""
    problems = []
    if times[end] <= times[start]:
        problems.append(f"{end} must be after {start}")
    if not force:
        for flag, t in times.items():
            if t > now + MAX_AHEAD:
                year = _year(t)
                problems.append(f"{flag} {t} is more than a day in the future ({year}); --force if you mean it")
            elif t < YEAR_2000:
                problems.append(f"{flag} {t} is before 2000 ({_year(t)}); --force if you mean it")
    return problems


def _year(t: int) -> str:
    try:
        return f"in the year {datetime.fromtimestamp(t, timezone.utc).year}"
    except (OverflowError, OSError, ValueError):
        return "far outside any sensible date"


def load_config_arg(config_file: str | None) -> Config:
    """The config named by --config.file or $AEP_EXPORTER_CONFIG; InputError or ConfigError."""
    path = config_file or os.environ.get("AEP_EXPORTER_CONFIG")
    if not path:
        raise InputError("no config file: pass --config.file FILE or set AEP_EXPORTER_CONFIG")
    return load_config(path)


def bad_input(prog: str, error: Exception) -> int:
    """Print an InputError or ConfigError as the operator should see it (no traceback); exit 2."""
    if isinstance(error, ConfigError):
        print(f"{prog}: config error: {error}", file=sys.stderr)
    else:
        for line in str(error).splitlines():
            print(f"{prog}: {line}", file=sys.stderr)
    return 2
