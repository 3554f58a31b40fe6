"""Command line: the daemon, --demo, --check and --once.

Exit codes: 0 fine; 1 a flow or the token is not fine (--check, --once), or the daemon's poll loop
died (so that systemd's Restart=on-failure restarts it); 2 bad config or flags.
A config error is one line on stderr naming the file and the key, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.cli.checks import check, once
from exporter.config import Config, ConfigError, load_config
from exporter.config.shard import Shard, parse_shard
from exporter.exposition.server import make_app, parse_listen_address, start_http, stop_http
from exporter.exposition.webconfig import WebConfig, auth_middleware, load_web_config
from exporter.runtime import Exporter, open_exporter
from exporter.support import tuning
from exporter.support.logs import LEVELS, setup_logging

log = logging.getLogger("exporter")

CONFIG_ENV = "AEP_EXPORTER_CONFIG"
SHUTDOWN_GRACE = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aep-flow-exporter",
        description="Prometheus exporter for Adobe Experience Platform Flow Service dataflow runs.",
        epilog="To create an on-demand flow run: aep-flow-exporter trigger --help; to re-ingest a range "
        "as a sequence of them: aep-flow-exporter backfill --help",
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
        from exporter.demo import demo  # the simulator is loaded for the demo only

        return _run(demo(args, listen))
    path = args.config_file or os.environ.get(CONFIG_ENV)
    if not path:
        return _usage_error(f"no config file: pass --config.file FILE, set {CONFIG_ENV}, or try --demo")
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"aep-flow-exporter: config error: {e}", file=sys.stderr)
        return 2
    _warn_if_secret_exposed(config)
    return _run(_dispatch(args, config, listen))


def _usage_error(message: str) -> int:
    print(f"aep-flow-exporter: {message}", file=sys.stderr)
    return 2


def _run(coro) -> int:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 0


async def _dispatch(
    args: argparse.Namespace, config: Config, listen: tuple[str | None, int], demo_note: str = ""
) -> int:
    if args.check:
        return await check(config)
    if args.once:
        return await once(config, args.shard)
    return await serve(config, listen, args.telemetry_path, args.web_config, demo_note, args.shard)


async def serve(
    config: Config,
    listen: tuple[str | None, int],
    telemetry_path: str,
    web_config: WebConfig | None = None,
    demo_note: str = "",
    shard: Shard | None = None,
) -> int:
    """The daemon: poll in the background, serve /metrics. SIGTERM/SIGINT: stop polling, save
    the state, exit 0. SIGHUP: reload the config file (an invalid one is rejected and logged).
    A poll loop that dies (a bug past the per-flow error handling) is logged and exits 1."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    tuning.tune()  # before the first worker thread: see exporter/support/tuning.py
    async with open_exporter(config, persist=True, shard=shard) as exp:
        for sig in (signal.SIGTERM, signal.SIGINT):
            _on_signal(loop, sig, stop.set)
        _on_signal(loop, signal.SIGHUP, lambda: _reload(exp))
        web_config = web_config or WebConfig()
        exp.lag.start()
        await exp.render.refresh()  # scrapes before the first cycle get the self-metrics at once
        webhook = exp.events.webhook if exp.events is not None else None
        if webhook is not None and webhook.path == telemetry_path:
            print(f"aep-flow-exporter: events.webhook.path is --web.telemetry-path ({telemetry_path})", file=sys.stderr)
            return 2
        open_paths = frozenset({webhook.path}) if webhook is not None else frozenset()
        auth = auth_middleware(web_config, open_paths)
        app = make_app(exp.render, lambda: exp.ready, telemetry_path, middlewares=[auth], webhook=webhook)
        host, port = listen
        try:
            runner, server, bound = await start_http(app, host, port, web_config.ssl_context)
        except OSError as e:
            print(f"aep-flow-exporter: cannot listen on {host or ''}:{port}: {e.strerror or e}", file=sys.stderr)
            return 2
        shown = "localhost" if host in (None, "0.0.0.0", "::") else (f"[{bound[0]}]" if ":" in bound[0] else bound[0])
        scheme = "https" if web_config.ssl_context else "http"
        url = f"{scheme}://{shown}:{bound[1]}{telemetry_path}"
        log.info(
            "aep-flow-exporter %s started: %d sandbox(es), %d flow(s) named, discovery in %d; polling every %gs; "
            "config %s; state file %s%s",
            __version__,
            len(config.sandboxes),
            len(config.watched_flows()),
            sum(1 for s in config.sandboxes if s.discover),
            config.poll_interval,
            config.source,
            config.state_file or "off",
            f"; shard {shard.index}/{shard.count}" if shard else "",
        )
        if demo_note:
            log.info("%s", demo_note)
        print(f"Serving metrics at {url}" + (f" ({demo_note})" if demo_note else ""), flush=True)
        if exp.events is not None:
            await exp.events.start()
        task = asyncio.create_task(exp.poller.run(stop, after_cycle=exp.after_cycle))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        died = task.done() and not task.cancelled() and task.exception() is not None
        if died:  # flow errors are contained below the loop: this is a bug; let systemd restart us
            error = task.exception()
            log.error("poll loop died: %s; exiting with status 1", _one_line(error), exc_info=error)
        log.info("shutting down")
        # Let a cycle in progress finish if it can; past the grace, cancel its requests.
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        stopped.cancel()
        if exp.events is not None:
            await exp.events.stop()
        try:
            await exp.save_state()
        except Exception:  # what killed the loop may be the save itself: exit all the same
            log.exception("cannot save the state at shutdown")
            died = True
        await exp.lag.stop()
        await stop_http(runner, server)
    return 1 if died else 0


def _one_line(error: BaseException | None) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _on_signal(loop: asyncio.AbstractEventLoop, sig: int, handler) -> None:
    try:
        loop.add_signal_handler(sig, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not Unix
        pass


def _reload(exp: Exporter) -> None:
    """SIGHUP: read the config file again; keep the old config if the new one is invalid."""
    if exp.config.source.startswith("<"):
        log.warning("SIGHUP: no config file to reload (%s)", exp.config.source)
        return
    try:
        config = load_config(exp.config.source)
    except ConfigError as e:
        exp.metrics.config_reload_ok.set(0)
        log.error("SIGHUP: config not reloaded, keeping the previous one: %s", e)
        return
    _warn_if_secret_exposed(config)
    exp.reload(config)
    log.info(
        "SIGHUP: config reloaded: %d sandbox(es), %d flow(s) named", len(config.sandboxes), len(config.watched_flows())
    )


def _warn_if_secret_exposed(config: Config) -> None:
    """A client_secret written into a file others can read is a leaked secret."""
    if not config.literal_secret:
        return
    try:
        mode = os.stat(config.source).st_mode
    except OSError:
        return
    if mode & 0o044:
        log.warning(
            "%s holds a literal client_secret and is readable by other users (mode %o): use "
            "client_secret: ${AEP_CLIENT_SECRET} or client_secret_file, or chmod 600 it",
            config.source,
            mode & 0o777,
        )
