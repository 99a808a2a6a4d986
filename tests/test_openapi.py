"""The OpenAPI document is valid and says enough for client generators to type everything:
an operationId per operation, every always-present response field required, typed enums,
typed nullable references. (Generated clients are built and used in tests/test_typed_clients.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate

from app import create_app
from tests.conftest import app_config

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("openapi") / "doc.sqlite3"
    flask_app: Flask = create_app(app_config(f"sqlite:///{path}"))
    return flask_app.test_client().get("/api/openapi.json").get_json()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def response_schema_names(spec: dict[str, Any]) -> set[str]:
    """The components reachable from the success responses."""
    pending: list[dict[str, Any]] = []
    for _, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith("2") and "content" in response:
                pending.append(response["content"]["application/json"]["schema"])
    names: set[str] = set()
    while pending:
        schema = pending.pop()
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in names:
                names.add(name)
                pending.append(spec["components"]["schemas"][name])
            continue
        pending.extend(schema.get("properties", {}).values())
        pending.extend(schema.get("allOf", []) + schema.get("anyOf", []))
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                pending.append(schema[key])
    return names


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.0.3"
    validate(spec)


def test_every_operation_has_a_unique_camel_case_operation_id(spec: dict[str, Any]) -> None:
    ids = {label: operation.get("operationId") for label, operation in operations(spec)}
    missing = [label for label, operation_id in ids.items() if not operation_id]
    assert not missing, f"operations without an operationId: {missing}"
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", value) for value in ids.values()), ids
    assert len(set(ids.values())) == len(ids), "operationIds must be unique"
    assert ids["POST /api/auth/login"] == "login"
    assert ids["POST /api/purchases"] == "createPurchase"
    assert ids["GET /api/mock-tests"] == "listCards"
    assert ids["POST /api/mock-tests/{card_id}/start"] == "startCard"
    assert ids["GET /api/auth/me"] == "getMe"


def test_response_schemas_require_every_field(spec: dict[str, Any]) -> None:
    names = response_schema_names(spec)
    assert {"Me", "Card", "PurchaseResult", "CoursePage", "Session"} <= names
    incomplete = {
        name: sorted(set(schema["properties"]) - set(schema.get("required", [])))
        for name in names
        if (schema := spec["components"]["schemas"][name]).get("properties")
    }
    assert {name: fields for name, fields in incomplete.items() if fields} == {}


def test_enums_are_typed(spec: dict[str, Any]) -> None:
    untyped: list[str] = []
    for name, schema in spec["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            for candidate in (prop, prop.get("items", {})):
                if "enum" in candidate and "type" not in candidate:
                    untyped.append(f"{name}.{field}")
    assert untyped == []
    assert spec["components"]["schemas"]["Card"]["properties"]["status"]["type"] == "string"


def test_nullable_references_are_typed(spec: dict[str, Any]) -> None:
    me = spec["components"]["schemas"]["Me"]["properties"]
    assert me["customer"] == {"allOf": [{"$ref": "#/components/schemas/Customer"}], "nullable": True}
    assert me["subscription"] == {"allOf": [{"$ref": "#/components/schemas/Subscription"}], "nullable": True}
    untyped = [
        f"{name}.{field}"
        for name, schema in spec["components"]["schemas"].items()
        for field, prop in schema.get("properties", {}).items()
        if {"type": "object", "nullable": True} in prop.get("anyOf", [])
    ]
    assert untyped == []


def test_documented_headers_keep_the_query_parameters(spec: dict[str, Any]) -> None:
    listed = spec["paths"]["/api/courses"]["get"]["parameters"]
    assert {(p["in"], p["name"]) for p in listed} >= {("query", "page"), ("query", "q"), ("header", "If-None-Match")}


def test_every_create_documents_its_location_and_every_json_body_its_415(spec: dict[str, Any]) -> None:
    creates = [(label, op) for label, op in operations(spec) if "201" in op["responses"]]
    assert len(creates) >= 8
    assert [label for label, op in creates if "Location" not in op["responses"]["201"].get("headers", {})] == []
    purchase = spec["paths"]["/api/purchases"]["post"]["responses"]
    assert all("Idempotent-Replayed" in purchase[status]["headers"] for status in ("200", "201"))
    bodies = [(label, op) for label, op in operations(spec) if "requestBody" in op]
    assert [label for label, op in bodies if "415" not in op["responses"]] == []


def test_every_property_has_a_type_and_decimals_are_strings(spec: dict[str, Any]) -> None:
    """A property without a type is `unknown` in TypeScript and `Any` in Python; a decimal
    the server writes as "12.50" must not be documented as a number."""
    typed = {"type", "$ref", "allOf", "anyOf", "oneOf"}
    schemas = spec["components"]["schemas"]
    untyped = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, prop in schema.get("properties", {}).items()
        if not typed & set(prop) or (prop.get("type") == "array" and not typed & set(prop["items"]))
    ]
    assert untyped == []
    decimals = {("Card", "marks"), ("ReviewQuestion", "answer"), ("ReviewQuestion", "tolerance")}
    decimals |= {("QuestionInput", "answer"), ("QuestionAdmin", "tolerance")}
    for name, field in decimals:
        assert schemas[name]["properties"][field]["type"] == "string", f"{name}.{field}"
        assert schemas[name]["properties"][field]["format"] == "decimal", f"{name}.{field}"
    assert schemas["Bundle"]["properties"]["currency"]["type"] == "string"
