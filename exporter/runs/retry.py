"""Retrying a failed run (POST /runs/{RUN_ID}/action), shared by `retry` and `backfill`.

Adobe's tutorial "Retry failed dataflow runs" sends `op=re-trigger` and answers the new run's
`{id, etag}`; its OpenAPI spec types `op` as the enum `RE_TRIGGER` and answers a whole flow run.
We send the tutorial's spelling; if Adobe refuses it with a validation error (400 or 422:
nothing was retried), we send the other spelling once and say so: whether the refusal was about
`op` is learned by trying it, never read from the refusal's words. The spelling that worked is
kept for the retries that follow (a backfill's next windows); if both are refused, the first
refusal is the answer. Both answer shapes are read.

Only a failed run, or a successful one that ingested no records, can be retried (the tutorial).
A retry runs the run's window again, so its run has the same `params.windowEndTime`: that is how
a retry whose answer was lost is found again (`find_retry`), before another is ever sent.

In: a Flow Service client and the run. Out: the new run's id and etag, or a RetryError that says
whether a retry may have happened.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from exporter.adobe.client import ApiError, FlowServiceClient
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Run
from exporter.adobe.runfacts import RunFacts
from exporter.runs.create import VALIDATION_STATUSES, printable

OPS = ("re-trigger", "RE_TRIGGER")  # the tutorial's spelling, the spec's enum
LOOKUP_SLACK = 600.0  # seconds: our clock against Adobe's createdAt when looking a retry up


class RetryError(Exception):
    """The retry gave no new run id. `refused`: Adobe answered 4xx, nothing was retried.
    `maybe_sent`: the request may have reached Adobe (a timeout, a dropped connection, a 5xx), so
    a new run may exist that we do not know the id of. `about_op`: a validation refusal, which the
    other spelling of `op` may pass."""

    def __init__(self, message: str, refused: bool, maybe_sent: bool, about_op: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        self.maybe_sent = maybe_sent
        self.about_op = about_op


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


def about_op(error: ApiError) -> bool:
    """Whether a refusal may be of the `op` spelling: a validation refusal (its words decide
    nothing; sending the other spelling tells)."""
    return error.status in VALIDATION_STATUSES


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def retrigger(
    client: FlowServiceClient, sandbox: str, run_id: str, op: Op, say: Callable[[str], None] = _stderr
) -> tuple[str, str | None]:
    """The one place a run is retried (retry and backfill): the new run's (id, etag), or
    RetryError saying whether Adobe refused it or may have acted on it."""
    try:
        return await _post(client, sandbox, run_id, op.spelling)
    except RetryError as e:
        if not e.about_op:
            raise
        first = e
    other = OPS[1] if op.spelling == OPS[0] else OPS[0]
    words = printable(str(first).removeprefix("Adobe refused the retry: "))
    say(f"Adobe refused op={op.spelling} ({words}); sending op={other}, the other spelling its documents use")
    try:
        answer = await _post(client, sandbox, run_id, other)
    except RetryError as e:
        if e.about_op:  # refused in both spellings: the refusal is of the retry itself
            raise first from None
        raise
    op.spelling = other
    return answer


async def _post(client: FlowServiceClient, sandbox: str, run_id: str, op: str) -> tuple[str, str | None]:
    try:
        return await client.retrigger_run(sandbox, run_id, op)
    except ApiError as e:
        if e.status is not None and 400 <= e.status < 500:
            raise RetryError(
                f"Adobe refused the retry: {e}", refused=True, maybe_sent=False, about_op=about_op(e)
            ) from None
        raise RetryError(f"could not retry the run: {e}", refused=False, maybe_sent=True) from None
    except TokenError as e:  # no token, so nothing was sent
        raise RetryError(str(e), refused=False, maybe_sent=False) from None


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
