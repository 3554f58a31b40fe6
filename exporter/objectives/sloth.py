"""A Sloth `prometheus/v1` spec of the objectives, for teams whose Prometheus rules come from Sloth.

Sloth's windows are its own (the workbook's, never stretched), so a run-success objective over
sparse runs gets neither `run_interval`'s stretching nor the `min_runs` guard there; and a
freshness SLI is a share of time, which Sloth reads from our `aep_objective:data_stale` recording
rule: load that rule (objectives.rules.yml) beside Sloth's output.
"""

from __future__ import annotations

from typing import Any

from exporter.objectives import promql
from exporter.objectives.model import FRESHNESS, Objective
from exporter.objectives.rules import STALE

SERVICE = "aep-flows"


def sli(o: Objective) -> dict[str, Any]:
    w = "{{.window}}"
    if o.kind == FRESHNESS:
        return {"raw": {"error_ratio_query": promql.stale_ratio(o, STALE, w)}}
    bad = f"sum by ({promql.FLOW}) (increase({promql.BAD_RUNS}[{w}]))\n{promql.selected(o)}"
    return {"events": {"error_query": bad, "total_query": promql.run_count(o, w)}}


def slo(o: Objective) -> dict[str, Any]:
    camel = "".join(part.capitalize() for part in o.name.replace(".", "-").replace("_", "-").split("-"))
    return {
        "name": o.name,
        "objective": float(promql.number(o.target * 100)),
        "description": o.description or f"{o.kind} of the selected AEP dataflows",
        "labels": {"objective_kind": o.kind},
        "sli": sli(o),
        "alerting": {
            "name": f"AepObjective{camel}",
            "annotations": {"summary": f"Objective {o.name} is burning its error budget too fast."},
            "page_alert": {"labels": {"severity": "critical"}},
            "ticket_alert": {"labels": {"severity": "warning"}},
        },
    }


def spec(objectives: tuple[Objective, ...]) -> dict[str, Any]:
    return {"version": "prometheus/v1", "service": SERVICE, "slos": [slo(o) for o in objectives]}
