"""Connection specs and target connections of the simulated Flow Service, in the shapes Adobe
documents (flow-service.yaml `ConnectionSpecItemDTO`, `TargetConnectionItemDTO`; the sources
tutorials under help/sources/tutorials/api/ show both).

The connectors are real ones, with the IDs Adobe's tutorials give them: the appendices of
`collect/cloud-storage.md`, `collect/crm.md` and `collect/database.md` list each connector's name and connection spec, and
every tutorial's "Create a target connection" step names `c604ff05-…` the fixed connection spec
"associated to the Data Lake" (the dataset a source flow writes to is its `params.dataSetId`).
"""

from __future__ import annotations

import uuid
from typing import Any

from exporter.simulator.world import SimFlow, World, target_connection_id

DATA_LAKE = "c604ff05-7f1a-43c0-8e18-33bf874cb11c"
PROVIDER_ID = "0ed90a81-07f4-4586-8190-b40eccef1c5a"  # the flow spec's providerId in the tutorials
# The seed's target connection writes to the dataset of the cloud storage tutorial's example.
SEED_DATASET_ID = "5f3c3cedb2805c194ff0b69a"

CONNECTION_SPECS: dict[str, tuple[str, str]] = {  # id → (name, category)
    "ecadc60c-7455-4d87-84dc-2a0e293d997b": ("Amazon S3", "Cloud Storage"),
    "32e8f412-cdf7-464c-9885-78184cb113fd": ("Google Cloud Storage", "Cloud Storage"),
    "4c10e202-c428-4796-9208-5f1f5732b1cf": ("Azure Blob", "Cloud Storage"),
    "b3ba5556-48be-44b7-8b85-ff2b69b46dc4": ("Azure Data Lake Storage Gen2", "Cloud Storage"),
    "bf367b0d-3d9b-4060-b67b-0d3d9bd06094": ("SFTP", "Cloud Storage"),
    "cfc0fee1-7dc0-40ef-b73e-d8b134c436f5": ("Salesforce", "CRM"),
    "38ad80fe-8b06-4938-94f4-d4ee80266b07": ("Microsoft Dynamics", "CRM"),
    "000eb99-cd47-43f3-827c-43caf170f015": ("MariaDB", "Database"),  # sic: 7 hex digits in Adobe's docs too
    DATA_LAKE: ("Data Lake", "Data Lake"),
}


def connection_spec_json(spec_id: str) -> dict[str, Any] | None:
    """One connection spec as `GET /connectionSpecs/{id}` has it (the parts a monitor reads, and
    enough around them to look real); None for an ID the catalogue lacks."""
    known = CONNECTION_SPECS.get(spec_id)
    if known is None:
        return None
    name, category = known
    return {
        "id": spec_id,
        "name": name,
        "providerId": PROVIDER_ID,
        "version": "1.0",
        "attributes": {"category": category, "isSource": spec_id != DATA_LAKE},
        "permissionsInfo": {
            "view": [{"@type": "lowLevel", "name": "EnterpriseSource", "permissions": ["read"]}],
            "manage": [{"@type": "lowLevel", "name": "EnterpriseSource", "permissions": ["write"]}],
        },
    }


def dataset_id(flow: SimFlow) -> str | None:
    """The dataset a source flow writes to (24 hex digits, as Catalog's IDs are); none for a
    destination."""
    if flow.is_destination:
        return None
    if flow.dataset_id is not None:
        return flow.dataset_id
    if flow.raw is not None:
        return SEED_DATASET_ID
    return uuid.uuid5(uuid.NAMESPACE_URL, flow.id + "/d").hex[:24]


def target_connection_json(world: World, flow: SimFlow) -> dict[str, Any]:
    """`TargetConnectionItemDTO`: for a source flow, a Data Lake connection with the dataset."""
    tc_id = target_connection_id(flow)
    body: dict[str, Any] = {
        "id": tc_id,
        "createdAt": 1597784298000,
        "updatedAt": 1597784298000,
        "createdBy": "{CREATED_BY}",
        "updatedBy": "{UPDATED_BY}",
        "createdClient": "exc_app",
        "updatedClient": "exc_app",
        "sandboxId": world.sandboxes.get(flow.sandbox, ""),
        "sandboxName": flow.sandbox,
        "imsOrgId": world.org_id,
        "name": f"{flow.name} target connection",
        "description": "",
        "state": "enabled",
        "connectionSpec": {"id": flow.target_spec_id, "version": "1.0"},
        "params": {},
        "version": '"1"',
        "etag": '"1"',
    }
    dataset = dataset_id(flow)
    if dataset is not None:
        body["data"] = {"schema": {"id": "https://ns.adobe.com/{TENANT_ID}/schemas/sim", "version": "1"}}
        body["params"] = {"dataSetId": dataset}
    return body
