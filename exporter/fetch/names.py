"""Names people read: each flow's source and target connector names and the dataset it writes to.

`aep_flow_info` says `source_connection_spec_id="ecadc60c-…"`; nobody knows that is Amazon S3. Once a
cycle, for the flows whose metadata is new or was refreshed since their names were resolved:
- `GET /connectionSpecs?property=id==a,b` for the connection specs the cache lacks or holds for more
  than a day (connectors do not rename themselves; the cache is kept in the state file too);
- `GET /targetConnections?property=id==x,y` for source flows' target connections, whose
  `params.dataSetId` is the dataset the flow writes to (a destination's has none: not asked);
- Catalog Service's `GET /dataSets/a,b?properties=name` for those datasets' names (cached a day,
  in memory: a restart asks once per DATASETS_BATCH datasets). A dataset Catalog answers without
  (deleted) loses its name; a lookup that fails keeps the name the flow had.
The spec documents `property` on both listings, so lists are tried first. A list answered with a 400,
or one that lacked an item then found alone, sends that endpoint one ID at a time in the sandbox
from then on (`GET /connectionSpecs/{id}`, `GET /targetConnections/{id}`).

Names are decoration, never a reason to lose data: a lookup that fails leaves the flow the names it
had (none, the first time), touches nothing else, is logged once (when it starts failing), and is
asked again at the flow's next metadata refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from exporter.adobe.client import PAGE_LIMIT, ApiError, NotFound
from exporter.adobe.ims import TokenError
from exporter.adobe.models import ConnectionSpec, Flow, TargetConnection
from exporter.fetch.chunking import fit
from exporter.fetch.strategy import FetchContext
from exporter.support.logs import fields

log = logging.getLogger(__name__)

SPEC_TTL = 86400.0  # a connection spec's name is asked for again after a day
BATCH = 100  # IDs a listing at most
DATASETS_BATCH = 50  # dataset IDs in one Catalog lookup
SPECS, TARGETS, DATASETS = "connectionSpecs", "targetConnections", "dataSets"

T = TypeVar("T", ConnectionSpec, TargetConnection)
R = TypeVar("R")


@dataclass(frozen=True)
class FlowNames:
    source: str | None = None
    target: str | None = None
    dataset_id: str | None = None
    dataset_known: bool = True  # False: the target connection's lookup failed (unknown, not absent)

    def describe(self) -> str:
        """'Amazon S3 → Data Lake (dataset 5f3c…)': what --check prints."""
        line = f"{self.source or '?'} → {self.target or '?'}"
        if not self.dataset_known:
            return f"{line} (dataset not looked up)"
        return f"{line} (dataset {self.dataset_id})" if self.dataset_id else line


async def resolve_all(ctx: FetchContext, watched: list[tuple[str, list[str]]]) -> None:
    """The poller's call, once a cycle after the polls: every sandbox's names at once. A bug here
    is logged and costs names only, never the cycle."""
    results = await asyncio.gather(*(resolve(ctx, sandbox, ids) for sandbox, ids in watched), return_exceptions=True)
    for (sandbox, _), r in zip(watched, results):
        if isinstance(r, BaseException):
            log.error("resolving names failed unexpectedly", exc_info=r, extra=fields(sandbox=sandbox))


async def resolve(ctx: FetchContext, sandbox: str, flow_ids: Iterable[str]) -> None:
    """Record names for the sandbox's watched flows whose metadata is new or refreshed since."""
    states = (ctx.ledger.flows.get((sandbox, f)) for f in flow_ids)
    due = [s for s in states if s is not None and s.flow is not None and not s.gone and s.names_at != s.meta_fetched_at]
    if not due:
        return
    found = await lookup(ctx, sandbox, [s.flow for s in due if s.flow is not None])
    datasets = {
        s.key: found[s.flow.id].dataset_id if found[s.flow.id].dataset_known else s.dataset_id for s in due if s.flow
    }
    named = await dataset_names(ctx, sandbox, {d for d in datasets.values() if d})
    for s in due:
        assert s.flow is not None
        n = found[s.flow.id]  # what could not be looked up keeps what the flow had
        dataset = datasets[s.key]
        name = named.get(dataset.lower(), None) if named is not None and dataset else None
        if named is None and dataset == s.dataset_id:
            name = s.dataset_name
        ctx.ledger.set_names(s, n.source or s.source_name, n.target or s.target_name, dataset, s.meta_fetched_at, name)


async def dataset_names(ctx: FetchContext, sandbox: str, ids: Iterable[str]) -> dict[str, str | None] | None:
    """Dataset names by lower-case ID, from the cache or Catalog; None if a lookup failed."""
    now, cache = ctx.clock(), ctx.caps(sandbox).dataset_names
    wanted = sorted({i.lower(): i for i in ids}.items())
    stale = [i for k, i in wanted if k not in cache or now - cache[k][1] >= SPEC_TTL]
    chunks = [stale[i : i + DATASETS_BATCH] for i in range(0, len(stale), DATASETS_BATCH)]
    answers = await _guarded(ctx, sandbox, DATASETS, _gathered(*(ctx.client.dataset_names(sandbox, c) for c in chunks)))
    if answers is None:
        return None
    for i in stale:
        cache[i.lower()] = (answers.get(i), now)  # absent from Catalog's answer: deleted, no name
    return {k: cache[k][0] for k, _ in wanted}


async def _gathered(*calls: Awaitable[dict[str, str | None]]) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    for answer in await asyncio.gather(*calls):
        merged.update(answer)
    return merged


