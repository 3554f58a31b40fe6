"""Shared fixtures and helpers: a simulated Flow Service on loopback, configs pointing at it, the
exporter run as a user runs it (its CLI, in its own process), and /metrics parsed with
prometheus_client's parser. Test modules of every tier import the helpers with
`from conftest import …`; the tier of a test is the folder it sits in, marked here."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import AdobeConfig, Config, SandboxConfig
from exporter.simulator import (
    BASE_PATH,
    FRIENDLY,
    HOSTILE,
    HOSTILE_POSITION_TOKENS,
    TOKEN_PATH,
    ApiProfile,
    Simulator,
    World,
    start_simulator,
)
from exporter.support.retry import RetryPolicy
from exporter.support.secrets import Secret

# The folders under tests/, quickest first: unit (in process, the venv only), integration (the
# simulator over HTTP, the CLI against it), system (real Prometheus, Chromium, podman, the soak).
TIERS = ("unit", "integration", "system")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, so that `-m unit` selects what `pytest tests/unit` runs, and
    run the tiers quickest first. A test outside the tier folders is an error: no tier would run it."""
    here = Path(__file__).parent

    def tier(item: pytest.Item) -> str:
        folder = item.path.relative_to(here).parts[0] if item.path.is_relative_to(here) else ""
        if folder not in TIERS:
            raise pytest.UsageError(f"{item.path}: a test belongs in tests/unit, tests/integration or tests/system")
        return folder

    for item in items:
        item.add_marker(tier(item))
    items.sort(key=lambda item: TIERS.index(tier(item)))


# Retries as in production, but with backoffs short enough for a test.
FAST_RETRY = RetryPolicy(max_attempts=4, max_elapsed=10.0, base_delay=0.01, max_delay=0.05)
# Long enough to reach the monitoring tutorial's run of August 2020.
SEED_LOOKBACK = 20 * 365 * 86400.0
# What ${TEST_AEP_SECRET} in config_yaml's files resolves to: the simulator's default secret.
TEST_SECRET = "demo-secret-not-for-production"


@pytest.fixture(params=["batched", "per_flow"])
def strategy(request) -> str:
    """Accounting tests run under both fetch strategies: exactly-once must not depend on it."""
    return request.param


@pytest.fixture
def world() -> World:
    w = World()
    w.add_seed("prod")
    return w


@pytest.fixture
async def sim(world: World):
    simulator = Simulator(world, max_page_size=100)
    runner, origin = await start_simulator(simulator)
    simulator.origin = origin  # type: ignore[attr-defined]
    yield simulator
    await runner.cleanup()


def make_config(sim: Simulator, **overrides: Any) -> Config:
    """A config for every flow of the simulator's world, sandbox by sandbox."""
    world = sim.world
    sandboxes: dict[str, list[str]] = {}
    for flow in world.flows.values():
        sandboxes.setdefault(flow.sandbox, []).append(flow.id)
    values: dict[str, Any] = dict(
        adobe=AdobeConfig(
            client_id=world.client_id,
            client_secret=Secret(world.client_secret),
            org_id=world.org_id,
            token_url=sim.origin + TOKEN_PATH,  # type: ignore[attr-defined]
            base_url=sim.origin + BASE_PATH,  # type: ignore[attr-defined]
        ),
        sandboxes=tuple(SandboxConfig(n, tuple(ids)) for n, ids in sandboxes.items()),
        poll_interval=1.0,
        lookback=SEED_LOOKBACK,
    )
    values.update(overrides)
    return Config(**values)


def config_yaml(sim: Simulator, flows: dict[str, list[str]] | None = None, extra: str = "") -> str:
    """The same, as the YAML file an operator would write."""
    world = sim.world
    if flows is None:
        flows = {}
        for flow in world.flows.values():
            flows.setdefault(flow.sandbox, []).append(flow.id)
    lines = [
        "adobe:",
        f"  client_id: {world.client_id}",
        "  client_secret: ${TEST_AEP_SECRET}",
        f"  org_id: {world.org_id}",
        f"  token_url: {sim.origin}{TOKEN_PATH}",  # type: ignore[attr-defined]
        f"  base_url: {sim.origin}{BASE_PATH}",  # type: ignore[attr-defined]
        "sandboxes:",
    ]
    for name, ids in flows.items():
        lines += [f"  - name: {name}", f"    flows: [{', '.join(ids)}]"]
    lines += [
        "poll_interval: 1s",
        "lookback: 7300d",
        "request_timeout: 5s",
        "metrics: {run_duration_histogram: true, activities: true}",
    ]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
async def ticking(world: World):
    """Runs move along on their own, as Adobe's do (the run commands' tests wait on them)."""

    async def tick() -> None:
        while True:
            world.tick()
            await asyncio.sleep(0.02)

    task = asyncio.create_task(tick())
    yield
    task.cancel()


