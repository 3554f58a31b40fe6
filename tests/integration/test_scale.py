"""Batched fetching and sharding: few requests per cycle, the per-flow fallback, and shards that
partition the flows exactly."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid

import pytest
from conftest import ExporterProcess, config_yaml, eventually, scrape, series, value

from exporter.config.shard import Shard, parse_shard, shard_of
from exporter.simulator import HOSTILE


def requests_total(m: dict) -> float:
    return sum(
        v for (n, lbl), v in m.items() if n == "aep_exporter_api_requests_total" and dict(lbl)["endpoint"] != "token"
    )


async def one_cycle_of_requests(exp, sandbox: str = "prod") -> float:
    """API requests of one steady-state cycle, read from two consecutive renderings."""
    seen: list[tuple[float, float]] = []

    async def two_cycles():
        m = await scrape(exp.url)
        stamp = value(m, "aep_exporter_last_poll_success_timestamp_seconds", sandbox=sandbox)
        if stamp is not None and (not seen or seen[-1][0] != stamp):
            seen.append((stamp, requests_total(m)))
        return len(seen) >= 4

    await eventually(two_cycles, what="steady cycles")
    return seen[-1][1] - seen[-2][1]


async def polled(exp) -> bool:
    """A first cycle of sandbox prod has succeeded (readiness by the metric, not /ready)."""
    return value(await scrape(exp.url), "aep_exporter_last_poll_success_timestamp_seconds", sandbox="prod") is not None


async def test_batched_cycles_cost_a_few_requests_not_one_per_flow(sim, world, tmp_path):
    flows = [world.add_flow("prod", f"flow-{i:03d}") for i in range(150)]
    for f in flows[:50]:
        world.finish_run(world.start_run(f.id, created_ms=world.now_ms() - 60_000).id)
    running = [world.start_run(f.id, created_ms=world.now_ms() - 30_000) for f in flows[50:53]]
    (tmp_path / "c.yaml").write_text(config_yaml(sim, extra="state_file: null\n"))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml")) as exp:
        await eventually(lambda: polled(exp), what="first cycle")
        batched = await one_cycle_of_requests(exp)
        m = await scrape(exp.url)
        assert value(m, "aep_exporter_fetch_strategy", sandbox="prod", strategy="batched") == 1
        # 151 flows in 2 chunks: 2 listings, plus 1 lookup of the 3 runs in flight.
        assert batched <= 4, batched
        for r in running:
            world.finish_run(r.id)

        async def counted():
            m = await scrape(exp.url)
            return sum(series(m, "aep_flow_runs_total", status="success").values()) == 3

        await eventually(counted, what="the runs in flight to complete and be counted")
    (tmp_path / "c.yaml").write_text(config_yaml(sim, extra="state_file: null\nfetch_strategy: per_flow\n"))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml")) as exp:
        await eventually(lambda: polled(exp), what="first cycle")
        per_flow = await one_cycle_of_requests(exp)
    assert per_flow >= 151 and per_flow >= 20 * batched, (per_flow, batched)


async def test_adobe_refusing_batched_queries_falls_back_to_per_flow(sim, world, tmp_path):
    sim.reject_batched = True
    flows = [world.add_flow("prod", f"flow-{i}") for i in range(3)]
    run = world.start_run(flows[0].id, created_ms=world.now_ms() - 10_000)
    log = tmp_path / "log"
    (tmp_path / "c.yaml").write_text(config_yaml(sim, extra="state_file: null\n"))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml"), log_path=str(log)) as exp:
        await eventually(lambda: polled(exp), what="first cycle")
        m = await scrape(exp.url)
        assert value(m, "aep_exporter_fetch_strategy", sandbox="prod", strategy="per_flow") == 1
        assert value(m, "aep_exporter_batch_fallbacks_total", sandbox="prod") == 1
        assert all(v == 1 for v in series(m, "aep_exporter_flow_up").values())
        world.finish_run(run.id)

        async def counted():
            m = await scrape(exp.url)
            return value(m, "aep_flow_runs_total", sandbox="prod", flow_id=flows[0].id, status="success") == 1

        await eventually(counted, what="the run counted per flow")
    assert "refused a batched query" in log.read_text()


def shards_in_another_process(ids: list[str], hash_seed: str) -> list[int]:
    """shard_of for each ID and counts 2, 3 and 7, computed by a new interpreter."""
    code = (
        "import json, sys\n"
        "from exporter.config.shard import shard_of\n"
        "print(json.dumps([shard_of(f, n) for f in json.load(sys.stdin) for n in (2, 3, 7)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(ids), capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_shards_partition_the_flows_exactly():
    rng = random.Random(5)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3000)]
    for count in (1, 2, 3, 7):
        shards = [Shard(i, count) for i in range(count)]
        owners = [[s.index for s in shards if s.owns(f)] for f in ids]
        assert all(len(o) == 1 for o in owners)  # each flow on exactly one replica
        sizes = [sum(1 for o in owners if o == [i]) for i in range(count)]
        assert min(sizes) > 0.8 * len(ids) / count  # and spread evenly
    # Stable: the same answer in every process, whatever the case of the ID.
    assert shard_of("c9cef9cb-c934-4467-8ef9-cbc934546741", 3) == shard_of("C9CEF9CB-C934-4467-8EF9-CBC934546741", 3)
    sample = ids[:200]
    here = [shard_of(f, n) for f in sample for n in (2, 3, 7)]
    for seed in ("1", "2"):  # other replicas are other processes: another hash seed must not matter
        assert shards_in_another_process(sample, seed) == here


def test_shard_flag_forms():
    assert parse_shard("2/5") == Shard(2, 5)
    assert parse_shard("ordinal/3", env={"HOSTNAME": "aep-flow-exporter-2"}) == Shard(2, 3)
    assert parse_shard("ordinal/3", env={"POD_NAME": "x-0", "HOSTNAME": "y-1"}) == Shard(0, 3)
    for bad in ("3/3", "a/b", "1", "ordinal/3"):
        with pytest.raises(ValueError):
            parse_shard(bad, env={"HOSTNAME": "no-ordinal-here"})


async def test_two_replicas_split_the_flows(sim, world, tmp_path):
    for i in range(20):
        world.add_flow("prod", f"flow-{i}")
    (tmp_path / "c.yaml").write_text(config_yaml(sim, extra="state_file: null\n"))
    seen = []
    for index in (0, 1):
        env = {"AEP_EXPORTER_SHARD": f"{index}/2"} if index else {}
        args = () if index else ("--shard", "0/2")
        async with ExporterProcess("--config.file", str(tmp_path / "c.yaml"), *args, env=env) as exp:
            await eventually(lambda: polled(exp), what="first cycle")
            m = await scrape(exp.url)
            assert value(m, "aep_exporter_shard", index=str(index), count="2") == 1
            seen.append({dict(k)["flow_id"] for k in series(m, "aep_exporter_flow_up")})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(world.flows)


# Tokens that grow with the query they continue, and a request-line limit (8 KB, as gateways
# commonly cap it) refused three ways that name no size: a 100-flow listing's second page with our
# filters re-sent passes it, while the link as given fits.
_GROWING_TOKENS = {
    "hostile": HOSTILE,
    "adobe_400": HOSTILE.but(request_line_body="adobe"),
    "closed": HOSTILE.but(request_line_body="close"),
}


@pytest.mark.parametrize("variation", list(_GROWING_TOKENS))
async def test_tokens_that_carry_the_query_keep_cycles_batched_and_cheap(sim, world, tmp_path, variation):
    """300 flows whose listings run to several pages of 20: a steady cycle costs at most one
    request per 5 flows (the later pages follow the link as given once tokens are seen to carry
    the question), and not one flow goes per flow."""
    sim.profile = _GROWING_TOKENS[variation]
    flows = [world.add_flow("prod", f"flow-{i:03d}") for i in range(300)]
    for f in flows:
        for age in (90_000, 60_000):
            world.finish_run(world.start_run(f.id, created_ms=world.now_ms() - age).id)
    extra = "state_file: null\nmax_url_length: 16384\n"
    (tmp_path / "c.yaml").write_text(config_yaml(sim, extra=extra))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml")) as exp:
        await eventually(lambda: polled(exp), timeout=30, what="first cycle")
        steady = await one_cycle_of_requests(exp)
        m = await scrape(exp.url)
        assert value(m, "aep_exporter_fetch_strategy", sandbox="prod", strategy="batched") == 1
        assert sum(series(m, "aep_exporter_flow_up").values()) == len(world.flows)  # the seed flow too
        assert steady <= len(world.flows) / 5, steady


async def test_every_page_of_a_listing_keeps_to_max_url_length(sim, world, tmp_path):
    """No gateway limit at all, tokens that grow with the query, and the default budget (6144):
    no request line passes the budget, on the first page or any after it, and the listings stay
    batched (the later pages follow the link as given, whose token alone fits)."""
    sim.profile = HOSTILE.but(max_request_line=None)
    flows = [world.add_flow("prod", f"flow-{i:03d}") for i in range(300)]
    for f in flows:
        for age in (90_000, 60_000):
            world.finish_run(world.start_run(f.id, created_ms=world.now_ms() - age).id)
    (tmp_path / "c.yaml").write_text(config_yaml(sim, extra="state_file: null\n"))
    async with ExporterProcess("--config.file", str(tmp_path / "c.yaml")) as exp:
        await eventually(lambda: polled(exp), timeout=30, what="first cycle")
        await one_cycle_of_requests(exp)
        m = await scrape(exp.url)
    assert sum(series(m, "aep_exporter_flow_up").values()) == len(world.flows)
    lines = [r["line_length"] for r in sim.requests if r["path"].endswith("/runs")]
    assert max(lines) <= 6144, max(lines)
    assert len(lines) < len(world.flows), len(lines)  # batched, pages after the first included
