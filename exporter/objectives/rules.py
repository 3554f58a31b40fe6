"""The Prometheus rule file: per objective, one group of recording rules (the SLI's error ratio
over every window, the runs each window holds, the budget remaining) and the burn-rate alerts.

The recording rules are named by the workbook's nominal window (`aep_objective:error_ratio:rate1h`)
whatever range a sparse-run objective stretches it to, so the dashboard and the alerts read one
name per window for every objective; the range itself is in the rule's expression.
"""

from __future__ import annotations

from typing import Any

import yaml

from exporter.objectives import promql
from exporter.objectives.model import FRESHNESS, RUN_SUCCESS, Objective
from exporter.objectives.windows import ALERT_NAMES, PAIRS, SEVERITY, Pair, actual, duration, nominal_windows

STALE = "aep_objective:data_stale"
RATIO = "aep_objective:error_ratio:rate{}"
RUNS = "aep_objective:runs:increase{}"
WINDOW_RATIO = "aep_objective:error_ratio:window"
REMAINING = "aep_objective:error_budget:remaining"
TARGET = "aep_objective:target"
JOIN = "flow_name, source_name, target_name, dataset_id, instance"
RUNBOOK = "docs/objectives.md#when-an-objective-alert-fires"
LONG = {p.long for p in PAIRS}


def labels(o: Objective) -> dict[str, str]:
    return {"objective": o.name, "objective_kind": o.kind}


def _record(name: str, expr: str, o: Objective) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": labels(o)}


def _ratio(o: Objective, window: float) -> str:
    w = duration(window)
    return promql.stale_ratio(o, STALE, w) if o.kind == FRESHNESS else promql.run_error_ratio(o, w)


def recording_rules(o: Objective) -> list[dict[str, Any]]:
    rules = [_record(TARGET, f"vector({promql.number(o.target)})", o)]
    if o.kind == FRESHNESS:
        rules.append(_record(STALE, promql.stale(o), o))
    for nominal in nominal_windows():
        rules.append(_record(RATIO.format(duration(nominal)), _ratio(o, actual(o, nominal)), o))
        if o.kind == RUN_SUCCESS and nominal in LONG:  # the min_runs guard's counts
            rules.append(_record(RUNS.format(duration(nominal)), promql.run_count(o, duration(actual(o, nominal))), o))
    rules.append(_record(WINDOW_RATIO, _ratio(o, o.window), o))
    budget = promql.number(o.budget)
    rules.append(_record(REMAINING, f"1 - {WINDOW_RATIO}{{objective={promql.quote(o.name)}}} / {budget}", o))
    return rules


def alert_expr(o: Objective, pair: Pair) -> str:
    sel = f"{{objective={promql.quote(o.name)}}}"
    limit = promql.number(pair.factor * o.budget)
    long_, short = duration(pair.long), duration(pair.short)
    on = "on (objective, sandbox, flow_id)"
    parts = [f"{RATIO.format(long_)}{sel} > {limit}", f"and {on} {RATIO.format(short)}{sel} > {limit}"]
    if o.kind == RUN_SUCCESS:
        parts.append(f"and {on} {RUNS.format(long_)}{sel} >= {o.min_runs}")
    body = "\n    ".join(parts)
    # topk: one info series a flow, even where two exporters (an HA pair) both watch it.
    return (
        f"(\n    {body}\n)\n  * on (sandbox, flow_id) group_left ({JOIN}) topk by (sandbox, flow_id) (1, aep_flow_info)"
    )


def _what(o: Objective) -> str:
    if o.kind == FRESHNESS:
        return f"of the time its newest data was older than {duration(o.threshold or 0)}"
    return "of its completed runs failed"


FLOW_TEMPLATE = (
    'Dataflow "{{ $labels.flow_name }}" ({{ $labels.flow_id }}{{ with $labels.source_name }}, {{ . }} → '
    "{{ with $labels.dataset_id }}dataset {{ . }}{{ else }}{{ $labels.target_name }}{{ end }}{{ end }})"
    " in sandbox {{ $labels.sandbox }}"
)
ADOBE_TEMPLATE = (
    '{{ with printf "aep_flow_adobe_link_info{sandbox=%q,flow_id=%q}" $labels.sandbox $labels.flow_id | query }}'
    ' In Adobe: {{ . | first | label "url" }}{{ end }}'
)


def page_url(
    exporter_url: str | None, instance: str = "{{ $labels.instance }}", flow_id: str = "{{ $labels.flow_id }}"
) -> str:
    """The flow's page on the exporter: at --exporter-url, else at the address Prometheus scrapes."""
    base = exporter_url.rstrip("/") if exporter_url else f"http://{instance}"
    return f"{base}/flows/{flow_id}"


def texts(o: Objective, pair: Pair, flow: str, page: str, adobe: str) -> dict[str, str]:
    """The annotations, from the flow's words, its page and its Adobe link (templates in the rule
    file; the values an alert renders them to in the generated tests)."""
    span = f"{duration(actual(o, pair.long))} and the last {duration(actual(o, pair.short))}"
    goal = f"{o.target * 100:.10g}% over {duration(o.window)}"
    return {
        "summary": f"Objective {o.name} is burning its error budget {pair.factor:g}× too fast.",
        "description": (
            f"{flow}: more than {promql.number(pair.factor * o.budget * 100)}% {_what(o)} over the last {span}, "
            f"{pair.factor:g}× what the objective {o.name} ({goal}) allows. Flow page: {page}.{adobe}"
        ),
        "flow_page": page,
        "runbook_url": RUNBOOK,
    }


def alert_annotations(o: Objective, pair: Pair, exporter_url: str | None) -> dict[str, str]:
    return texts(o, pair, FLOW_TEMPLATE, page_url(exporter_url), ADOBE_TEMPLATE)


def alert(o: Objective, pair: Pair, exporter_url: str | None) -> dict[str, Any]:
    return {
        "alert": ALERT_NAMES[pair.severity],
        "expr": alert_expr(o, pair),
        "labels": {
            "objective": o.name,  # also on the series; here so that each objective's alerts are rules of their own
            "severity": SEVERITY[pair.severity],
            "slo_severity": pair.severity,
            "long_window": duration(pair.long),
            "short_window": duration(pair.short),
        },
        "annotations": alert_annotations(o, pair, exporter_url),
    }


def group(o: Objective, exporter_url: str | None = None) -> dict[str, Any]:
    rules = recording_rules(o) + [alert(o, p, exporter_url) for p in PAIRS]
    return {"name": f"aep-objectives.{o.name}", "rules": rules}


def rule_file(objectives: tuple[Objective, ...], exporter_url: str | None = None) -> dict[str, Any]:
    return {"groups": [group(o, exporter_url) for o in objectives]}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as a person would write them."""


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str)


def dump(document: dict[str, Any], header: str = "") -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    return header + body