@pytest.fixture
def config_file(tmp_path, sim):
    """Writes config_yaml(sim, flows, extra) to tmp_path/config.yaml and returns its path."""

    def write(flows: dict[str, list[str]] | None = None, extra: str = "") -> str:
        path = tmp_path / "config.yaml"
        path.write_text(config_yaml(sim, flows, extra))
        return str(path)

    return write


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy or the deadline passes (no fixed sleeps).
    `check` may be a plain function or return an awaitable."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class ExporterProcess:
    """The exporter started the way a user starts it (`python -m exporter …`), on a free port."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, log_path: str | None = None, cwd: str | None = None
    ) -> None:
        self.args = args
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.base = ""
        self.first_line = ""  # what the exporter printed first: "Serving metrics at URL [(note)]"

    async def __aenter__(self) -> ExporterProcess:
        env = {**os.environ, "TEST_AEP_SECRET": TEST_SECRET, **(self.env or {})}
        if self.cwd is None:  # the default state file goes to the working directory: not the repo's
            self._tmp = tempfile.TemporaryDirectory()
            self.cwd = self._tmp.name
        self._log = open(self.log_path, "ab") if self.log_path else asyncio.subprocess.DEVNULL
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exporter",
            "--web.listen-address",
            "127.0.0.1:0",
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=self.cwd,
        )
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=30)
        text = line.decode()
        assert text.startswith("Serving metrics at "), f"unexpected first line: {text!r}"
        self.first_line = text.rstrip("\n")
        self.url = text.split()[3]
        split = urlsplit(self.url)
        self.base = f"{split.scheme}://{split.netloc}"
        return self

    async def stop(self, sig: int = 15) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout=15)

    async def __aexit__(self, *exc: Any) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.log_path:
            self._log.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


async def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 30.0,
    stdout: Any = asyncio.subprocess.PIPE,
) -> CliResult:
    """`python -m exporter ARGS` run to its end (--once, --check, trigger, a config error…), with
    TEST_AEP_SECRET set as ExporterProcess sets it (`env` adds to or overrides the environment)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        *args,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEST_AEP_SECRET": TEST_SECRET, **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return CliResult(proc.returncode, (out or b"").decode(), err.decode())


