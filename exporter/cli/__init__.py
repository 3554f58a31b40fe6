"""The command line: the daemon (main.py, daemon.py), --check and --once (checks.py), and the
run commands (trigger.py, backfill.py), each a module of its own over the rooms below it."""

from exporter.cli.main import main

__all__ = ["main"]
