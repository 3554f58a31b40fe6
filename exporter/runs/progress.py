"""How a backfill shows where it is: a progress bar on a terminal (rich: windows done / total,
elapsed, estimated time left, the latest window's status and records), a plain line per change
otherwise (a log file or a CI job gets no escape codes), and the table at the end."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from exporter.runs.create import printable
from exporter.runs.follow import number_text
from exporter.runs.plan import CREATING, DONE, FAILED, REFUSED, RUNNING, SUCCEEDED, Window


def when(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def span(w: Window) -> str:
    return f"{when(w.start)} → {when(w.end)}"


def describe(w: Window) -> str:
    """One window in one line: where it stands, its run, Adobe's status and its records."""
    parts = [span(w), w.state]
    if w.run_id:
        parts.append(f"run {printable(w.run_id)}")
    if w.status and w.state in (RUNNING, *DONE):
        parts.append(f"status {printable(w.status)}")
    if w.state in DONE:
        parts.append(f"records {records(w)}")
    elif w.input_records is not None:
        parts.append(f"records so far {w.input_records}")
    if w.error_codes:
        parts.append("errors " + ", ".join(printable(c) for c in w.error_codes))
    if w.error:
        parts.append(f"({printable(w.error)})")
    return "  ".join(parts)


def records(w: Window) -> str:
    return f"{number_text(w.input_records)}/{number_text(w.output_records)}/{number_text(w.failed_records)}"


def finished(windows: list[Window]) -> int:
    return sum(1 for w in windows if w.state in DONE)


class PlainReporter:
    """A line per change of a window, prefixed with windows finished / total."""

    def __init__(self, windows: list[Window], out: TextIO) -> None:
        self.windows = windows
        self.out = out
        self._last: dict[int, str] = {}

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, w: Window) -> None:
        if not w.error and (w.state == CREATING or (w.state == RUNNING and not w.status)):
            return  # a moment later the run's first status says the same
        line = describe(w)
        if self._last.get(w.start) != line:
            self._last[w.start] = line
            print(f"[{finished(self.windows)}/{len(self.windows)}] {line}", file=self.out, flush=True)


class BarReporter:
    """rich's live progress bar; the latest change of any window is shown after it."""

    def __init__(self, windows: list[Window], out: TextIO) -> None:
        self.windows = windows
        self.console = Console(file=out)
        self.bar = Progress(
            TextColumn("backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows · elapsed"),
            TimeElapsedColumn(),
            TextColumn("· left"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", markup=False),
            console=self.console,
        )
        self.task = self.bar.add_task("backfill", total=len(windows), completed=finished(windows), current="")

    def __enter__(self) -> BarReporter:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, w: Window) -> None:
        current = f"{when(w.start)} {w.state}"
        if w.status and w.state != SUCCEEDED:
            current += f" ({printable(w.status)})"
        if w.input_records is not None:
            current += f" records {w.input_records}"
        self.bar.update(self.task, completed=finished(self.windows), current=current)
        if w.state in (FAILED, REFUSED):
            self.bar.console.print(describe(w), markup=False, highlight=False)


def reporter(windows: list[Window], out: TextIO) -> PlainReporter | BarReporter:
    return BarReporter(windows, out) if out.isatty() else PlainReporter(windows, out)


def table(windows: list[Window]) -> list[str]:
    """The end table: a row per window with its run, status, records in/out/failed and error codes."""
    head = ("window (UTC)", "run", "status", "records in/out/failed", "error codes")
    rows = [head] + [
        (
            span(w),
            printable(w.run_id or "-"),
            printable(w.status) if w.status and w.state in DONE else w.state,
            records(w) if w.state in DONE else "-",
            ", ".join(printable(c) for c in w.error_codes) or "-",
        )
        for w in windows
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return ["  ".join([*(c.ljust(n) for c, n in zip(r, widths)), r[-1]]).rstrip() for r in rows]