def parse_exposition(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text parsed with prometheus_client's parser: {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for smp in family.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def exposition(registry: Any) -> dict[tuple[str, tuple], float]:
    """What an in-process exporter's registry would serve on /metrics, parsed like a scrape."""
    return parse_exposition(generate_latest(registry).decode())


async def scrape(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """GET /metrics and parse it with prometheus_client's parser: {(sample name, labels): value}."""
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers or {}) as r:
            assert r.status == 200
            text = await r.text()
    return parse_exposition(text)


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: dict, name: str, **labels: str) -> dict[tuple, float]:
    """Every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in samples.items() if n == name and want <= set(lbl)}


async def ready(exp: ExporterProcess) -> bool:
    """/ready answers 200: the exporter has finished its first poll cycle."""
    async with aiohttp.ClientSession() as s:
        async with s.get(exp.base + "/ready") as r:
            return r.status == 200


async def cycles(exp: ExporterProcess, n: int = 2, sandbox: str = "prod") -> None:
    """Wait until `n` more full poll cycles have succeeded (the sandbox timestamp moved n times)."""
    seen: list[float] = []

    async def moved():
        v = value(await scrape(exp.url), "aep_exporter_last_poll_success_timestamp_seconds", sandbox=sandbox)
        if v is not None and (not seen or v != seen[-1]):
            seen.append(v)
        return len(seen) > n

    await eventually(moved, what=f"{n} more poll cycles")


async def counted(exp: ExporterProcess, key: dict[str, str], n: int, status: str = "success") -> bool:
    """aep_flow_runs_total of the flow `key` (sandbox, flow_id) and `status` is `n`."""
    return value(await scrape(exp.url), "aep_flow_runs_total", status=status, **key) == n


def need(program: str) -> str:
    """The path of a program the suite runs for real; skip without it, or fail under CI=true."""
    path = shutil.which(program)
    if path:
        return path
    message = f"{program} is not installed (Debian package 'prometheus'; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def prometheus_query(port: int, expr: str) -> dict | None:
    """The JSON answer of a Prometheus on 127.0.0.1:`port` to an instant query; None while it
    cannot answer (not started yet, or not JSON)."""
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}) as r:
                return await r.json()
    except aiohttp.ClientError:
        return None


# --- Adobe's undocumented details -----------------------------------------------------------------
# One profile per variation the exactly-once tests must survive, sized for a test world of a few
# flows (pages of 5, tokens and a request-line limit scaled so that a batched continuation request
# passes the limit while a per-flow one does not).
_PAGED = ApiProfile(page_cap=5)
_CARRYING = _PAGED.but(token_length=200, token_encodes_query=True, max_request_line=700, request_line_status=400)
API_VARIATIONS: dict[str, ApiProfile] = {
    "friendly": FRIENDLY,
    "page_cap": _PAGED,
    "next_host_relative": _PAGED.but(next_link="host"),
    "next_base_relative": _PAGED.but(next_link="base"),
    "next_absolute_query_repeated": _PAGED.but(next_link="absolute", repeat_query=True),
    "short_tokens_without_filters": _PAGED.but(token_length=8, token_carries_query=False),
    "long_tokens_without_filters": _PAGED.but(token_length=4000, token_carries_query=False),
    "request_line_limit_414": _PAGED.but(
        token_length=1200, token_carries_query=False, max_request_line=1430, request_line_status=414
    ),
    "request_line_limit_400": _PAGED.but(
        token_length=1200, token_carries_query=False, max_request_line=1430, request_line_status=400
    ),
    "request_line_limit_400_adobe_no_size": _PAGED.but(
        token_length=1200,
        token_carries_query=False,
        max_request_line=1430,
        request_line_status=400,
        request_line_body="adobe",
    ),
    "request_line_limit_400_bare_html": _PAGED.but(
        token_length=1200,
        token_carries_query=False,
        max_request_line=1430,
        request_line_status=400,
        request_line_body="html",
    ),
    "request_line_limit_closed": _PAGED.but(
        token_length=1200,
        token_carries_query=False,
        max_request_line=1430,
        request_line_status=400,
        request_line_body="close",
    ),
    "orderby_ignored": _PAGED.but(orderby=False),
    "lists_refused": ApiProfile(comma_lists="refuse"),
    "lists_read_literally": ApiProfile(comma_lists="literal", list_fields=frozenset({"flowId"})),
    "created_after_ignored": _PAGED.but(created_after=False),
    "clock_behind": ApiProfile(clock_offset=-3600.0),
    "clock_ahead": ApiProfile(clock_offset=3600.0),
    "runs_listed_late": ApiProfile(listing_delay=2.0),
    "next_link_to_other_collection": _PAGED.but(foreign_next_every=3, foreign_next_limit=12),
    # Every other next link names /connections but its token continues /runs (the spec's example),
    # without a limit: only taking the token onto the collection asked for lists these flows at all.
    "next_link_other_collection_right_token": _PAGED.but(foreign_next_every=2, foreign_token_continues=True),
    # Tokens that encode the query they continue (200 bytes + 4/3 of the query): a page after the
    # first, asked with our filters re-sent beside the token, passes the 700-byte line limit for
    # four flows (~850 bytes) while the link as given (~600) and a single flow's page (~580) fit;
    # the limit refused without naming a size, three ways.
    "tokens_carry_query_limit_400_html": _CARRYING.but(request_line_body="html"),
    "tokens_carry_query_limit_400_adobe": _CARRYING.but(request_line_body="adobe"),
    "tokens_carry_query_limit_closed": _CARRYING.but(request_line_body="close"),
    # Tighter: even the link as given of four flows (~600) passes it, as does a single flow's page
    # with our filters (~580); two flows' link as given (~500) and a single flow's (~450) fit.
    "tokens_carry_query_limit_tight": _CARRYING.but(max_request_line=560, request_line_body="html"),
    "hostile": HOSTILE,
    "hostile_position_tokens": HOSTILE_POSITION_TOKENS,
}


@pytest.fixture(params=list(API_VARIATIONS))
def api_variation(request, strategy: str, sim: Simulator) -> str:
    """Each variation of Adobe's undocumented behaviour, applied to the `sim` fixture (before the
    test adds runs, so its clock offset holds for them). Crossed with `strategy`. A test module's
    `KNOWN_FAILURES = {(variation, strategy): reason}` marks what today's fetching gets wrong as
    strict xfail: the case fails the suite as soon as it passes, so the mark must then go."""
    name = request.param
    sim.profile = API_VARIATIONS[name]
    reason = getattr(request.module, "KNOWN_FAILURES", {}).get((name, strategy))
    if reason:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))
    return name


# --- Adobe I/O Events --------------------------------------------------------------------------------


@pytest.fixture
async def esim(world: World):
    """The simulator with Adobe I/O Events: its journal, key host and (once a test names the
    exporter's webhook in `events.webhook_url`) signed pushes."""
    from exporter.simulator import EventsHub

    simulator = Simulator(world, max_page_size=100, events=EventsHub(world))
    runner, origin = await start_simulator(simulator)
    simulator.origin = origin  # type: ignore[attr-defined]
    yield simulator
    await runner.cleanup()


def events_yaml(sim: Simulator, journal: bool = True, webhook: bool = True, **settings: str) -> str:
    """An `events:` section for the simulator's journal and key host (settings: sweep_interval…)."""
    from exporter.simulator import JOURNAL_PATH, KEYS_PATH

    lines = ["events:"]
    if journal:
        lines.append(f"  journal_url: {sim.origin}{JOURNAL_PATH}")  # type: ignore[attr-defined]
    if webhook:
        lines += ["  webhook:", f"    public_key_base_url: {sim.origin}{KEYS_PATH}"]  # type: ignore[attr-defined]
    lines += [f"  {k}: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"
