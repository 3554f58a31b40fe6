"""Creating an on-demand run (POST /runs), shared by `trigger` and `backfill`.

Adobe's documents disagree on the body: the tutorials send `params.startTime`, `windowStartTime`
and `windowEndTime` as strings of unix seconds, the OpenAPI spec's CreateFlowRunRequest types
them integer. We send the tutorials' strings, which is what the service is known to accept; if
Adobe refuses them with a validation error (400 or 422: nothing was created), we send the same
values once more as integers and say so on stderr: whether the refusal was about their form is
learned by trying, never read from its words (exporter/runs/post.py). Integers that work are kept
for the runs that follow (a backfill's next windows); if both forms are refused, the first
refusal is the answer.
`--params-as string|integer` forces one form and never falls back. The integers are unix
*seconds*, like the strings: the spec calls them milliseconds but its examples are in seconds.

In: a Flow Service client, the flow, its window and how to send the times. Out: the new run's id
and etag, or a PostError that says whether a run may exist.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from exporter.adobe.client import FlowServiceClient
from exporter.config import Config
from exporter.runs.post import PostError, either, post
from exporter.support.secrets import REDACTED

ParamsChoice = Literal["auto", "string", "integer"]
TIME_PARAMS = ("startTime", "windowStartTime", "windowEndTime")
REFUSED = "Adobe refused the run"


@dataclass
class ParamsAs:
    """How the time params are sent: "auto" (strings, integers after a refusal of them),
    "string" or "integer" (forced). Shared by every run of one command, so that once Adobe has
    refused strings the next runs are sent as integers straight away."""

    choice: ParamsChoice = "auto"

    def form(self) -> Literal["string", "integer"]:
        return "integer" if self.choice == "integer" else "string"


def request_body(flow_id: str, times: dict[str, int], delta_column: str | None) -> dict[str, Any]:
    """The body as Adobe's tutorials show it: unix seconds as strings (`typed` turns them into the
    spec's integers when that is what is sent). `times` is keyed by trigger's flag names."""
    params: dict[str, Any] = {
        "startTime": str(times["--start-time"]),
        "windowStartTime": str(times["--window-start"]),
        "windowEndTime": str(times["--window-end"]),
    }
    if delta_column:
        params["deltaColumn"] = {"name": delta_column}
    return {"flowId": flow_id, "params": params}


def shown_headers(config: Config, sandbox: str) -> dict[str, str]:
    """The headers of POST /runs as --dry-run shows them: the token redacted."""
    return {
        "Authorization": f"Bearer {REDACTED}",
        "x-api-key": config.adobe.client_id,
        "x-gw-ims-org-id": config.adobe.org_id,
        "x-sandbox-name": sandbox.lower(),
        "Content-Type": "application/json",
    }


def typed(body: dict[str, Any], form: Literal["string", "integer"]) -> dict[str, Any]:
    """A copy of the body with the time params as strings or as integers (deltaColumn untouched)."""
    params = dict(body.get("params") or {})
    for key in TIME_PARAMS:
        if key in params:
            params[key] = str(int(params[key])) if form == "string" else int(params[key])
    return {**body, "params": params}


def printable(text: str) -> str:
    """Adobe's words made harmless for a terminal: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def create_run(
    client: FlowServiceClient,
    sandbox: str,
    body: dict[str, Any],
    params_as: ParamsAs | None = None,
    say: Callable[[str], None] = _stderr,
) -> tuple[str, str | None]:
    """The one place an on-demand run is created (trigger and backfill): the new run's (id, etag),
    or PostError saying whether Adobe refused it or may have created it. `body` is built with
    the tutorials' strings (`request_body`); `params_as` decides the form sent, and learns by
    trying the other form once after a validation refusal (post.either)."""
    how = params_as if params_as is not None else ParamsAs()

    def send(form: Literal["string", "integer"]) -> Awaitable[tuple[str, str | None]]:
        return post(lambda: client.create_run(sandbox, typed(body, form)), REFUSED, "could not create the run")

    if how.choice != "auto":
        form = how.form()
        try:
            return await send(form)
        except PostError as e:
            if not e.validation:
                raise
            other = "string" if form == "integer" else "integer"
            raise PostError(f"{e} (sent as {form}s: try --params-as {other})", True, False, e.status) from None

    def trying(refusal: PostError) -> None:
        words = printable(str(refusal).removeprefix(f"{REFUSED}: "))
        say(
            f"Adobe refused the run with the time params as strings ({words}); "
            "sending them once more as integers (its spec's type)"
        )

    answer, integers = await either(lambda: send("string"), lambda: send("integer"), trying)
    if integers:
        how.choice = "integer"
    return answer
