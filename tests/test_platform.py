"""Health probes, OpenAPI docs and CORS, on both databases and under gunicorn."""

from __future__ import annotations

from typing import Any

import requests
from flask.testing import FlaskClient

from tests.support.live_server import LiveServer, fire_concurrently


def test_liveness_and_readiness(client: FlaskClient, backend: str) -> None:
    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ok", "database": "ok"}


def test_openapi_document_describes_problem_responses(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    readiness = spec["paths"]["/health/ready"]["get"]["responses"]
    assert readiness["503"] == {"$ref": "#/components/responses/SERVICE_UNAVAILABLE"}
    unavailable = spec["components"]["responses"]["SERVICE_UNAVAILABLE"]
    assert unavailable["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert {"type", "title", "status", "request_id"} <= set(spec["components"]["schemas"]["Problem"]["required"])


def test_interactive_docs_are_served(client: FlaskClient) -> None:
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.get_data(as_text=True)


def test_cors_allows_the_spa_origin_only(client: FlaskClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
    }
    allowed = client.options("/api/openapi.json", headers={"Origin": "http://localhost:5173", **preflight})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "idempotency-key" in allowed.headers["Access-Control-Allow-Headers"].lower()
    other = client.options("/api/openapi.json", headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_gunicorn_workers_serve_concurrent_requests(live_server: LiveServer) -> None:
    def probe(index: int) -> Any:
        return requests.get(live_server.url("/health/ready"), headers={"X-Request-ID": f"probe-{index}"}, timeout=10)

    responses = fire_concurrently(24, probe)
    assert [r.status_code for r in responses] == [200] * 24
    assert sorted(r.headers["X-Request-ID"] for r in responses) == sorted(f"probe-{i}" for i in range(24))
