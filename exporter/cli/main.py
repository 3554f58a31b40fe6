"""Command line: flags in, an exit status out.

main() parses the flags, makes the config (from the file, or the demo's) and runs the mode asked
for: the daemon (daemon.py), --check or --once (checks.py); `trigger`, `backfill`, `runs`,
`retry` and `rules` (objectives → Prometheus rules) go to modules of their own.

Exit codes: 0 fine; 1 a flow or the token is not fine (--check, --once), or the daemon's poll loop
died (so that systemd's Restart=on-failure restarts it); 2 bad config or flags.
A config error is one line on stderr naming the file and the key, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from exporter import __version__
from exporter.cli.checks import check, once
from exporter.cli.daemon import serve, warn_if_secret_exposed
from exporter.config import Config, ConfigError, load_config
from exporter.config.shard import parse_shard
from exporter.exposition.server import parse_listen_address
from exporter.exposition.webconfig import WebConfig, load_web_config
from exporter.support.logs import LEVELS, setup_logging

CONFIG_ENV = "AEP_EXPORTER_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aep-flow-exporter",
        description="Prometheus exporter for Adobe Experience Platform Flow Service dataflow runs.",
        epilog="To create an on-demand flow run: aep-flow-exporter trigger --help; to re-ingest a range "
        "as a sequence of them: aep-flow-exporter backfill --help; to turn objectives into Prometheus rules: "
        "aep-flow-exporter rules --help",
    )
    p.add_argument(
        "--config.file", dest="config_file", metavar="FILE", help=f"YAML config file (default: ${CONFIG_ENV})"
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=":7941",
        metavar="ADDR",
        help="address to serve metrics on (default :7941)",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path under which metrics are served (default /metrics)",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth, in the Prometheus exporter-toolkit format",
    )
    p.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        default=os.environ.get("AEP_EXPORTER_SHARD"),
        help="watch only this replica's share of the flows: INDEX/COUNT, or ordinal/COUNT to "
        "take INDEX from a StatefulSet pod name (default: $AEP_EXPORTER_SHARD)",
    )
    p.add_argument("--log.level", dest="log_level", default="info", choices=list(LEVELS))
    p.add_argument("--log.format", dest="log_format", default="text", choices=["text", "json"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="validate the config, fetch a token and each flow once, print a line per flow",
    )
    mode.add_argument("--once", action="store_true", help="poll once, print the metrics to stdout, exit")
    p.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated Flow Service (no credentials, no network)"
    )
    p.add_argument("--version", action="version", version=f"aep-flow-exporter {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["trigger"]:
        from exporter.cli import trigger

        return trigger.main(argv[1:])
    if argv[:1] == ["backfill"]:
        from exporter.cli import backfill

        return backfill.main(argv[1:])
    if argv[:1] == ["runs"]:
        from exporter.cli import runs

        return runs.main(argv[1:])
    if argv[:1] == ["retry"]:
        from exporter.cli import retry

        return retry.main(argv[1:])
    if argv[:1] == ["rules"]:
        from exporter.cli import rules

        return rules.main(argv[1:])
    args = build_parser().parse_args(argv)
    if not args.telemetry_path.startswith("/"):
        return _usage_error(f"--web.telemetry-path must start with '/', got {args.telemetry_path!r}")
    try:
        listen = parse_listen_address(args.listen_address)
    except ValueError as e:
        return _usage_error(str(e))
    try:
        args.shard = parse_shard(args.shard) if args.shard else None
    except ValueError as e:
        return _usage_error(str(e))
    setup_logging(args.log_level, args.log_format)
    try:
        args.web_config = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
    except ConfigError as e:
        print(f"aep-flow-exporter: web config error: {e}", file=sys.stderr)
        return 2
    if args.demo:
        return _run(_demo(args, listen))
    path = args.config_file or os.environ.get(CONFIG_ENV)
    if not path:
        return _usage_error(f"no config file: pass --config.file FILE, set {CONFIG_ENV}, or try --demo")
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"aep-flow-exporter: config error: {e}", file=sys.stderr)
        return 2
    warn_if_secret_exposed(config)
    return _run(_dispatch(args, config, listen))


def _usage_error(message: str) -> int:
    print(f"aep-flow-exporter: {message}", file=sys.stderr)
    return 2


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 0


async def _demo(args: argparse.Namespace, listen: tuple[str | None, int]) -> int:
    """The mode asked for, against the simulator the demo starts (and stops after)."""
    from exporter.demo import demo  # the simulator is loaded for the demo only

    async with demo(listen, https=args.web_config.ssl_context is not None) as (config, note):
        return await _dispatch(args, config, listen, demo_note=note)


async def _dispatch(
    args: argparse.Namespace, config: Config, listen: tuple[str | None, int], demo_note: str = ""
) -> int:
    if args.check:
        return await check(config)
    if args.once:
        return await once(config, args.shard)
    return await serve(config, listen, args.telemetry_path, args.web_config, demo_note, args.shard)
