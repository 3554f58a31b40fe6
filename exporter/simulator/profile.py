"""What the simulated Flow Service does where Adobe's documentation is silent: one switch each.

Adobe documents the `property=` filters, `orderby`, `limit` and `_links.next.href`, but not the
details a client that batches and resumes depends on: how
big a page is, what a next link looks like, how long a continuation token is and whether it
remembers the filters, how long a request line may be, whether `orderby`, comma lists and
`createdAt>` are honoured, whose clock `createdAt` is on, and when a new run shows in listings.
`ApiProfile` names one answer to each; the tests run the exactly-once checks under each answer,
and the benchmark under `friendly` (how the simulator always behaved) and `hostile`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

NextLink = Literal["mixed", "host", "base", "absolute"]
CommaLists = Literal["any", "refuse", "literal"]
RunParams = Literal["string", "integer"]
RetriggerOp = Literal["re-trigger", "RE_TRIGGER"]


@dataclass(frozen=True)
class ApiProfile:
    """One undocumented-detail switch per field; the defaults are the `friendly` preset."""

    # Items per page at most, whatever `limit` asks (None: the Simulator's max_page_size). A
    # capped page still carries a next link when more items remain.
    page_cap: int | None = None
    # Form of `_links.next.href`: "host" = /data/foundation/flowservice/runs?…, "base" = /runs?…,
    # "absolute" = http://host:port/data/…/runs?…, "mixed" = host-relative on the first page and
    # base-relative after (both appear in Adobe's docs).
    next_link: NextLink = "mixed"
    # The next link repeats the request's filters, orderby and limit beside the token.
    repeat_query: bool = False
    # Length of the opaque continuation token (Adobe's are undocumented; several KB is plausible).
    token_length: int = 16
    # The token remembers the first page's filters. When False it holds only a position: the
    # client must send its filters again with it, and a page asked without them is unfiltered.
    token_carries_query: bool = True
    # The token encodes the query it continues (as an encrypted, base64'd cursor would), so it
    # grows with the question: token_length plus 4/3 of the query's bytes (about 50 bytes a flow
    # ID; some 5 KB for a listing of 100 flows). Only with token_carries_query.
    token_encodes_query: bool = False
    # Longest request line accepted (method + path + query + HTTP version, in bytes), as a
    # gateway in front of the service would cap it; longer ones get `request_line_status`.
    max_request_line: int | None = None
    request_line_status: Literal[400, 414] = 414
    # How a 400 for a long line reads: "words" says why (an Adobe-shaped body naming the size),
    # "adobe" is Adobe-shaped and names no size ("Bad request"), "html" is a gateway's bare page,
    # "close" answers nothing: the connection is closed under the request.
    request_line_body: Literal["words", "adobe", "html", "close"] = "words"
    # `orderby` honoured; when not, items come in an order of the service's own (by id).
    orderby: bool = True
    # Comma lists in `==` filters ("any of"): honoured, refused with a 400 (Adobe-shaped), or read
    # literally (`flowId==a,b` matches only the id "a,b": 200 with no items). `list_fields`
    # names the properties this applies to (None: every property).
    comma_lists: CommaLists = "any"
    list_fields: frozenset[str] | None = None
    # `property=createdAt>…` / `createdAt>=…` honoured; when not, they are silently dropped.
    created_after: bool = True
    # Seconds Adobe's clock is ahead of the real one (negative: behind). Every timestamp the
    # service writes (createdAt, startedAtUTC, token expiry…) is on its clock.
    clock_offset: float = 0.0
    # Seconds after its createdAt before a run shows in listings (GET /runs?…); 0: at once.
    listing_delay: float = 0.0
    # Every n-th next link leads to another collection (`/connections?…`, serving connection
    # objects): a faulty gateway or a client bug must not turn those into runs or flows. 0: never.
    foreign_next_every: int = 0
    # How many stray links at most (a fault that passes; 0: no limit). Without a limit a fixed
    # pattern of requests can make the same listing stray every cycle, and no client can help that.
    foreign_next_limit: int = 0
    # The stray link's token continues the collection asked for (the OpenAPI spec's example answer
    # links `/runs` to `/connections?continuationToken=…`): asked of /runs it serves the next page
    # there. False: it is a token of the other collection, refused on the one asked for.
    foreign_token_continues: bool = False
    # What POST /runs wants for params.startTime/windowStartTime/windowEndTime, where Adobe's
    # documents disagree: "string" = unix seconds as strings (the on-demand and ad hoc run tutorials);
    # "integer" = JSON integers, as the OpenAPI spec's CreateFlowRunRequest types them. The other
    # form is refused with an Adobe-shaped validation error (`run_params_status`) and nothing is
    # created. An API that wants integers also answers 201 in the spec's shape, `{id, etag}`.
    run_params: RunParams = "string"
    run_params_status: Literal[400, 422] = 400
    # The spelling of POST /runs/{id}/action?op= that is accepted, where Adobe's documents disagree:
    # "re-trigger" (the tutorial "Retry failed dataflow runs", answering the new run's `{id, etag}`)
    # or "RE_TRIGGER" (the OpenAPI spec's enum, answering a whole flow run). The other spelling is
    # refused with an Adobe-shaped validation error naming `op`, and nothing is retried.
    retrigger_op: RetriggerOp = "re-trigger"

    def lists_apply_to(self, name: str) -> bool:
        """Whether the comma-list rule (refuse / literal) covers the property `name`."""
        return self.list_fields is None or name in self.list_fields

    def but(self, **changes: object) -> ApiProfile:
        """This profile with some switches changed (a variation of a preset)."""
        return replace(self, **changes)  # type: ignore[arg-type]


FRIENDLY = ApiProfile()
# The benchmark's hostile Adobe: tokens that encode the query they continue (so they grow with
# it: ~5 KB for a listing of 100 flows, whose second page with our filters re-sent would ask
# ~9 KB), an 8 KB request-line limit refused by a bare HTML 400 that names no size (as nginx-style
# gateways answer), pages of 20 at most, and a clock 10 minutes behind.
HOSTILE = ApiProfile(
    page_cap=20,
    token_length=64,
    token_carries_query=True,
    token_encodes_query=True,
    max_request_line=8192,
    request_line_status=400,
    request_line_body="html",
    clock_offset=-600.0,
)
# The hostile Adobe of earlier benchmarks: tokens of 6 KB that do not remember the filters (a page
# of a listing for 100 flows asks ~9.8 KB, one for a single flow ~6.3 KB), answered 414 past 8 KB.
HOSTILE_POSITION_TOKENS = HOSTILE.but(
    token_length=6144,
    token_carries_query=False,
    token_encodes_query=False,
    request_line_status=414,
    request_line_body="words",
)
PROFILES: dict[str, ApiProfile] = {
    "friendly": FRIENDLY,
    "hostile": HOSTILE,
    "hostile_position_tokens": HOSTILE_POSITION_TOKENS,
}
