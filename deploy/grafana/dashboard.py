"""The Grafana dashboard, as code: writes deploy/grafana/aep-flow-exporter.json with Grafana's
own grafana-foundation-sdk, so the shipped JSON is this script's output (tests/system/test_deploy.py
fails when they differ). Edit the panels here, then run from the repository root:

    .venv/bin/python deploy/grafana/dashboard.py

Every panel's PromQL runs against a real Prometheus in tests/system/test_deploy_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    GridPos,
    MatcherConfig,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "aep-flow-exporter.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Joins a flow's series to its names (aep_flow_info: the flow's, its source connector's, its
# dataset) and applies the sandbox, source and flow variables.
NAMED = (
    " * on (sandbox, flow_id) group_left (flow_name, source_name, dataset_id)"
    ' aep_flow_info{sandbox=~"$sandbox", source_name=~"$source", flow_name=~"$flow"}'
)
# A flow table's data link to the flow's activity page in Adobe's UI (aep_flow_adobe_link_info's url).
ADOBE_LINK = {"title": "Open the flow in Adobe", "url": "${__data.fields.url}", "targetBlank": True}
# The labels of the flow tables' rows: which flow, and "source → dataset".
ROW = "sandbox, flow_id, flow_name, source_name, dataset_id"


def _grid(h: int, w: int, x: int, y: int) -> GridPos:
    return GridPos(h=h, w=w, x=x, y=y)


def _query(expr: str, legend: str, ref: str, instant: bool = False, table: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    if instant:
        q = q.instant()
    if table:
        q = q.format(PromQueryFormat.TABLE)
    return q


def _common(panel, panel_id: int, title: str, description: str, grid: GridPos, targets: list, unit: str | None):
    panel = panel.id(panel_id).title(title).description(description).grid_pos(grid).datasource(DATASOURCE)
    panel = panel.targets(targets)
    return panel.unit(unit) if unit else panel


def _timeseries(panel_id, title, description, grid, targets, unit=None, threshold=None) -> timeseries.Panel:
    panel = _common(timeseries.Panel(), panel_id, title, description, grid, targets, unit)
    if threshold is not None:  # a red line at the threshold
        steps = [Threshold(color="green", value=None), Threshold(color="red", value=threshold)]
        panel = panel.thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
        panel = panel.thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
    return panel


def _stat(panel_id, title, description, grid, targets, unit=None) -> stat.Panel:
    return _common(stat.Panel(), panel_id, title, description, grid, targets, unit)


def _table(panel_id, title, description, grid, targets, renames, excluded, unit_overrides=None) -> table.Panel:
    """Instant queries merged into one row per flow; `renames` names the value columns."""
    panel = _common(table.Panel(), panel_id, title, description, grid, targets, None)
    for column, unit in (unit_overrides or {}).items():
        panel = panel.with_override(
            MatcherConfig(id_val="byName", options=column), [DynamicConfigValue(id_val="unit", value=unit)]
        )
    organize = {"excludeByName": dict.fromkeys(excluded, True), "renameByName": renames}
    panel = panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))
    return panel.with_transformation(DataTransformerConfig(id_val="organize", options=organize))


def _variables(d: dashboard.Dashboard) -> dashboard.Dashboard:
    d = d.with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    for name, label, query in (
        ("sandbox", "Sandbox", "label_values(aep_flow_info, sandbox)"),
        ("source", "Source", 'label_values(aep_flow_info{sandbox=~"$sandbox"}, source_name)'),
        ("flow", "Flow", 'label_values(aep_flow_info{sandbox=~"$sandbox", source_name=~"$source"}, flow_name)'),
    ):
        d = d.with_variable(
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query({"query": query, "refId": name})
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
    return d


def build() -> dashboard.Dashboard:
    d = (
        dashboard.Dashboard("AEP Flow Service dataflows")
        .uid("aep-flow-exporter")
        .description("Dataflow runs of Adobe Experience Platform's Flow Service, from aep-flow-exporter.")
        .tags(["adobe", "aep", "aep-flow-exporter"])
        .editable()
        .refresh("1m")
        .time("now-6h", "now")
    )
    d = _variables(d)
    d.with_row(dashboard.Row("Flows").id(1).grid_pos(_grid(1, 24, 0, 0)))
    d.with_panel(
        _table(
            2,
            "Flow status",
            "One row per flow: the latest run's status, how long since the last success, and the latest completed run's records.",
            _grid(9, 24, 0, 1),
            [
                _query(
                    "max by (" + ROW + ", status) ((aep_flow_last_run_status == 1)" + NAMED + ")",
                    "last status",
                    "A",
                    instant=True,
                    table=True,
                ),
                _query(
                    "max by (" + ROW + ") ((time() - aep_flow_last_success_timestamp_seconds)" + NAMED + ")",
                    "since last success",
                    "B",
                    instant=True,
                    table=True,
                ),
                _query(
                    "max by (" + ROW + ") (aep_flow_last_completed_run_input_records" + NAMED + ")",
                    "records in",
                    "C",
                    instant=True,
                    table=True,
                ),
                _query(
                    "max by (" + ROW + ") (aep_flow_last_completed_run_output_records" + NAMED + ")",
                    "records out",
                    "D",
                    instant=True,
                    table=True,
                ),
                _query(
                    "max by (" + ROW + ") (aep_flow_last_completed_run_failed_records" + NAMED + ")",
                    "records failed",
                    "E",
                    instant=True,
                    table=True,
                ),
                _query(
                    "max by (" + ROW + ") (aep_flow_runs_in_flight" + NAMED + ")",
                    "in flight",
                    "F",
                    instant=True,
                    table=True,
                ),
                # The flow's page in Adobe's UI (only with the exporter's experience_tenant set): the
                # flow name's data link below. Without a tenant each row comes with an empty url,
                # so the query still answers for every flow.
                _query(
                    "max by ("
                    + ROW
                    + ", url) ((aep_flow_adobe_link_info"
                    + NAMED
                    + ") or on (sandbox, flow_id)"
                    + ' aep_flow_info{sandbox=~"$sandbox", source_name=~"$source", flow_name=~"$flow"})',
                    "Adobe",
                    "G",
                    instant=True,
                    table=True,
                ),
            ],
            renames={
                "source_name": "source",
                "dataset_id": "dataset",
                "Value #A": "last status (1)",
                "Value #B": "since last success",
                "Value #C": "records in",
                "Value #D": "records out",
                "Value #E": "records failed",
                "Value #F": "runs in flight",
            },
            excluded=["Time", "Value #G"],
            unit_overrides={"since last success": "s"},
        ).with_override(
            MatcherConfig(id_val="byName", options="flow_name"),
            [DynamicConfigValue(id_val="links", value=[ADOBE_LINK])],
        )
    )
    d.with_panel(
        _table(
            3,
            "Error codes of the latest completed runs",
            "Error codes reported anywhere in each flow's latest completed run, with the records reported for each.",
            _grid(8, 12, 0, 10),
            [
                _query(
                    "max by (sandbox, flow_name, source_name, code) ((aep_flow_last_completed_run_error == 1)"
                    + NAMED
                    + ")",
                    "codes",
                    "A",
                    instant=True,
                    table=True,
                ),
                _query(
                    "max by (sandbox, flow_name, source_name, code) (aep_flow_last_completed_run_error_records"
                    + NAMED
                    + ")",
                    "records",
                    "B",
                    instant=True,
                    table=True,
                ),
            ],
            renames={"source_name": "source", "Value #B": "records"},
            excluded=["Time", "Value #A"],
        )
    )
    d.with_panel(
        _timeseries(
            4,
            "Runs in flight",
            "Runs created within lookback that have not completed.",
            _grid(8, 12, 12, 10),
            [_query("sum by (flow_name) (aep_flow_runs_in_flight" + NAMED + ")", "{{flow_name}}", "A")],
        )
    )
    d.with_row(dashboard.Row("Volume").id(5).grid_pos(_grid(1, 24, 0, 18)))
    d.with_panel(
        _timeseries(
            6,
            "Records per second",
            "Records read from sources and written to Platform by completed runs.",
            _grid(8, 12, 0, 19),
            [
                _query(
                    "sum by (flow_name) (rate(aep_flow_input_records_total[$__rate_interval])" + NAMED + ")",
                    "{{flow_name}} in",
                    "A",
                ),
                _query(
                    "sum by (flow_name) (rate(aep_flow_output_records_total[$__rate_interval])" + NAMED + ")",
                    "{{flow_name}} out",
                    "B",
                ),
            ],
            unit="short",
        )
    )
    d.with_panel(
        _timeseries(
            7,
            "Bytes per second",
            "",
            _grid(8, 12, 12, 19),
            [
                _query(
                    "sum by (flow_name) (rate(aep_flow_input_bytes_total[$__rate_interval])" + NAMED + ")",
                    "{{flow_name}} in",
                    "A",
                ),
                _query(
                    "sum by (flow_name) (rate(aep_flow_output_bytes_total[$__rate_interval])" + NAMED + ")",
                    "{{flow_name}} out",
                    "B",
                ),
            ],
            unit="Bps",
        )
    )
    d.with_panel(
        _timeseries(
            8,
            "Failed-record ratio (1h)",
            "Failed records / input records over the last hour (recording rule). Adobe's own alert uses 0.5%.",
            _grid(8, 12, 0, 27),
            [_query("aep_flow:failed_records:ratio_1h" + NAMED, "{{flow_name}}", "A")],
            unit="percentunit",
            threshold=0.005,
        )
    )
    d.with_panel(
        _timeseries(
            9,
            "Completed runs by status (1h)",
            "",
            _grid(8, 12, 12, 27),
            # Exemplars: the latest counted run's ID (OpenMetrics scrapes), linked to the run's page in
            # Adobe by the data source's exemplarTraceIdDestinations (provisioning/datasources).
            [
                _query("sum by (status) (increase(aep_flow_runs_total[1h])" + NAMED + ")", "{{status}}", "A").exemplar(
                    True
                )
            ],
            unit="short",
        )
    )
    d.with_row(dashboard.Row("Durations and errors").id(10).grid_pos(_grid(1, 24, 0, 35)))
    d.with_panel(
        _timeseries(
            11,
            "Run durations",
            "The latest completed run's duration per flow; p50 and p95 over the last hour from the aep_flow_run_duration_seconds histogram, which is opt-in (metrics: {run_duration_histogram: true}).",
            _grid(8, 12, 0, 36),
            [
                _query(
                    "max by (flow_name) (aep_flow_last_completed_run_duration_seconds" + NAMED + ")",
                    "{{flow_name}} latest",
                    "A",
                ),
                _query(
                    "histogram_quantile(0.5, sum by (le, flow_name) (increase(aep_flow_run_duration_seconds_bucket[1h])"
                    + NAMED
                    + "))",
                    "{{flow_name}} p50",
                    "B",
                ),
                _query(
                    "histogram_quantile(0.95, sum by (le, flow_name) (increase(aep_flow_run_duration_seconds_bucket[1h])"
                    + NAMED
                    + "))",
                    "{{flow_name}} p95",
                    "C",
                ),
            ],
            unit="s",
        )
    )
    d.with_panel(
        _timeseries(
            12,
            "Error codes over time",
            "Completed runs reporting each error code, over the last hour.",
            _grid(8, 12, 12, 36),
            [_query("sum by (code) (increase(aep_flow_run_errors_total[1h])" + NAMED + ")", "{{code}}", "A")],
            unit="short",
        )
    )
    d.with_row(dashboard.Row("Exporter").id(13).grid_pos(_grid(1, 24, 0, 44)))
    d.with_panel(
        _timeseries(
            14,
            "API requests by endpoint and code",
            "",
            _grid(8, 8, 0, 45),
            [
                _query(
                    "sum by (endpoint, code) (rate(aep_exporter_api_requests_total[$__rate_interval]))",
                    "{{endpoint}} {{code}}",
                    "A",
                )
            ],
            unit="reqps",
        )
    )
    d.with_panel(
        _timeseries(
            15,
            "Throttling",
            "",
            _grid(8, 8, 8, 45),
            [
                _query("sum(rate(aep_exporter_api_throttled_total[$__rate_interval]))", "429 answers/s", "A"),
                _query(
                    "sum(rate(aep_exporter_api_throttle_wait_seconds_total[$__rate_interval]))", "held back (s/s)", "B"
                ),
                _query(
                    "sum by (reason) (rate(aep_exporter_api_retries_total[$__rate_interval])) or vector(0)",
                    "retries/s {{reason}}",
                    "C",
                ),
            ],
        )
    )
    d.with_panel(
        _timeseries(
            16,
            "Poll duration",
            "",
            _grid(8, 8, 16, 45),
            [_query('aep_exporter_poll_duration_seconds{sandbox=~"$sandbox"}', "{{sandbox}}", "A")],
            unit="s",
        )
    )
    d.with_panel(
        _stat(
            17,
            "Token expires in",
            "",
            _grid(5, 6, 0, 53),
            [_query("min(aep_exporter_token_expiry_timestamp_seconds) - time()", "token", "A", instant=True)],
            unit="s",
        )
    )
    d.with_panel(
        _stat(
            18,
            "Flows up",
            "",
            _grid(5, 6, 6, 53),
            [
                _query('sum(aep_exporter_flow_up{sandbox=~"$sandbox"})', "up", "A", instant=True),
                _query('sum(aep_exporter_flows{sandbox=~"$sandbox"})', "watched", "B", instant=True),
            ],
        )
    )
    d.with_panel(
        _stat(
            19,
            "Since last good poll",
            "",
            _grid(5, 6, 12, 53),
            [
                _query(
                    'time() - max by (sandbox) (aep_exporter_last_poll_success_timestamp_seconds{sandbox=~"$sandbox"})',
                    "{{sandbox}}",
                    "A",
                    instant=True,
                )
            ],
            unit="s",
        )
    )
    d.with_panel(
        _stat(
            20,
            "Parse errors",
            "",
            _grid(5, 6, 18, 53),
            [_query("sum(increase(aep_exporter_parse_errors_total[1h])) or vector(0)", "last hour", "A", instant=True)],
        )
    )
    _destinations(d)
    return _objectives_row(_events_row(d))


def _events_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    """Adobe I/O Events (docs/events.md): empty panels on an exporter without `events:`."""
    d.with_row(dashboard.Row("Adobe I/O Events").id(24).grid_pos(_grid(1, 24, 0, 67)))
    d.with_panel(
        _timeseries(
            28,
            "Events received by source and outcome",
            "counted: a run counted on its announcement; duplicate: already counted; ignored: not a finished "
            "run of a watched flow; rejected: a push that failed its checks.",
            _grid(8, 8, 0, 68),
            [
                _query(
                    "sum by (source, outcome) (rate(aep_events_received_total[$__rate_interval]))",
                    "{{source}} {{outcome}}",
                    "A",
                )
            ],
            unit="ops",
        )
    )
    d.with_panel(
        _timeseries(
            26,
            "Runs events missed",
            "Runs the polling sweep counted that no event announced (per hour). Above 0, polling is fast again.",
            _grid(8, 8, 8, 68),
            [
                _query(
                    'sum by (sandbox) (increase(aep_events_missed_runs_total{sandbox=~"$sandbox"}[1h]))',
                    "{{sandbox}}",
                    "A",
                )
            ],
            threshold=1,
        )
    )
    d.with_panel(
        _stat(
            27,
            "Since the last event",
            "",
            _grid(4, 8, 16, 68),
            [
                _query(
                    "time() - max by (source) (aep_events_last_received_timestamp_seconds)",
                    "{{source}}",
                    "A",
                    instant=True,
                )
            ],
            unit="s",
        )
    )
    d.with_panel(
        _stat(
            25,
            "Journal resets (24h)",
            "The journal position was older than Adobe keeps (7 days): the sweep covered the gap.",
            _grid(4, 8, 16, 72),
            [
                _query(
                    "sum by (reason) (increase(aep_events_journal_resets_total[24h]))",
                    "{{reason}}",
                    "A",
                    instant=True,
                )
            ],
        )
    )
    return d


# The objectives' recording rules (`aep-flow-exporter rules`, docs/objectives.md), per objective and flow.
OBJECTIVE_ROW = "objective, " + ROW
# The burn rate: how many times faster than the objective allows its budget goes.
BURN_1H = "aep_objective:error_ratio:rate1h / on (objective) group_left () (1 - aep_objective:target)"


def _objectives_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    """Objectives (docs/objectives.md): empty panels on a Prometheus without the generated rules."""
    d.with_row(dashboard.Row("Objectives").id(29).grid_pos(_grid(1, 24, 0, 77)))
    d.with_panel(
        _table(
            30,
            "Objectives per flow",
            "Each objective of the objectives file, per selected flow: its SLI over the objective's window "
            "(the share of good time or runs), the error budget left (1 untouched, 0 spent, below 0 overspent) "
            "and the burn rate over the last hour (above 14.4 pages with the 5m window).",
            _grid(8, 24, 0, 78),
            [
                _query(
                    f"max by ({OBJECTIVE_ROW}) ((1 - aep_objective:error_ratio:window){NAMED})",
                    "SLI",
                    "A",
                    instant=True,
                    table=True,
                ),
                _query(
                    f"max by ({OBJECTIVE_ROW}) (aep_objective:error_budget:remaining{NAMED})",
                    "budget left",
                    "B",
                    instant=True,
                    table=True,
                ),
                _query(f"max by ({OBJECTIVE_ROW}) (({BURN_1H}){NAMED})", "burn rate 1h", "C", instant=True, table=True),
            ],
            renames={"Value #A": "SLI", "Value #B": "budget left", "Value #C": "burn rate (1h)"},
            excluded=["Time"],
            unit_overrides={"SLI": "percentunit", "budget left": "percentunit"},
        )
    )
    d.with_panel(
        _timeseries(
            31,
            "Error budget left",
            "Per objective and flow, over the objective's window.",
            _grid(8, 12, 0, 86),
            [
                _query(
                    f"max by (objective, flow_name) (aep_objective:error_budget:remaining{NAMED})",
                    "{{objective}} {{flow_name}}",
                    "A",
                )
            ],
            unit="percentunit",
            threshold=0,
        )
    )
    d.with_panel(
        _timeseries(
            32,
            "Burn rate (1h)",
            "The error ratio over the last hour over what the objective allows: 1 spends the budget in "
            "exactly the window; the red line, 14.4, is the fast-burn page (with the 5m window).",
            _grid(8, 12, 12, 86),
            [_query(f"max by (objective, flow_name) (({BURN_1H}){NAMED})", "{{objective}} {{flow_name}}", "A")],
            threshold=14.4,
        )
    )
    return d


# Counts that destination dataflows (watched with `include_destination_flows: true`) and a few
# sources report beyond in/out/failed; each is absent for a flow that does not report it.
RECORD_FAMILIES = ("created", "updated", "skipped", "deleted")


def _destinations(d: dashboard.Dashboard) -> None:
    """A row for the record families: the latest completed run's counts per flow (a table, so a
    flow appears only with the families it reports) and their rates over time."""
    d.with_row(dashboard.Row("Destination dataflows").id(21).grid_pos(_grid(1, 24, 0, 58)))
    refs = "ABCD"
    d.with_panel(
        _table(
            22,
            "Created, updated, skipped, deleted records (latest completed run)",
            "Flows that report these counts: destination dataflows (watched with include_destination_flows: true) "
            "and sources that report them. An empty cell: the flow's latest completed run did not report it.",
            _grid(8, 12, 0, 59),
            [
                _query(
                    f"max by (sandbox, flow_id, flow_name) (aep_flow_last_completed_run_{family}_records" + NAMED + ")",
                    family,
                    ref,
                    instant=True,
                    table=True,
                )
                for family, ref in zip(RECORD_FAMILIES, refs)
            ],
            renames={f"Value #{ref}": family for family, ref in zip(RECORD_FAMILIES, refs)},
            excluded=["Time"],
        )
    )
    d.with_panel(
        _timeseries(
            23,
            "Created, updated, skipped, deleted records per second",
            "Summed over completed runs of the flows that report them.",
            _grid(8, 12, 12, 59),
            [
                _query(
                    f"sum by (flow_name) (rate(aep_flow_{family}_records_total[$__rate_interval])" + NAMED + ")",
                    "{{flow_name}} " + family,
                    ref,
                )
                for family, ref in zip(RECORD_FAMILIES, refs)
            ],
            unit="short",
        )
    )


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
