"""The generated cases as a promtool test file: each story's input series for its example flow, the
alerts expected at its end (labels and rendered annotations), and the budget still left when healthy.
"""

from __future__ import annotations

import uuid
from typing import Any

from exporter.objectives import cases, examples, rules
from exporter.objectives.model import FRESHNESS, Objective
from exporter.objectives.story import EVAL, STEP, Scenario, cumulative
from exporter.objectives.windows import ALERT_NAMES, PAIRS, SEVERITY, duration

SCRAPE = {"job": "aep-flow-exporter", "instance": "exporter:7941"}
INFO = {"state": "enabled", "frequency": "hour", "target_name": "Data Lake", "dataset_id": "5f3c3cedb2805c194ff0b69a"}


def _sel(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f"{k}={rules.promql.quote(v)}" for k, v in labels.items())
    return f"{name}{{{inner}}}"


def input_series(flow: dict[str, str], s: Scenario, adobe_url: str | None) -> list[dict[str, str]]:
    n = len(s.bad)
    key = dict(SCRAPE, sandbox=flow["sandbox"], flow_id=flow["flow_id"])
    out = [{"series": _sel("aep_flow_info", {**SCRAPE, **INFO, **flow}), "values": f"1x{n - 1}"}]
    if adobe_url:
        out.append({"series": _sel("aep_flow_adobe_link_info", {**key, "url": adobe_url}), "values": f"1x{n - 1}"})
    if s.kind == FRESHNESS:
        now = [float(i * STEP) for i in range(n)]
        data = [t - age for t, age in zip(now, s.bad)]
        for name, values in (
            ("aep_flow_last_success_timestamp_seconds", now),
            ("aep_flow_last_completed_run_end_timestamp_seconds", now),
            ("aep_flow_last_completed_run_window_end_timestamp_seconds", data),
        ):
            out.append({"series": _sel(name, key), "values": examples.notation(values)})
        return out
    good = cumulative([r - b for r, b in zip(s.runs, s.bad)])
    bad = cumulative(s.bad)
    for status, values in (("success", good), ("failed", bad)):
        out.append(
            {"series": _sel("aep_flow_runs_total", {**key, "status": status}), "values": examples.notation(values)}
        )
    return out


def _alert(o: Objective, pair, flow: dict[str, str], exporter_url: str | None, adobe_url: str | None) -> dict:
    words = f'Dataflow "{flow["flow_name"]}" ({flow["flow_id"]}, {flow["source_name"]} → dataset {INFO["dataset_id"]})'
    words += f" in sandbox {flow['sandbox']}"
    page = rules.page_url(exporter_url, SCRAPE["instance"], flow["flow_id"])
    labels = {
        "severity": SEVERITY[pair.severity],
        "slo_severity": pair.severity,
        "long_window": duration(pair.long),
        "short_window": duration(pair.short),
        **rules.labels(o),
        "sandbox": flow["sandbox"],
        "flow_id": flow["flow_id"],
        "flow_name": flow["flow_name"],
        "source_name": flow["source_name"],
        "target_name": INFO["target_name"],
        "dataset_id": INFO["dataset_id"],
        "instance": SCRAPE["instance"],
    }
    adobe = f" In Adobe: {adobe_url}" if adobe_url else ""
    return {"exp_labels": labels, "exp_annotations": rules.texts(o, pair, words, page, adobe)}


def case(o: Objective, s: Scenario, verdicts: dict, flow: dict, exporter_url: str | None, link: bool) -> dict:
    adobe_url = (
        f"https://experience.adobe.com/#/@acme/sname:{flow['sandbox']}/platform/source/dataflows/{flow['flow_id']}/activity"
        if link
        else None
    )
    at = f"{s.end * STEP // 60}m"
    tests = []
    for severity, alertname in ALERT_NAMES.items():
        alerts = [
            _alert(obj, p, flow, exporter_url, adobe_url)
            for obj, pairs in verdicts.items()
            for p in PAIRS
            if p in pairs and p.severity == severity
        ]
        tests.append({"eval_time": at, "alertname": alertname, "exp_alerts": alerts})
    out = {
        "name": f"{o.name}: {s.title}",
        "interval": f"{STEP}s",
        "input_series": input_series(flow, s, adobe_url),
        "alert_rule_test": tests,
    }
    if not any(verdicts.values()):  # nothing burns: every selecting objective has budget left
        out["promql_expr_test"] = [budget_left(verdicts, flow, at)]
    return out


def budget_left(verdicts: dict, flow: dict, at: str) -> dict:
    expr = f"{rules.REMAINING}{{flow_id={rules.promql.quote(flow['flow_id'])}}} > bool 0"
    samples = []
    for obj in verdicts:
        labels = {**rules.labels(obj), "sandbox": flow["sandbox"], "flow_id": flow["flow_id"]}
        samples.append(
            {"labels": "{" + ",".join(f"{k}={rules.promql.quote(v)}" for k, v in labels.items()) + "}", "value": 1}
        )
    return {"expr": expr, "eval_time": at, "exp_samples": samples}


def objective_cases(objectives: tuple[Objective, ...], o: Objective, exporter_url: str | None) -> list[dict]:
    flow_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"aep-objective/{o.name}"))
    flow = examples.flow_labels(o.selector, flow_id)
    if flow is None:  # a selector no example value could satisfy: see docs/objectives.md
        return []
    out, titles = [], set()
    judged = cases.Judged(objectives, o, flow)
    stories = [cases.burn_for(judged, p) for p in PAIRS]
    for found, link in zip(stories, (True, False, False, False)):
        if found is not None and found[0].title not in titles:
            titles.add(found[0].title)
            out.append(case(o, found[0], found[1], flow, exporter_url, link))
    extra = [cases.healthy(o, objectives, flow)] + ([cases.sparse(o)] if o.kind != FRESHNESS else [])
    for s in extra:
        verdicts = cases.expected(objectives, flow, s)
        if verdicts is not None:
            out.append(case(o, s, verdicts, flow, exporter_url, False))
    return out


def test_file(objectives: tuple[Objective, ...], rule_file: str, exporter_url: str | None = None) -> dict[str, Any]:
    tests = [c for o in objectives for c in objective_cases(objectives, o, exporter_url)]
    return {"rule_files": [rule_file], "evaluation_interval": f"{EVAL * STEP}s", "tests": tests}
