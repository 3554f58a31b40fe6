"""Writes spec_examples.json: the answer a mock generated from Adobe's OpenAPI specs gives to each
operation the exporter calls, as a static mock server (Prism's default) builds it: the response's
own example where the spec has one, else one from the schema's property examples (the first item
of each array, the first type's default where a property has no example).

    python tests/payloads/spec_examples.py FLOW_SERVICE_YAML CATALOG_YAML

The specs: AdobeDocs/experience-platform-apis static/swagger-specs/flow-service.yaml and
catalog.yaml (the commit is written into the file's `source`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

OPERATIONS = {
    "flow-service": [
        "listFlowRuns",
        "retrieveFlowRun",
        "listFlows",
        "retrieveFlow",
        "listConnectionSpecs",
        "retrieveConnectionSpec",
        "getTargetConnections",
        "retrieveTargetConnection",
    ],
    "catalog": ["retrieveDataset"],
}
DEFAULTS = {"string": "string", "integer": 0, "number": 0, "boolean": True}


def example(spec: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    schemas = spec.get("components", {}).get("schemas", {})
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "example" in schema or depth > 12:
        return schema.get("example")
    if "allOf" in schema:
        out: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example(spec, part, depth + 1)
            if isinstance(value, dict):
                out.update(value)
        return out
    if schema.get("type") == "array":
        return [example(spec, schema.get("items", {}), depth + 1)]
    if schema.get("type") == "object" or "properties" in schema:
        return {k: example(spec, v, depth + 1) for k, v in schema.get("properties", {}).items()}
    return DEFAULTS.get(schema.get("type", ""))


def answers(spec: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    out = {}
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") in wanted:
                ok = op["responses"].get("200") or op["responses"].get(200)
                media = ok["content"]["application/json"]
                out[op["operationId"]] = media["example"] if "example" in media else example(spec, media["schema"])
    return out


def main(flow_service: str, catalog: str) -> None:
    result: dict[str, Any] = {"source": "AdobeDocs/experience-platform-apis static/swagger-specs (see README.md)"}
    for name, path in (("flow-service", flow_service), ("catalog", catalog)):
        result.update(answers(yaml.safe_load(Path(path).read_text()), OPERATIONS[name]))
    out = Path(__file__).with_name("spec_examples.json")
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