async def lookup(ctx: FetchContext, sandbox: str, flows: list[Flow]) -> dict[str, FlowNames]:
    """Names of these flows, by flow ID. A name that could not be looked up is None; a dataset
    whose lookup failed is marked so (`dataset_known`: unknown is not absent)."""
    spec_ids = {i for f in flows for i in (f.source_connection_spec_id, f.target_connection_spec_id) if i}
    specs = await spec_names(ctx, sandbox, spec_ids)
    target_ids = sorted({f.target_connection_id for f in flows if f.target_connection_id and not f.is_destination})
    targets = await _guarded(ctx, sandbox, TARGETS, _lookup(ctx, sandbox, TARGETS, target_ids)) if target_ids else {}
    out = {}
    for f in flows:
        target = (targets or {}).get((f.target_connection_id or "").lower())
        out[f.id] = FlowNames(
            specs.get((f.source_connection_spec_id or "").lower()),
            specs.get((f.target_connection_spec_id or "").lower()),
            target.dataset_id if isinstance(target, TargetConnection) else None,
            dataset_known=targets is not None or not f.target_connection_id or f.is_destination,
        )
    return out


async def spec_names(ctx: FetchContext, sandbox: str, spec_ids: Iterable[str], strict: bool = False) -> dict[str, str]:
    """Connector names by connection spec ID (lower case), from the cache or asked for (what is
    over a day old too). On failure the cache's names, however old; with `strict` (discovery
    filters on them), the error if the cache lacks one."""
    now, cache = ctx.clock(), ctx.ledger.spec_names
    ids = sorted({i.lower() for i in spec_ids})
    stale = [i for i in ids if i not in cache or now - cache[i].fetched_at >= SPEC_TTL]
    if stale:
        found = await _guarded(ctx, sandbox, SPECS, _lookup(ctx, sandbox, SPECS, stale))
        if found is None and strict and any(i not in cache for i in stale):
            raise ApiError(SPECS, None, "connector names could not be looked up (see the log line above)")
        if found is not None:  # a spec Adobe does not know is remembered as nameless, for a day too
            ctx.ledger.record_spec_names({i: getattr(found.get(i), "name", None) for i in stale}, now)
    return {i: name for i in ids if i in cache and (name := cache[i].name) is not None}


async def _guarded(ctx: FetchContext, sandbox: str, what: str, call: Awaitable[dict[str, R]]) -> dict[str, R] | None:
    """The lookup's answer, or None if it failed (logged when it starts failing, and when it
    works again)."""
    failing = ctx.caps(sandbox).names_failing
    try:
        result = await call
    except (ApiError, TokenError) as e:
        if what not in failing:
            failing.add(what)
            log.warning(
                "names not looked up (/%s): labels keep what they had, nothing else changes; asked again at "
                "the next metadata refresh: %s",
                what,
                e,
                extra=fields(sandbox=sandbox, endpoint=what),
            )
        return None
    if what in failing:
        failing.discard(what)
        log.info("names are looked up again (/%s)", what, extra=fields(sandbox=sandbox, endpoint=what))
    return result


async def _lookup(ctx: FetchContext, sandbox: str, what: str, ids: list[str]) -> dict[str, T]:
    """Items by lower-case ID: lists first (unless refused here before), then one by one for
    what the lists lacked. Raises ApiError or TokenError."""
    caps, client = ctx.caps(sandbox), ctx.client
    many: Callable[[str, list[str]], Awaitable[list[T]]]
    one: Callable[[str, str], Awaitable[T | None]]
    if what == SPECS:
        many, one = client.list_connection_specs, client.get_connection_spec  # type: ignore[assignment]
    else:
        many, one = client.list_target_connections, client.get_target_connection  # type: ignore[assignment]
    found: dict[str, T] = {}
    listed = what not in caps.names_one_by_one and len(ids) > 1
    if listed:
        try:
            answers = await asyncio.gather(*(many(sandbox, c) for c in _chunks(ctx, sandbox, what, ids)))
        except ApiError as e:
            if e.status != 400:
                raise
            _one_by_one(caps.names_one_by_one, sandbox, what, f"a list was refused ({e})")
            listed = False
        else:
            asked = {i.lower() for i in ids}
            found = {item.id.lower(): item for items in answers for item in items if item.id.lower() in asked}
    missing = [i for i in ids if i.lower() not in found]
    alone = await asyncio.gather(*(_one(one, sandbox, i) for i in missing))
    for i, item in zip(missing, alone):
        if item is not None:
            found[i.lower()] = item
    if listed and any(item is not None for item in alone):
        _one_by_one(caps.names_one_by_one, sandbox, what, "a list lacked an item that was found alone")
    return found


async def _one(one: Callable[[str, str], Awaitable[T | None]], sandbox: str, item_id: str) -> T | None:
    try:
        return await one(sandbox, item_id)
    except NotFound:
        return None


def _chunks(ctx: FetchContext, sandbox: str, what: str, ids: list[str]) -> list[list[str]]:
    """IDs cut so that the first page's request line fits the budget, as the batched listings'
    are (exporter/fetch/chunking.py), BATCH at most."""
    return fit(
        ids,
        str,
        lambda chunk: [("property", f"id=={','.join(chunk)}"), ("limit", str(PAGE_LIMIT))],
        f"{ctx.config.adobe.base_url}/{what}",
        ctx.client.max_url_length,
        min(BATCH, ctx.caps(sandbox).limit("flows")),
    )


def _one_by_one(where: set[str], sandbox: str, what: str, why: str) -> None:
    if what not in where:
        where.add(what)
        log.warning("/%s: %s; asking one ID at a time from now on", what, why, extra=fields(sandbox=sandbox))
