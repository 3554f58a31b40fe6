"""The counted run fields, declared once.

Each row says where a number sits in Adobe's run JSON, the name the exporter knows it by, and the
families it becomes. Parsing (models.Summary), translation (translate.RunFacts), the ledger's sums,
the collectors and docs/metrics.md's table are all driven by this table: adding a field is one row.

Metric names follow from the fact's name:
- `aep_flow_<fact>_total`: summed over the completed runs counted once each;
- `aep_flow_last_completed_run_<fact>`: the value of the latest completed run;
- `aep_flow_last_completed_run_activity_<fact>`: per activity (rows with `activity=True`, opt-in).
A value Adobe did not report (absent, null, `{}`, or -1) is no series at all, never a 0.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunField:
    fact: str  # the name in RunFacts.counts and the ledger's sums
    summary: str  # the summary object under a run's `metrics` (or at an activity's top level)
    key: str  # the count inside that summary
    help: str  # what the number is, for HELP texts and the docs
    activity: bool = False  # also exported per activity of the latest completed run (opt-in)

    @property
    def json_path(self) -> str:
        return f"{self.summary}.{self.key}"

    @property
    def total_metric(self) -> str:
        return f"aep_flow_{self.fact}"

    @property
    def last_metric(self) -> str:
        return f"aep_flow_last_completed_run_{self.fact}"

    @property
    def activity_metric(self) -> str:
        return f"aep_flow_last_completed_run_activity_{self.fact}"


RUN_FIELDS: tuple[RunField, ...] = (
    RunField("input_records", "recordSummary", "inputRecordCount", "Records read from the source", activity=True),
    RunField("output_records", "recordSummary", "outputRecordCount", "Records written to Platform", activity=True),
    RunField("failed_records", "recordSummary", "failedRecordCount", "Records that failed", activity=True),
    RunField("input_bytes", "sizeSummary", "inputBytes", "Bytes read from the source"),
    RunField("output_bytes", "sizeSummary", "outputBytes", "Bytes written to Platform"),
    RunField("input_files", "fileSummary", "inputFileCount", "Files read from the source"),
    RunField("output_files", "fileSummary", "outputFileCount", "Files written to Platform"),
    # Reported by destination dataflows and some sources (help/destinations/…/file-based-destination-results-api.md).
    RunField("created_records", "recordSummary", "createdRecordCount", "Records created in the target"),
    RunField("updated_records", "recordSummary", "updatedRecordCount", "Records updated in the target"),
    RunField("skipped_records", "recordSummary", "skippedRecordCount", "Records skipped"),
    RunField("deleted_records", "recordSummary", "deletedRecordCount", "Records deleted in the target"),
)

FACTS: tuple[str, ...] = tuple(f.fact for f in RUN_FIELDS)
ACTIVITY_FIELDS: tuple[RunField, ...] = tuple(f for f in RUN_FIELDS if f.activity)


def markdown_rows() -> dict[str, list[str]]:
    """docs/metrics.md's rows for the counted fields, by table (a test keeps the doc equal to them)."""
    return {
        "last": [f"| `{f.last_metric}` | gauge | | `{f.json_path}` |" for f in RUN_FIELDS],
        "activity": [
            f"| `{f.activity_metric}` (opt-in) | gauge | `activity` | Per activity `{f.json_path}`. |"
            for f in ACTIVITY_FIELDS
        ],
        "total": [
            f"| `{f.total_metric}_total` | counter | | `{f.json_path}` summed over completed runs |" for f in RUN_FIELDS
        ],
    }


if __name__ == "__main__":  # python -m exporter.adobe.fields: the rows to paste into docs/metrics.md
    for name, rows in markdown_rows().items():
        print(f"<!-- {name} -->", *rows, sep="\n")
