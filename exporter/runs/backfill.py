"""Carrying out a backfill plan: its windows `concurrency` at a time, each created, found again or
followed, and retried when its run fails; the plan file (plan.py) is written after every change,
and before each POST /runs, so that a stop at any moment can be resumed without a second run for
a window.

A failed window's run is retried through Adobe's re-trigger (runs/retry.py), which keeps Adobe's
link to the failed run; only where Adobe refuses that is a new run created for the window.
A POST that got no answer (a timeout, a 5xx, a kill) may still have created a run. Such a window is
left `creating`, and before anything is created for it again the flow's runs since that POST are
listed and the one with the window's `windowEndTime` adopted.

In: a Flow Service client, the plan file and the command's settings. Out: runs created in Adobe,
the windows' states in the plan file, and each change told to a reporter (progress.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from exporter.adobe.client import ApiError, FlowServiceClient
from exporter.adobe.ims import TokenError
from exporter.adobe.runfacts import RunFacts
from exporter.runs.create import ParamsAs, ParamsChoice, create_run, printable, request_body
from exporter.runs.follow import clock_text, look
from exporter.runs.plan import CREATING, DONE, FAILED, PENDING, REFUSED, RUNNING, SUCCEEDED, PlanFile, Window
from exporter.runs.post import PostError
from exporter.runs.retry import Op, retrigger

LOOKUP_SLACK = 600.0  # seconds: our clock against Adobe's createdAt when looking a run up
MAX_UNANSWERED = 3  # POSTs without an answer for one window, in one start, before giving it up


@dataclass(frozen=True)
class Settings:
    sandbox: str
    flow: str
    delta_column: str | None
    concurrency: int
    retry_failed: int
    wait_timeout: float
    wait_interval: float
    params_as: ParamsChoice = "auto"


class Reporter(Protocol):
    def update(self, window: Window) -> None: ...


class Runner:
    def __init__(self, client: FlowServiceClient, plan_file: PlanFile, settings: Settings, reporter: Reporter) -> None:
        self.client = client
        self.plan_file = plan_file
        self.s = settings
        self.reporter = reporter
        self.params_as = ParamsAs(settings.params_as)  # learns, for every window, that Adobe wants integers
        self.op = Op()  # learns, for every window, which spelling of the retry Adobe wants
        self.stop_creating = False
        self.refusal: str | None = None  # Adobe's words when it refused a run: stop creating
        self.fatal: str | None = None  # no token: nothing can be done
        self.interrupted = False
        self.timed_out = False  # a run outlived --wait-timeout: stop creating, a resume follows it
        self._tasks: list[asyncio.Task[None]] = []
        # Runs already in flight first, so --concurrency 1 never has two runs going after a resume.
        ws = plan_file.windows
        self.queue = deque(
            [w for w in ws if w.state in (RUNNING, CREATING)] + [w for w in ws if w.state not in (RUNNING, CREATING)]
        )

    async def run(self) -> None:
        n = max(1, min(self.s.concurrency, len(self.queue)))
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(n)]
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception) and not (isinstance(result, OSError) and self.fatal):
                raise result

    def interrupt(self) -> None:
        """Ctrl-C: create nothing more and wait for nothing; what is in flight goes on at Adobe, and
        the plan file already says where each window stands."""
        self.interrupted = True
        self._halt()

    def _halt(self) -> None:
        self.stop_creating = True
        for t in self._tasks:
            t.cancel()

    def say(self, line: str) -> None:
        """A notice for the operator: stderr, beside the progress on stdout; Adobe's words made safe."""
        print(f"aep-flow-exporter backfill: {printable(line)}", file=sys.stderr, flush=True)

    def changed(self, w: Window) -> None:
        try:
            self.plan_file.save()
        except OSError as e:  # going on without the plan file would forget runs: stop here
            self.fatal = f"cannot write the journal {self.plan_file.path}: {e.strerror or e}; stopped"
            self._halt()
            raise
        self.reporter.update(w)

    async def _worker(self) -> None:
        while self.queue:
            await self._window(self.queue.popleft())

    async def _window(self, w: Window) -> None:
        retries = self.s.retry_failed
        unanswered = 0
        while w.state != SUCCEEDED:
            if w.state == RUNNING:
                await self._follow(w)
                if w.state == RUNNING:  # timed out: more runs would only queue behind it
                    self.timed_out = self.stop_creating = True
                    return
                continue
            if w.state == CREATING:
                found = await self._find(w)
                if found is None:  # could not look: never create blind
                    return
                if found:
                    continue
                if unanswered >= MAX_UNANSWERED:
                    w.error = f"{unanswered} requests to create its run got no answer; resume to try again"
                    self.changed(w)
                    return
            elif w.state == FAILED:
                if retries <= 0 or self.stop_creating:
                    return
                retries -= 1
            if self.stop_creating:
                return
            if not (w.state == FAILED and w.run_id and await self._retrigger(w)):
                await self._create(w)  # a new window, or Adobe would not retry its failed run
            if w.state == CREATING:
                unanswered += 1
                await asyncio.sleep(self.s.wait_interval)  # give Adobe's listing time to show it
            elif w.state in (REFUSED, PENDING):
                return

    def _sending(self, w: Window, retry_of: str | None) -> None:
        """The window as it is saved before a POST: a kill from here on is looked up on resume."""
        if w.run_id:  # a failed run being retried: remembered, never adopted again
            w.previous_runs.append(w.run_id)
        w.state, w.run_id, w.status, w.sent_at, w.error = CREATING, None, None, time.time(), None
        w.input_records = w.output_records = w.failed_records = None
        w.error_codes, w.retry_of = [], retry_of
        w.attempts += 1
        self.changed(w)

    async def _retrigger(self, w: Window) -> bool:
        """Retry the window's failed run through Adobe's re-trigger, which keeps Adobe's link to
        it: True if Adobe retried it or may have (the window is then `running` or `creating`),
        False if it refused (nothing was retried: a new run is created instead)."""
        failed = w.run_id
        assert failed is not None
        self._sending(w, failed)
        try:
            w.run_id, _ = await retrigger(self.client, self.s.sandbox, failed, self.op, self.say)
        except PostError as e:
            if e.may_have_acted:
                w.error = str(e)
                self.changed(w)
                return True
            w.previous_runs.remove(failed)
            w.state, w.run_id, w.retry_of = FAILED, failed, None
            if not e.refused:  # no token: nothing can be done
                w.error, self.fatal, self.stop_creating = str(e), str(e), True
                self.changed(w)
                return True
            self.say(f"Adobe did not retry run {failed} ({e}); creating a new run for the window instead")
            return False
        w.state = RUNNING
        self.changed(w)
        return True

    async def _create(self, w: Window) -> None:
        self._sending(w, None)
        times = {"--start-time": int(time.time()), "--window-start": w.start, "--window-end": w.end}
        try:
            body = request_body(self.s.flow, times, self.s.delta_column)
            w.run_id, _ = await create_run(self.client, self.s.sandbox, body, self.params_as, self.say)
        except PostError as e:
            w.error = str(e)
            if e.refused:
                w.state, self.refusal, self.stop_creating = REFUSED, str(e), True
            elif not e.may_have_acted:
                w.state, self.fatal, self.stop_creating = PENDING, str(e), True
            self.changed(w)
            return
        w.state = RUNNING
        self.changed(w)

    async def _find(self, w: Window) -> bool | None:
        """Adopt the run a POST without an answer created, if the listing shows it: True found,
        False not there (so none was created), None could not look."""
        since = int(((w.sent_at or 0) - LOOKUP_SLACK) * 1000)
        try:
            runs = await self.client.find_runs(self.s.sandbox, [f"flowId=={self.s.flow}", f"createdAt>{since}"])
        except (ApiError, TokenError) as e:
            w.error = f"could not check whether its run was created ({e}); resume to look again"
            self.changed(w)
            return None
        for run in reversed(runs):  # oldest first: the first POST's run, should there be two
            if (
                run.window_end_param is not None
                and int(run.window_end_param) == w.end
                and run.id not in w.previous_runs
            ):
                w.state, w.run_id, w.error = RUNNING, run.id, None
                self.changed(w)
                return True
        w.state = PENDING
        self.changed(w)
        return False

    async def _follow(self, w: Window) -> None:
        started = time.monotonic()
        assert w.run_id is not None
        w.error = None  # an earlier start's "still running after …" is over
        while True:
            facts, _ = await look(self.client, self.s.sandbox, w.run_id)
            if facts is not None and _record(w, facts):
                self.changed(w)
            if w.state in DONE:
                return
            elapsed = time.monotonic() - started
            if elapsed + self.s.wait_interval > self.s.wait_timeout:
                w.error = f"still {w.status or 'not listed'} after {clock_text(elapsed)}; resume to follow it"
                self.changed(w)
                return
            await asyncio.sleep(self.s.wait_interval)


def _record(w: Window, facts: RunFacts) -> bool:
    """Take what a look at the window's run showed; whether anything changed."""
    before = (w.status, w.input_records, w.state)
    w.status = facts.status
    w.input_records, w.output_records, w.failed_records = (
        facts.input_records,
        facts.output_records,
        facts.failed_records,
    )
    w.error_codes = sorted(facts.error_codes)
    if facts.completed:
        w.state = SUCCEEDED if facts.status == "success" else FAILED
    return (w.status, w.input_records, w.state) != before
