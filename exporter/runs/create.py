"""Creating an on-demand run (POST /runs), shared by `trigger` and `backfill`.

Adobe's documents disagree on the body: the tutorials send `params.startTime`, `windowStartTime`
and `windowEndTime` as strings of unix seconds, the OpenAPI spec's CreateFlowRunRequest types
them integer. We send the tutorials' strings, which is what the service is known to accept; if
Adobe refuses them with a validation error about those params (400 or 422: nothing was created),
we send the same values once more as integers, say so on stderr, and keep to integers for the
runs that follow (a backfill's next windows).
`--params-as string|integer` forces one form and never falls back. The integers are unix
*seconds*, like the strings: the spec calls them milliseconds but its examples are in seconds.

In: a Flow Service client, the flow, its window and how to send the times. Out: the new run's id
and etag, or a CreateError that says whether a run may exist.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from exporter.adobe.client import ApiError, FlowServiceClient
from exporter.adobe.ims import TokenError
from exporter.config import Config
from exporter.support.secrets import REDACTED

ParamsChoice = Literal["auto", "string", "integer"]
TIME_PARAMS = ("startTime", "windowStartTime", "windowEndTime")
VALIDATION_STATUSES = (400, 422)


class CreateError(Exception):
    """POST /runs did not give a run id. `refused`: Adobe answered 4xx, so no run exists.
    `maybe_created`: the request may have reached Adobe (a timeout, a 5xx, an unreadable answer),
    so a run may exist that we do not know the id of. `about_params`: the refusal is a validation
    error naming the time params (their form may be what Adobe objects to)."""

    def __init__(self, message: str, refused: bool, maybe_created: bool, about_params: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        self.maybe_created = maybe_created
        self.about_params = about_params


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


def about_params(error: ApiError) -> bool:
    """Whether a refusal is a validation error about the time params: 400 or 422, naming one of
    them, and not about deltaColumn (a refusal of what was asked, which integers cannot cure)."""
    text = f"{error} {error.body.decode('utf-8', 'replace')}".lower()
    return (
        error.status in VALIDATION_STATUSES
        and any(k.lower() in text for k in TIME_PARAMS)
        and "deltacolumn" not in text
    )


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
    or CreateError saying whether Adobe refused it or may have created it. `body` is built with
    the tutorials' strings (`request_body`); `params_as` decides the form sent (and learns from a
    refusal)."""
    how = params_as if params_as is not None else ParamsAs()
    form = how.form()
    try:
        return await _post(client, sandbox, typed(body, form))
    except CreateError as e:
        if not e.about_params:
            raise
        if how.choice != "auto":
            other = "string" if form == "integer" else "integer"
            raise CreateError(f"{e} (sent as {form}s: try --params-as {other})", True, False, True) from None
        words = printable(str(e).removeprefix("Adobe refused the run: "))
        say(f"Adobe refused the time params as strings ({words}); sending them once more as integers (its spec's type)")
    how.choice = "integer"
    return await _post(client, sandbox, typed(body, "integer"))


async def _post(client: FlowServiceClient, sandbox: str, body: dict[str, Any]) -> tuple[str, str | None]:
    try:
        return await client.create_run(sandbox, body)
    except ApiError as e:
        if e.status is not None and 400 <= e.status < 500:
            raise CreateError(
                f"Adobe refused the run: {e}", refused=True, maybe_created=False, about_params=about_params(e)
            ) from None
        raise CreateError(f"could not create the run: {e}", refused=False, maybe_created=True) from None
    except TokenError as e:  # no token, so nothing was sent
        raise CreateError(str(e), refused=False, maybe_created=False) from None
