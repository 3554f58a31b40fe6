"""The daemon: a validated config in, /metrics served until a signal stops it, an exit status out.

main.py parses the flags and hands serve() the config; serve() opens the exporter's pieces
(exporter/runtime.py), listens over HTTP, polls in a background task and, at SIGTERM or SIGINT,
stops polling, saves the state and exits 0. SIGHUP reloads the config file (an invalid one is
rejected and logged). A poll loop that dies (a bug past the per-flow error handling) is logged
and exits 1, so that systemd's Restart=on-failure restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from exporter import __version__
from exporter.config import Config, ConfigError, load_config
from exporter.config.shard import Shard
from exporter.exposition.server import make_app, start_http, stop_http
from exporter.exposition.webconfig import WebConfig, auth_middleware
from exporter.runtime import Exporter, open_exporter
from exporter.support import tuning

log = logging.getLogger("exporter")

SHUTDOWN_GRACE = 5.0  # seconds a cycle in progress gets to finish at shutdown


class _CannotStart(Exception):
    """A problem of the flags or the host found at start: one line on stderr, exit 2."""


async def serve(
    config: Config,
    listen: tuple[str | None, int],
    telemetry_path: str,
    web_config: WebConfig | None = None,
    demo_note: str = "",
    shard: Shard | None = None,
) -> int:
    """Serve /metrics and poll until a signal says stop; 0, 1 if the poll loop died, 2 if the
    exporter could not start."""
    tuning.tune()  # before the first worker thread
    web_config = web_config or WebConfig()
    async with open_exporter(config, persist=True, shard=shard) as exp:
        stop = _on_signals(exp)
        exp.lag.start()
        await exp.render.refresh()  # scrapes before the first cycle get the self-metrics at once
        try:
            app = _app(exp, telemetry_path, web_config)
            runner, server, url = await _listen(app, listen, telemetry_path, web_config)
        except _CannotStart as e:
            print(f"aep-flow-exporter: {e}", file=sys.stderr)
            return 2
        _announce(config, url, demo_note, shard)
        died = await _poll_until_stopped(exp, stop)
        died = not await _wind_down(exp) or died
        await stop_http(runner, server)
    return 1 if died else 0


def _on_signals(exp: Exporter) -> asyncio.Event:
    """SIGTERM and SIGINT set the event returned; SIGHUP reloads the config."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        _on_signal(loop, sig, stop.set)
    _on_signal(loop, signal.SIGHUP, lambda: _reload(exp))
    return stop


def _on_signal(loop: asyncio.AbstractEventLoop, sig: int, handler: Callable[[], object]) -> None:
    try:
        loop.add_signal_handler(sig, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not Unix
        pass


def _app(exp: Exporter, telemetry_path: str, web_config: WebConfig) -> web.Application:
    """The endpoints, behind the web config's auth; the events webhook, when configured, is
    left open (Adobe signs its pushes instead) and must not take the metrics' path."""
    webhook = exp.events.webhook if exp.events is not None else None
    if webhook is not None and webhook.path == telemetry_path:
        raise _CannotStart(f"events.webhook.path is --web.telemetry-path ({telemetry_path})")
    open_paths = frozenset({webhook.path}) if webhook is not None else frozenset()
    auth = auth_middleware(web_config, open_paths)
    return make_app(exp.render, lambda: exp.ready, telemetry_path, middlewares=[auth], webhook=webhook)


async def _listen(
    app: web.Application, listen: tuple[str | None, int], telemetry_path: str, web_config: WebConfig
) -> tuple[web.AppRunner, asyncio.AbstractServer, str]:
    """Start serving; the runner, the server and the URL of the metrics as a person would open it."""
    host, port = listen
    try:
        runner, server, bound = await start_http(app, host, port, web_config.ssl_context)
    except OSError as e:
        raise _CannotStart(f"cannot listen on {host or ''}:{port}: {e.strerror or e}") from None
    shown = "localhost" if host in (None, "0.0.0.0", "::") else (f"[{bound[0]}]" if ":" in bound[0] else bound[0])
    scheme = "https" if web_config.ssl_context else "http"
    return runner, server, f"{scheme}://{shown}:{bound[1]}{telemetry_path}"


def _announce(config: Config, url: str, demo_note: str, shard: Shard | None) -> None:
    """The start line in the log, and the URL on stdout (the demo's first line names it)."""
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


async def _poll_until_stopped(exp: Exporter, stop: asyncio.Event) -> bool:
    """Poll (and take events) until `stop` is set or the poll loop dies; True if it died. A cycle
    in progress at a stop may finish within SHUTDOWN_GRACE; past it, its requests are cancelled."""
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
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stopped.cancel()
    return died


async def _wind_down(exp: Exporter) -> bool:
    """Stop taking events, save the state, stop watching the loop; False if the save failed."""
    if exp.events is not None:
        await exp.events.stop()
    saved = True
    try:
        await exp.save_state()
    except Exception:  # what killed the loop may be the save itself: exit all the same
        log.exception("cannot save the state at shutdown")
        saved = False
    await exp.lag.stop()
    return saved


def _one_line(error: BaseException | None) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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
    warn_if_secret_exposed(config)
    exp.reload(config)
    log.info(
        "SIGHUP: config reloaded: %d sandbox(es), %d flow(s) named", len(config.sandboxes), len(config.watched_flows())
    )


def warn_if_secret_exposed(config: Config) -> None:
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
