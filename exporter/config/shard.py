"""Sharding: each flow belongs to exactly one of COUNT replicas, by a stable hash of its ID.

`--shard INDEX/COUNT` (or AEP_EXPORTER_SHARD), or `--shard ordinal/COUNT` to take INDEX from a
StatefulSet pod's name (`aep-flow-exporter-2` → 2, from $POD_NAME or $HOSTNAME). The hash is
SHA-256 of the lower-cased flow ID, so every replica agrees without talking to the others, and a
flow stays on its replica for as long as COUNT stays the same.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, flow_id: str) -> bool:
        return shard_of(flow_id, self.count) == self.index


def shard_of(flow_id: str, count: int) -> int:
    digest = hashlib.sha256(flow_id.strip().lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> Shard:
    """'2/5', or 'ordinal/5' with the index from the pod name. ValueError names what is wrong."""
    env = os.environ if env is None else env
    m = re.fullmatch(r"\s*(\d+|ordinal)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"--shard: expected INDEX/COUNT (e.g. 0/3) or ordinal/COUNT, got {text!r}")
    count = int(m.group(2))
    if count < 1:
        raise ValueError(f"--shard: COUNT must be at least 1, got {count}")
    if m.group(1) == "ordinal":
        name = env.get("POD_NAME") or env.get("HOSTNAME") or ""
        o = re.search(r"-(\d+)$", name)
        if not o:
            raise ValueError(
                f"--shard ordinal/{count}: cannot find a StatefulSet ordinal in pod name {name!r} "
                "(set POD_NAME or HOSTNAME to e.g. aep-flow-exporter-2)"
            )
        index = int(o.group(1))
    else:
        index = int(m.group(1))
    if index >= count:
        raise ValueError(f"--shard: INDEX must be below COUNT, got {index}/{count}")
    return Shard(index, count)
