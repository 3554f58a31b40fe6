"""Discovery: which flows a sandbox with `discover:` has.

The sandbox's flows are listed with the server-side filters the API has (state, flowSpec.id), then
ours are applied again (should the API ignore one) along with those it lacks (no 'like' operator:
name matching is client-side). `source_names` matches the source connector's name, looked up by
connection spec (exporter/fetch/names.py: cached a day). On error, of the listing or of that lookup,
the previous list stays: a flow is never dropped because a name could not be read.
"""

from __future__ import annotations

import logging

from exporter.adobe.client import ApiError
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Flow
from exporter.adobe.question import incomplete
from exporter.config import SandboxConfig
from exporter.fetch.names import spec_names
from exporter.fetch.strategy import FetchContext
from exporter.support.logs import fields

log = logging.getLogger(__name__)


async def discover(ctx: FetchContext, sandbox: SandboxConfig) -> bool:
    """List the sandbox's flows and record the ones that pass the filters; False on error."""
    d = sandbox.discover
    assert d is not None
    properties = [f"state=={','.join(d.states)}"]
    if d.flow_spec_ids:
        properties.append(f"flowSpec.id=={','.join(d.flow_spec_ids)}")
    try:
        flows = await ctx.client.list_flows(sandbox.name, properties)
        sources = await _source_names(ctx, sandbox, flows)
    except (ApiError, TokenError) as e:
        kept = len(ctx.ledger.discovered(sandbox.name))
        log.warning(
            "discovery failed, keeping the previous %d flow(s): %s", kept, e, extra=fields(sandbox=sandbox.name)
        )
        return False
    found = {f.id: f for f in flows if wanted(sandbox, f, sources.get((f.source_connection_spec_id or "").lower()))}
    if incomplete(flows):  # a listing cut short by a next link: it adds flows, it retires none
        found = {**ctx.ledger.discovered(sandbox.name), **found}
    added, removed = ctx.ledger.record_discovery(sandbox.name, found, ctx.clock(), ctx.config.discovery_grace)
    if added or removed:
        log.info(
            "discovery found %d flow(s) (+%d, -%d)", len(found), added, removed, extra=fields(sandbox=sandbox.name)
        )
    return True


async def _source_names(ctx: FetchContext, sandbox: SandboxConfig, flows: list[Flow]) -> dict[str, str]:
    """Source connector names by spec ID, when `source_names` filters on them (raises on error)."""
    d = sandbox.discover
    if d is None or d.source_names is None:
        return {}
    ids = {f.source_connection_spec_id for f in flows if f.source_connection_spec_id}
    return await spec_names(ctx, sandbox.name, ids, strict=True)


def wanted(sandbox: SandboxConfig, flow: Flow, source_name: str | None = None) -> bool:
    """Whether a listed flow passes the sandbox's discover filters (`source_name`: its source
    connector's name, for `source_names`)."""
    d = sandbox.discover
    assert d is not None
    return (
        (flow.state or "").lower() in {s.lower() for s in d.states}
        and (not d.flow_spec_ids or flow.flow_spec_id in d.flow_spec_ids)
        and (sandbox.include_destination_flows or not flow.is_destination)
        and flow.id.lower() not in {f.lower() for f in d.exclude}
        and d.matches_name(flow.name)
        and d.matches_source(source_name)
    )
