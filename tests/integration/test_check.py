"""`--check` promises what the daemon does: it runs the daemon's first cycle (full-size chunks,
every page), so its verdict is the one `--once` and the daemon reach, even where only a second
page shows how Adobe behaves."""

from __future__ import annotations

import re

import pytest
from conftest import config_yaml, run_cli
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import HOSTILE, ApiProfile

FLOWS = 100
TOKEN = 6000
# Pages of 20 and tokens of 6 KB that hold a position only (the filters are sent again with them):
# a first page for 100 flows asks ~4 KB, its second page ~10 KB, past a gateway's 8 KB limit,
# which answers a bare HTML 400. Probes of two flows never get a second page here.
SECOND_PAGE_TOO_LONG = ApiProfile(
    page_cap=20,
    token_length=TOKEN,
    token_carries_query=False,
    max_request_line=8192,
    request_line_status=400,
    request_line_body="html",
)


def _metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _once_verdict(text: str, sandbox: str) -> dict[str, str]:
    """What `--once`'s exposition says the cycle reached, in --check's words."""
    m = _metrics(text)

    def labelled(name: str, label: str, **match: str) -> str:
        for labels, v in m.get(name, {}).items():
            d = dict(labels)
            if v == 1 and d.get("sandbox") == sandbox and all(d.get(k) == w for k, w in match.items()):
                return d[label]
        return "none"

    def number(name: str) -> str:
        return str(int(m[name][(("sandbox", sandbox),)]))

    return {
        "lists": labelled("aep_exporter_api_behaviour", "finding", detail="lists"),
        "strategy": labelled("aep_exporter_fetch_strategy", "strategy"),
        "largest page": number("aep_exporter_page_items_max"),
        "longest token": number("aep_exporter_continuation_token_max_bytes"),
        "IDs a request": number("aep_exporter_batch_chunk_size"),
    }


def _check_verdict(out: str, sandbox: str) -> dict[str, str]:
    line = next(ln for ln in out.splitlines() if ln.startswith(f"info  {sandbox}  (api)"))
    strategy = re.search(r"strategy: (\w+)", line)
    return {
        "lists": re.search(r"lists \(flowId==a,b\): (\w+)", line)[1],  # type: ignore[index]
        "strategy": strategy[1] if strategy else "none",
        "largest page": re.search(r"largest page: (\d+)", line)[1],  # type: ignore[index]
        "longest token": re.search(r"longest continuation token: (\d+) bytes", line)[1],  # type: ignore[index]
        "IDs a request": re.search(r"IDs a request: (\d+)", line)[1],  # type: ignore[index]
    }


@pytest.mark.parametrize(
    ("profile", "carry"),
    [(SECOND_PAGE_TOO_LONG, "unknown"), (HOSTILE, "yes")],
    ids=["position_tokens", "tokens_carry_the_query"],
)
async def test_check_reaches_the_verdict_of_the_daemons_first_cycle(sim, world, tmp_path, profile, carry):
    """Under 6 KB tokens that hold a position, and under tokens that grow with the query (the
    bench's hostile Adobe), --check's verdict is --once's, and it says how tokens behave (the
    position tokens' chunks of 6 flows never reach a second page where both forms could be
    compared: unknown, and not needed)."""
    world.runs.clear()
    world.runs_by_flow.clear()
    world.flows.clear()
    for i in range(FLOWS):
        flow = world.add_flow("prod", f"flow-{i}")
        for j in range(2):
            world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 60_000 * (j + 1)).id)
    sim.profile = profile
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra="state_file: null\nfetch_strategy: batched\n"))
    env = {"TEST_AEP_SECRET": world.client_secret}

    once = await run_cli("--config.file", str(config), "--once", env=env)
    assert once.code == 0, once.err
    check = await run_cli("--config.file", str(config), "--check", env=env)
    assert check.code == 0, check.out + check.err

    daemon = _once_verdict(once.out, "prod")
    if profile is SECOND_PAGE_TOO_LONG:
        assert daemon["longest token"] == str(TOKEN), daemon  # the cycle reached second pages
    else:  # tokens of 64 bytes and 4/3 of the query's: they grow with the chunk
        assert int(daemon["longest token"]) > 2000, daemon
    assert f"tokens carry the query: {carry};" in check.out, check.out
    assert _check_verdict(check.out, "prod") == daemon, check.out
    assert f"first cycle: {FLOWS} of {FLOWS} flow(s) polled" in check.out
    assert not (tmp_path / "state.json").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
