"""Every run shape Adobe documents, served verbatim by the simulator and read off /metrics of the
exporter run as a user runs it (the CLI, its own process).

Each `tests/payloads/NAME.json` is a run written in one documented shape; `NAME.expected.json`
names the document it follows and the exact values it must produce: `values` (series present with
that value) and `absent` (no series at all for this flow with those labels: Adobe did not report
the value). The run appears after the exporter's first poll, as a new run would, so counters count
it. The flow is polled per flow: the payloads keep their documented (old) timestamps verbatim, and
the batched strategy would ask only for runs created since its last listing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import ExporterProcess, config_yaml, eventually, scrape

from exporter.adobe.models import Flow, Run
from exporter.adobe.runfacts import run_facts
from exporter.simulator import World

PAYLOADS = Path(__file__).parent.parent / "payloads"
NAMES = sorted(p.name.removesuffix(".expected.json") for p in PAYLOADS.glob("*.expected.json"))


def load(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    run = json.loads((PAYLOADS / f"{name}.json").read_text())
    expected = json.loads((PAYLOADS / f"{name}.expected.json").read_text())
    return run, expected


def e2e_params(names: list[str]) -> list[Any]:
    return list(names)


@pytest.fixture
def world() -> World:
    return World()  # empty: each test adds the one flow its payload belongs to


def test_every_payload_names_its_source_and_its_expectations():
    assert len(NAMES) >= 8
    for name in NAMES:
        run, expected = load(name)
        assert expected["source"] and expected["values"] and expected["absent"], name
        assert isinstance(run.get("id"), str), name


@pytest.mark.parametrize("name", NAMES)
def test_payload_parses_to_a_run_ordered_by_its_documented_time(name):
    raw, expected = load(name)
    run = Run.from_json(raw)
    assert run is not None
    facts = run_facts(run)
    assert facts.run_id == raw["id"]
    assert facts.order_time == pytest.approx(expected["order_time"])
    assert facts.created == (raw["createdAt"] / 1000 if "createdAt" in raw else None)


def add_flow(world: World, spec: dict[str, Any]) -> str:
    if "raw" in spec:
        raw = json.loads((PAYLOADS / spec["raw"]).read_text())
        return world.add_flow("prod", raw["name"], raw["id"], raw=raw).id
    kw = {k: v for k, v in spec.items() if k not in ("id", "name")}
    return world.add_flow("prod", spec["name"], spec["id"], **kw).id


def sample(m: dict, name: str, labels: dict[str, str]) -> list[float]:
    want = set(labels.items())
    return [v for (n, lbl), v in m.items() if n == name and want <= set(lbl)]


async def metrics_after_run(sim, tmp_path, name: str) -> tuple[dict, dict[str, str], dict[str, Any]]:
    """Start the exporter on the payload's flow, serve the payload once the first poll is done,
    and return /metrics once the run has been taken in."""
    raw, expected = load(name)
    flow_id = add_flow(sim.world, expected["flow"])
    sim.page_links = expected["page_links"]
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra="fetch_strategy: per_flow\nstate_file: null\n"))
    key = {"sandbox": "prod", "flow_id": flow_id}
    async with ExporterProcess("--config.file", str(config), log_path=str(tmp_path / "log")) as exp:

        async def ready() -> bool:
            async with aiohttp.ClientSession() as s:
                async with s.get(exp.base + "/ready") as r:
                    return r.status == 200

        await eventually(ready, what="/ready")
        sim.world.serve_run(flow_id, raw)
        wait_name, wait_labels, wait_value = expected["wait_for"]

        async def taken_in() -> dict | None:
            m = await scrape(exp.url)
            return m if sample(m, wait_name, {**key, **wait_labels}) == [wait_value] else None

        m = await eventually(taken_in, timeout=10, what=f"{wait_name}{wait_labels} == {wait_value} for {name}")
    return m, key, expected


def check(m: dict, key: dict[str, str], values: list, absent: list) -> list[str]:
    """Every difference from the expectations, each a line (all at once: easier to read than the first)."""
    problems = []
    for name, labels, want in values:
        got = sample(m, name, {**key, **labels})
        if len(got) != 1 or got[0] != pytest.approx(want, abs=1e-6):
            problems.append(f"{name}{labels}: want {want}, got {got or 'absent'}")
    for name, labels in absent:
        got = sample(m, name, {**key, **labels})
        if got:
            problems.append(f"{name}{labels}: want absent, got {got}")
    return problems


@pytest.mark.parametrize("name", e2e_params(NAMES))
async def test_payload_on_metrics(sim, tmp_path, name):
    m, key, expected = await metrics_after_run(sim, tmp_path, name)
    assert check(m, key, expected["values"], expected["absent"]) == []


@pytest.mark.parametrize("name", [n for n in NAMES if load(n)[1].get("new_record_families", {}).get("values")])
async def test_new_record_families_on_metrics(sim, tmp_path, name):
    m, key, expected = await metrics_after_run(sim, tmp_path, name)
    families = expected["new_record_families"]
    assert check(m, key, families["values"], families["absent"]) == []


def _mutations(value: Any, path: tuple = ()) -> Any:
    """(path, replacement) for every value in the payload: null, a string, a list, a negative number."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _mutations(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _mutations(v, (*path, i))
    for replacement in (None, "x", [], {}, -1):
        if path and replacement != value:
            yield path, replacement


def _replaced(doc: Any, path: tuple, replacement: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = replacement
    return doc


@pytest.mark.parametrize("name", NAMES)
def test_any_value_null_or_ill_typed_never_crashes_nor_invents_a_number(name):
    """Each value of each payload replaced in turn by null, a string, a list, an object or -1: the
    run still parses (or, without an id, is skipped), and no count is ever negative."""
    raw, _ = load(name)
    flow_file = load(name)[1]["flow"].get("raw")
    flow = json.loads((PAYLOADS / flow_file).read_text()) if flow_file else None
    for path, replacement in _mutations(raw):
        run = Run.from_json(_replaced(raw, path, replacement))
        if path == ("id",) and replacement in (None, [], {}):
            assert run is None, path
            continue
        assert run is not None, path
        facts = run_facts(run)
        for field in ("input_records", "output_records", "failed_records", "input_bytes", "output_bytes"):
            assert getattr(facts, field) is None or getattr(facts, field) >= 0, (path, replacement, field)
        assert facts.duration is None or facts.duration >= 0, (path, replacement)
    if flow is not None:
        for path, replacement in _mutations(flow):
            Flow.from_json(_replaced(flow, path, replacement))
