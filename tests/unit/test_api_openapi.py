"""The generated OpenAPI document is structurally sound and agrees with what botocore actually sends and parses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import botocore.session
import pytest

from snapkeep.api.openapi import openapi_document
from snapkeep.api.protocol import serialize_response
from snapkeep.api.router import Router
from tests.unit.test_api_protocol import sample_value, wire_request

MODEL = botocore.session.get_session().get_service_model("backup")
DOC = openapi_document(MODEL)
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SCHEMA_KEYS = {"type", "format", "properties", "required", "items", "additionalProperties", "enum", "pattern",
               "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minimum",
               "maximum", "description", "$ref", "nullable", "oneOf", "anyOf", "allOf"}
JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def test_document_is_json_and_openapi_3_0() -> None:
    assert json.loads(json.dumps(DOC)) == DOC
    assert DOC["openapi"].startswith("3.0.")
    assert DOC["info"]["title"] == "AWS Backup" and DOC["info"]["version"] == "2018-11-15"
    assert set(DOC) <= {"openapi", "info", "servers", "paths", "components", "security", "tags"} | {
        k for k in DOC if k.startswith("x-")}
    for name in DOC["components"]["schemas"]:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name


def test_every_operation_once_with_its_path_parameters() -> None:
    ids = [op["operationId"] for _, _, op in operations(DOC)]
    assert len(ids) == len(set(ids)) == len(MODEL.operation_names)
    router = Router(MODEL)
    labels = {r.operation_name: set(r.labels) for r in router.routes}
    for path, method, op in operations(DOC):
        assert path.startswith("/") and "?" not in path and method in METHODS
        in_path = set(re.findall(r"\{([^}]+)\}", path))
        params = op.get("parameters", [])
        keys = [(p["name"], p["in"]) for p in params]
        assert len(keys) == len(set(keys)), (path, method)
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == in_path == labels[op["operationId"]], (path, method)
        for p in params:
            assert p["in"] in {"path", "query", "header", "cookie"} and "schema" in p
            if p["in"] == "path":
                assert p["required"] is True
        assert op["responses"] and all(re.fullmatch(r"[1-5][0-9][0-9]|default", k) for k in op["responses"])
        for response in op["responses"].values():
            assert response["description"]
        expected = str(MODEL.operation_model(op["operationId"]).http.get("responseCode", 200))
        assert expected in op["responses"]
        if "requestBody" in op:
            assert op["requestBody"]["content"]


def test_every_ref_resolves_and_schemas_use_openapi_3_0_keywords() -> None:
    refs = 0
    for where, node in walk(DOC):
        if isinstance(node, dict) and "$ref" in node:
            refs += 1
            resolve(DOC, node["$ref"])
            assert set(node) == {"$ref"}, where
    assert refs > 100
    schemas = [s for w, s in walk(DOC) if w.rsplit("/", 1)[-1] in ("schema", "items", "additionalProperties")]
    schemas += list(DOC["components"]["schemas"].values())
    schemas += [p for w, node in walk(DOC) if w.endswith("/properties") for p in node.values()]
    for schema in schemas:
        assert isinstance(schema, dict)
        assert set(schema) <= SCHEMA_KEYS, set(schema) - SCHEMA_KEYS
        if "type" in schema:
            assert schema["type"] in JSON_TYPES
        if "pattern" in schema:
            re.compile(schema["pattern"])
        for low, high in [("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum")]:
            if low in schema and high in schema:
                assert schema[low] <= schema[high]
        if "required" in schema:
            assert set(schema["required"]) <= set(schema.get("properties", {}))


def conforms(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """A small JSON Schema check (the keywords openapi.py emits), enough to tell the document matches the wire."""
    if "$ref" in schema:
        return conforms(doc, resolve(doc, schema["$ref"]), value, where)
    problems: list[str] = []
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in checks and not isinstance(value, checks[kind]):
        return [f"{where}: not {kind}"]
    if kind in ("integer", "number") and (isinstance(value, bool) or not isinstance(value, int | float)):
        return [f"{where}: not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: not in enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: pattern")
    size = len(value) if isinstance(value, str | list | dict) else None
    bounds = {"minLength": (size, 1), "maxLength": (size, -1), "minItems": (size, 1), "maxItems": (size, -1),
              "minimum": (value, 1), "maximum": (value, -1)}
    for key, (measured, sign) in bounds.items():
        if key in schema and measured is not None and (measured - schema[key]) * sign < 0:
            problems.append(f"{where}: {key}")
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}.{name}: required")
        for name, item in value.items():
            sub = schema.get("properties", {}).get(name, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                problems += conforms(doc, sub, item, f"{where}.{name}")
    if kind == "array":
        for i, item in enumerate(value):
            problems += conforms(doc, schema["items"], item, f"{where}[{i}]")
    return problems


@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
def test_botocore_requests_and_our_responses_conform_to_the_document(full: bool) -> None:
    by_id = {op["operationId"]: (path, method, op) for path, method, op in operations(DOC)}
    wrong: dict[str, list[str]] = {}
    for name in sorted(MODEL.operation_names):
        op_model = MODEL.operation_model(name)
        _, method, op = by_id[name]
        params = sample_value(op_model.input_shape, full=full) if op_model.input_shape else {}
        http_method, _, query, _, body = wire_request(op_model, params)
        problems: list[str] = []
        assert http_method.lower() == method
        declared_query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        for key, _ in parse_qsl(query, keep_blank_values=True):
            if key not in declared_query:
                problems.append(f"query {key} undeclared")
        if body:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            problems += conforms(DOC, schema, json.loads(body))
        elif "requestBody" in op and op["requestBody"]["required"]:
            problems.append("required body missing")
        output = sample_value(op_model.output_shape, full=full) if op_model.output_shape else {}
        status, _, response_body = serialize_response(op_model, output)
        response = op["responses"][str(status)]
        if response_body:
            problems += conforms(DOC, response["content"]["application/json"]["schema"], json.loads(response_body))
        if problems:
            wrong[name] = problems
    assert wrong == {}
