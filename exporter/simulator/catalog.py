"""The simulated Catalog Service's dataset lookup: `GET /dataSets/{id1},{id2}?properties=name`.

Catalog answers a lookup of one or more datasets with an object keyed by dataset ID (catalog.yaml,
`retrieveDataset`), each reduced to the top-level properties `properties` names. IDs it does not
have are left out; when none of them is there, it answers 404. Each watched source flow's dataset
is named after its flow. Switches for the tests: `failing` (every lookup answers 500) and
`deleted` (dataset IDs Catalog no longer has).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from exporter.simulator.connections import dataset_id
from exporter.simulator.flowservice import adobe_error, json_response
from exporter.simulator.world import World

CATALOG_PATH = "/data/foundation/catalog"


@dataclass
class Catalog:
    world: World
    failing: bool = False
    deleted: set[str] = field(default_factory=set)
    lookups: list[list[str]] = field(default_factory=list)  # the IDs of each lookup, as asked
    properties: list[str | None] = field(default_factory=list)  # each lookup's `properties`

    def datasets(self, sandbox: str) -> dict[str, dict[str, Any]]:
        found = {}
        for flow in self.world.flows.values():
            ds = dataset_id(flow)
            if flow.sandbox == sandbox and ds is not None and ds not in self.deleted:
                found[ds] = {"name": f"{flow.name} dataset", "version": "1.0.0", "imsOrg": self.world.org_id}
        return found

    async def get(self, request: web.Request) -> web.Response:
        ids = [i for i in request.match_info["ids"].split(",") if i]
        self.lookups.append(ids)
        wanted = request.query.get("properties")
        self.properties.append(wanted)
        if self.failing:
            return json_response({"title": "Internal Server Error", "status": 500}, 500)
        known = self.datasets(request.headers["x-sandbox-name"])
        keep = set(wanted.split(",")) if wanted else None
        body = {i: {k: v for k, v in known[i].items() if keep is None or k in keep} for i in ids if i in known}
        if not body:
            return adobe_error("101013-404", 404, f"No dataset found for {','.join(ids)}", "Not found")
        return json_response(body)
