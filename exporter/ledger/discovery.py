"""What discovery listings found: which flows each sandbox with `discover:` has, and since when.

In: each successful listing (exporter/fetch/discovery.py), and the flows the state file restored.
Out: the discovered flows the poller watches beside the configured ones. This is membership, not
accounting: a flow missing from a listing stays (with its counters) through `discovery_grace`
listings before it retires, so a rename or a brief disable does not cost its counts. The Ledger
takes these methods on (it is the one writer of the records); nothing here counts a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exporter.adobe.models import Flow
from exporter.ledger.records import FlowState, SandboxState


class DiscoveryRecords:
    """The discovery part of the Ledger: state in SandboxState's discovery fields."""

    flows: dict[tuple[str, str], FlowState]
    sandboxes: dict[str, SandboxState]

    def discovered(self, sandbox: str) -> Mapping[str, Flow]:
        """The flows discovery last found in the sandbox (id → metadata from the listing)."""
        state = self.sandboxes.get(sandbox)
        return state.discovered if state is not None else {}

    def discovery_due(self, sandbox: str, now: float, interval: float) -> bool:
        state = self.sandboxes.get(sandbox)
        return state is None or state.discovered_at is None or now - state.discovered_at >= interval

    def forget_discovery_times(self) -> None:
        """The discover settings may have changed (a reload): every sandbox is due again."""
        for state in self.sandboxes.values():
            state.discovered_at = None

    def record_discovery(self, sandbox: str, found: dict[str, Flow], now: float, grace: int = 0) -> tuple[int, int]:
        """A successful discovery listing; returns (flows added, flows retired). A flow missing
        from it stays (with its ledger) through `grace` consecutive listings before it retires:
        a flow renamed or briefly disabled must not lose its counters."""
        state = self.sandboxes.setdefault(sandbox, SandboxState())
        kept: dict[str, Flow] = dict(found)
        misses: dict[str, int] = {}
        for flow_id, flow in state.discovered.items():
            if flow_id not in found and state.discovery_misses.get(flow_id, 0) < grace:
                kept[flow_id], misses[flow_id] = flow, state.discovery_misses.get(flow_id, 0) + 1
        added, removed = len(set(kept) - set(state.discovered)), len(set(state.discovered) - set(kept))
        state.discovered, state.discovery_misses = kept, misses
        state.discovered_at = state.discovery_success = now
        return added, removed

    def adopt_discovered(self, sandbox: str, flow_ids: Iterable[str]) -> None:
        """Restored flows of a discovering sandbox count as discovered until discovery says
        otherwise, so a discovery error at start does not drop their accounting. Until their
        metadata is fetched, all that is known of them is their ID (aep_flow_info has empty labels)."""
        state = self.sandboxes.setdefault(sandbox, SandboxState())
        for flow_id in flow_ids:
            known = state.discovered.setdefault(flow_id, Flow(id=flow_id))
            restored = self.flows.get((sandbox, flow_id))
            if restored is not None and restored.flow is None:
                restored.flow = known
                restored.version += 1
