"""Retrying a failed run (POST /runs/{RUN_ID}/action), shared by `retry` and `backfill`.

Adobe's tutorial "Retry failed dataflow runs" sends `op=re-trigger` and answers the new run's
`{id, etag}`; its OpenAPI spec types `op` as the enum `RE_TRIGGER` and answers a whole flow run.
We send the tutorial's spelling; if Adobe refuses it with a validation error (400 or 422:
nothing was retried), we send the other spelling once and say so: whether the refusal was about
`op` is learned by trying it, never read from the refusal's words (exporter/runs/post.py). The spelling that worked is
kept for the retries that follow (a backfill's next windows); if both are refused, the first
refusal is the answer. Both answer shapes are read.

Only a failed run, or a successful one that ingested no records, can be retried (the tutorial).
A retry runs the run's window again, so its run has the same `params.windowEndTime`: that is how
a retry whose answer was lost is found again (`find_retry`), before another is ever sent.

In: a Flow Service client and the run. Out: the new run's id and etag, or a PostError
(exporter/runs/post.py) that says whether a retry may have happened.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exporter.adobe.client import FlowServiceClient
from exporter.adobe.models import Run
from exporter.adobe.runfacts import RunFacts
from exporter.runs.create import printable
from exporter.runs.post import PostError, either, post

OPS = ("re-trigger", "RE_TRIGGER")  # the tutorial's spelling, the spec's enum
REFUSED = "Adobe refused the retry"
LOOKUP_SLACK = 600.0  # seconds: our clock against Adobe's createdAt when looking a retry up


@dataclass
class Op:
    """The spelling of `op` sent; shared by every retry of one command, so that once the other
    spelling has worked the next retries use it straight away."""

    spelling: str = OPS[0]


def not_retryable(facts: RunFacts) -> str | None:
    """Why Adobe would not retry this run, in plain words; None if it would."""
    if facts.status == "failed":
        return None
    rule = "only failed runs, or successful runs that ingested no records, can be retried"
    if facts.status == "success":
        if facts.output_records == 0:
            return None
        if facts.output_records is None:
            return f"it succeeded and Adobe reports no count of records ingested ({rule})"
        return f"it succeeded and ingested {facts.output_records} records ({rule})"
    if not facts.completed:
        return f"it has not finished (status {printable(facts.status)})"
    return f"its status is {printable(facts.status)} ({rule})"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def retrigger(
    client: FlowServiceClient, sandbox: str, run_id: str, op: Op, say: Callable[[str], None] = _stderr
) -> tuple[str, str | None]:
    """The one place a run is retried (retry and backfill): the new run's (id, etag), or
    PostError saying whether Adobe refused it or may have acted on it."""
    other = OPS[1] if op.spelling == OPS[0] else OPS[0]

    def send(spelling: str) -> Awaitable[tuple[str, str | None]]:
        return post(lambda: client.retrigger_run(sandbox, run_id, spelling), REFUSED, "could not retry the run")

    def trying(refusal: PostError) -> None:
        words = printable(str(refusal).removeprefix(f"{REFUSED}: "))
        say(f"Adobe refused op={op.spelling} ({words}); sending op={other}, the other spelling its documents use")

    answer, switched = await either(lambda: send(op.spelling), lambda: send(other), trying)
    if switched:
        op.spelling = other
    return answer


def is_retry_of(run: Run, failed: Run) -> bool:
    """Whether `run` can be a retry of `failed`: another run of its flow, of the same window when
    the failed run has one (`params.windowEndTime`)."""
    if run.id == failed.id or (run.flow_id or "").lower() != (failed.flow_id or "").lower():
        return False
    return failed.window_end_param is None or run.window_end_param == failed.window_end_param


async def find_retry(client: FlowServiceClient, sandbox: str, failed: Run, since: float) -> Run | None:
    """The first run that can be a retry of `failed` among the flow's runs created after `since`
    (epoch s, Adobe's clock; the caller allows for ours). ApiError or TokenError if it cannot look."""
    properties = [f"flowId=={failed.flow_id}", f"createdAt>{int(since * 1000)}"]
    runs = await client.find_runs(sandbox, properties)
    return next((r for r in reversed(runs) if is_retry_of(r, failed)), None)  # oldest first
