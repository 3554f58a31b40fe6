"""Uptime under token churn: IMS tokens living 3 s, 3% of requests meeting a token revoked just
before, beside 10% 5xx, 5% 429 and 3% truncated bodies. The daemon, as a user runs it, must keep
its flows up at least 90% of the time (`aep_exporter_flow_up`, sampled on /metrics all along), and
end with counters equal to the simulator's ground truth. And the protection of IMS holds: a wrong
secret costs a handful of token requests in 10 s, however many flows."""

from __future__ import annotations

import asyncio
import random
import time

from conftest import ExporterProcess, config_yaml, eventually, scrape, value
from test_faults import observed, step, truth

from exporter.simulator import Chaos

CHURN_SECONDS = 12.0
FLOWS_PER_SANDBOX = 20  # enough requests a second for revocations to come often
RETRY = "retry: {max_attempts: 6, max_time: 20s, initial_backoff: 50ms, max_backoff: 500ms}\n"


async def test_flows_stay_up_under_token_churn_and_count_exactly_once(sim, world, tmp_path, strategy):
    rng = random.Random(24)
    world.token_lifetime = 3
    world.runs.clear()
    world.runs_by_flow.clear()
    world.flows.clear()
    flows = [world.add_flow(sb, f"flow-{sb}-{i}").id for sb in ("prod", "dev") for i in range(FLOWS_PER_SANDBOX)]
    for flow_id in flows:
        for i in range(3):
            world.finish_run(world.start_run(flow_id, created_ms=world.now_ms() - 60_000 * (i + 2)).id)
    baseline = {r.id for r in world.runs.values() if r.completed}
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra=f"state_file: null\nfetch_strategy: {strategy}\n{RETRY}"))
    async with ExporterProcess("--config.file", str(config), log_path=str(tmp_path / "exporter.log")) as exp:

        def ups(m) -> list[bool]:
            return [value(m, "aep_exporter_flow_up", sandbox=world.flows[f].sandbox, flow_id=f) == 1 for f in flows]

        async def all_up():
            return all(ups(await scrape(exp.url)))

        await eventually(all_up, what="every flow baselined")
        sim.chaos = Chaos(server_error=0.10, throttle=0.05, truncate=0.03, revoke=0.03, retry_after="0.1", seed=24)
        issued_before = world.tokens_issued
        samples: list[float] = []
        deadline = time.monotonic() + CHURN_SECONDS
        while time.monotonic() < deadline:
            step(world, rng, flows)
            up = ups(await scrape(exp.url))
            samples.append(sum(up) / len(up))
            await asyncio.sleep(0.2)
        sim.chaos = None
        uptime = sum(samples) / len(samples)
        assert world.tokens_issued - issued_before >= CHURN_SECONDS / 3, "tokens did churn"
        print(f"flows up {uptime:.1%} of {len(samples)} samples, {world.tokens_issued - issued_before} tokens")
        assert uptime >= 0.9, f"flows up {uptime:.0%} of {len(samples)} samples"

        for run in list(world.runs.values()):
            if not run.completed:
                world.finish_run(run.id, rng.choice(["success", "failed"]))

        async def matches():
            m = await scrape(exp.url)
            return all(observed(m, world.flows[f].sandbox, f) == truth(world, f, baseline) for f in flows)

        await eventually(matches, timeout=30, what="counters to equal the ground truth")


async def test_a_wrong_secret_costs_a_handful_of_token_requests_in_10_seconds(sim, world, tmp_path):
    world.flows.clear()
    for i in range(50):
        world.add_flow("prod", f"flow-{i}")
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra="state_file: null\nfetch_strategy: per_flow\n"))
    env = {"TEST_AEP_SECRET": "rotated-in-adobe-not-here-42"}
    async with ExporterProcess("--config.file", str(config), env=env, log_path=str(tmp_path / "exporter.log")) as exp:
        await eventually(lambda: sim.token_requests, what="the first token request")
        started = time.monotonic()

        async def ten_seconds_of_polling():  # /metrics answering all along, the cycles going on
            return await scrape(exp.url) is not None and time.monotonic() - started >= 10

        await eventually(ten_seconds_of_polling, timeout=20, what="10 s of polling")
        # The backoff (1 s, 2 s, 4 s…): requests at 0, 1, 3 and 7 s, one more on a slow machine.
        assert 1 <= len(sim.token_requests) <= 5, len(sim.token_requests)
        assert not [r for r in sim.requests if r["path"].startswith("/data/")]
