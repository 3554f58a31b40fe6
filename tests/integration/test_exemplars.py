"""Exemplars: in the OpenMetrics exposition, a flow's aep_flow_runs_total (the line of the run's
status) and aep_flow_failed_records_total name the latest counted run, a run the simulator
created; the text format carries none."""

from __future__ import annotations

from conftest import FAST_RETRY, make_config
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.runtime import open_exporter
from exporter.simulator import World

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def exemplars(body: bytes) -> dict[tuple[str, tuple], tuple[dict, float, float | None]]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.exemplar is not None:
                key = (s.name, tuple(sorted(s.labels.items())))
                stamp = s.exemplar.timestamp
                found[key] = (s.exemplar.labels, s.exemplar.value, None if stamp is None else float(stamp))
    return found


async def test_the_latest_counted_run_is_the_exemplar(sim, world: World):
    flow = world.add_flow("prod", "orders")
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        await exp.poller.poll_once()  # the baseline: nothing counted, no exemplar
        await exp.render.refresh()
        assert exemplars(exp.render.body(OPENMETRICS, "")[0]) == {}
        first = world.start_run(flow.id)
        run = world.finish_run(world.start_run(flow.id).id, "partial", input_records=50, failed_records=3)
        world.finish_run(first.id, "success", failed_records=0, completed_ms=run.completed_ms - 5000)
        await exp.poller.poll_once()
        await exp.render.refresh()
        om, headers = exp.render.body(OPENMETRICS, "")
        text, _ = exp.render.body("text/plain", "")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    found = exemplars(om)  # parses: the exposition is valid OpenMetrics with its exemplars
    key = (("flow_id", flow.id), ("sandbox", "prod"))
    latest = world.runs[run.id]
    ended = latest.completed_ms / 1000
    assert found == {
        ("aep_flow_runs_total", (*key, ("status", "success"))): ({"run_id": run.id}, 1.0, ended),
        ("aep_flow_failed_records_total", key): ({"run_id": run.id}, 3.0, ended),
    }
    assert first.id != run.id  # of two runs counted in one poll, the one that ended last
    assert b" # {" not in text  # the text format has no exemplars
