"""Command line: the daemon, --demo, --check and --once.

Exit codes: 0 fine; 1 a flow or the token is not fine (--check, --once); 2 bad config or flags.
A config error is one line on stderr naming the file and the key, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Sequence

from aiohttp import web
from prometheus_client.exposition import generate_latest

from exporter import __version__
from exporter.auth import TokenError
from exporter.client import ApiError, NotFound
from exporter.config import AdobeConfig, Config, ConfigError, SandboxConfig, load_config
from exporter.logs import LEVELS, setup_logging
from exporter.runtime import Exporter, open_exporter
from exporter.secrets import Secret
from exporter.server import make_app, parse_listen_address

log = logging.getLogger("exporter")

CONFIG_ENV = "AEP_EXPORTER_CONFIG"
SHUTDOWN_GRACE = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aep-flow-exporter",
        description="Prometheus exporter for Adobe Experience Platform Flow Service dataflow runs.",
    )
    p.add_argument("--config.file", dest="config_file", metavar="FILE",
                   help=f"YAML config file (default: ${CONFIG_ENV})")
    p.add_argument("--web.listen-address", dest="listen_address", default=":7941", metavar="ADDR",
                   help="address to serve metrics on (default :7941)")
    p.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics", metavar="PATH",
                   help="path under which metrics are served (default /metrics)")
    p.add_argument("--log.level", dest="log_level", default="info", choices=list(LEVELS))
    p.add_argument("--log.format", dest="log_format", default="text", choices=["text", "json"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="validate the config, fetch a token and each flow once, print a line per flow")
    mode.add_argument("--once", action="store_true", help="poll once, print the metrics to stdout, exit")
    p.add_argument("--demo", action="store_true",
                   help="run against a built-in simulated Flow Service (no credentials, no network)")
    p.add_argument("--version", action="version", version=f"aep-flow-exporter {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.telemetry_path.startswith("/"):
        return _usage_error(f"--web.telemetry-path must start with '/', got {args.telemetry_path!r}")
    try:
        listen = parse_listen_address(args.listen_address)
    except ValueError as e:
        return _usage_error(str(e))
    setup_logging(args.log_level, args.log_format)
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
    return _run(_dispatch(args, config, listen))


def _usage_error(message: str) -> int:
    print(f"aep-flow-exporter: {message}", file=sys.stderr)
    return 2


def _run(coro) -> int:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 0


async def _dispatch(args: argparse.Namespace, config: Config, listen: tuple[str | None, int],
                    demo_note: str = "") -> int:
    if args.check:
        return await check(config)
    if args.once:
        return await once(config)
    return await serve(config, listen, args.telemetry_path, demo_note)


async def _demo(args: argparse.Namespace, listen: tuple[str | None, int]) -> int:
    from exporter.simulator import BASE_PATH, TOKEN_PATH, Simulator, demo_world, start_simulator

    world = demo_world()
    runner, origin = await start_simulator(Simulator(world, autopilot=True))
    try:
        sandboxes: dict[str, list[str]] = {}
        for flow in world.flows.values():
            sandboxes.setdefault(flow.sandbox, []).append(flow.id)
        config = Config(
            adobe=AdobeConfig(
                client_id=world.client_id,
                client_secret=Secret(world.client_secret),
                org_id=world.org_id,
                token_url=origin + TOKEN_PATH,
                base_url=origin + BASE_PATH,
            ),
            sandboxes=tuple(SandboxConfig(name, tuple(ids)) for name, ids in sandboxes.items()),
            poll_interval=10.0,
            source="<demo>",
        )
        note = f"demo mode: simulated Flow Service at {origin}{BASE_PATH}"
        return await _dispatch(args, config, listen, demo_note=note)
    finally:
        await runner.cleanup()


async def serve(config: Config, listen: tuple[str | None, int], telemetry_path: str, demo_note: str = "") -> int:
    """The daemon: poll in the background, serve /metrics, stop cleanly on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not Unix
            pass
    async with open_exporter(config) as exp:
        runner = web.AppRunner(make_app(exp.registry, lambda: exp.poller.ready, telemetry_path), access_log=None)
        await runner.setup()
        host, port = listen
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:
            print(f"aep-flow-exporter: cannot listen on {host or ''}:{port}: {e.strerror or e}", file=sys.stderr)
            await runner.cleanup()
            return 2
        bound = runner.addresses[0]
        shown = "localhost" if host in (None, "0.0.0.0", "::") else (f"[{bound[0]}]" if ":" in bound[0] else bound[0])
        url = f"http://{shown}:{bound[1]}{telemetry_path}"
        log.info(
            "aep-flow-exporter %s started: %d flow(s) in %d sandbox(es), polling every %gs; config %s",
            __version__, len(config.watched_flows()), len(config.sandboxes), config.poll_interval, config.source,
        )
        if demo_note:
            log.info("%s", demo_note)
        print(f"Serving metrics at {url}" + (f" ({demo_note})" if demo_note else ""), flush=True)
        task = asyncio.create_task(exp.poller.run(stop))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and task.exception():  # the loop contains flow errors; this is a bug
            log.error("poll loop died", exc_info=task.exception())
        log.info("shutting down")
        try:
            await asyncio.wait_for(task, timeout=SHUTDOWN_GRACE)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:  # already logged above
            pass
        stopped.cancel()
        await runner.cleanup()
    return 0


async def once(config: Config) -> int:
    """One full poll; the exposition text on stdout. Exit 1 if any flow could not be polled."""
    async with open_exporter(config) as exp:
        await exp.poller.poll_once()
        sys.stdout.write(generate_latest(exp.registry).decode("utf-8"))
        sys.stdout.flush()
        down = [f for f in exp.ledger.flows.values() if not f.up and not f.gone]
        return 1 if down else 0


async def check(config: Config) -> int:
    """Token, then each flow once: a line each, 'ok' or what is wrong."""
    async with open_exporter(config) as exp:
        return await _check(exp)


async def _check(exp: Exporter) -> int:
    try:
        await exp.tokens.token()
    except TokenError as e:
        print(f"FAIL  token  {e}")
        return 1
    print(f"ok    token  obtained from {exp.config.adobe.token_url}")

    async def one(sandbox: str, flow_id: str) -> tuple[bool, str]:
        try:
            flow = await exp.client.get_flow(sandbox, flow_id)
        except NotFound:
            return False, "not found (404): deleted, or hidden from this credential by access labels"
        except (ApiError, TokenError) as e:
            return False, str(e)
        return True, f"{flow.name or '(no name)'} [{flow.state or 'state unknown'}]"

    flows = exp.config.watched_flows()
    results = await asyncio.gather(*(one(s, f) for s, f in flows))
    for (sandbox, flow_id), (ok, what) in zip(flows, results):
        print(f"{'ok  ' if ok else 'FAIL'}  {sandbox}  {flow_id}  {what}")
    return 0 if all(ok for ok, _ in results) else 1
