"""What a browser client relies on, through the test client on both databases: the headers
CORS lets it read, Location on every create, a clear 415 for a body that is not declared
JSON, Retry-After only where a client must wait. (In a real browser: tests/test_browser.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import EXPOSED_HEADERS, create_app
from shared.config import ConfigError
from tests.conftest import SPA_ORIGIN, app_config
from tests.support.accounts import PASSWORD, bearer, register
from tests.support.catalog import make_course

READABLE = {
    "X-Request-ID",
    "Location",
    "Retry-After",
    "Idempotent-Replayed",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
}


def test_cors_lets_the_spa_read_every_header_meant_for_it(client: FlaskClient) -> None:
    assert set(EXPOSED_HEADERS) >= READABLE
    response = client.get("/api/courses", headers={"Origin": SPA_ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    exposed = {name.strip().lower() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {name.lower() for name in READABLE} <= exposed


def test_a_preflight_allows_what_the_spa_sends_and_may_be_kept(client: FlaskClient) -> None:
    sent = "authorization, content-type, idempotency-key"
    headers = {"Origin": SPA_ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": sent}
    response = client.options("/api/purchases", headers=headers)
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert {name.strip() for name in response.headers["Access-Control-Allow-Headers"].split(",")} == set(
        sent.split(", ")
    )
    assert int(response.headers["Access-Control-Max-Age"]) == 7200


def test_answers_vary_by_origin_for_caches(client: FlaskClient) -> None:
    """With one SPA origin (CORS_ORIGINS in the tests, and often in production), the public,
    cacheable catalog would otherwise be served from a cache without its CORS header."""
    for headers in ({"Origin": SPA_ORIGIN}, {}, {"Origin": "https://elsewhere.example"}):
        response = client.get("/api/courses", headers=headers)
        assert "public" in response.headers["Cache-Control"]
        assert {"Origin", "Authorization"} <= set(response.vary), headers


def test_cors_origins_match_as_written_and_a_malformed_one_stops_the_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cors.sqlite3'}"
    origins = "https://Shop.Example.com:443/, http://[::1]:8080"
    client = create_app(app_config(url, CORS_ORIGINS=origins)).test_client()
    # (flask-cors would read the IPv6 brackets as a regular expression: [::1] matching "1".)
    for origin, allowed in (
        ("https://shop.example.com", True),
        ("http://[::1]:8080", True),
        ("http://1:8080", False),
        ("https://shop.example.com.evil.example", False),
    ):
        response = client.get("/api/no-such-thing", headers={"Origin": origin})
        assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None), origin
    with pytest.raises(ConfigError, match=re.escape("CORS_ORIGINS: 'https://shop.example.com/app' is not an origin")):
        create_app(app_config(url, CORS_ORIGINS="https://shop.example.com/app"))


def test_every_create_says_where_the_new_resource_is(client: FlaskClient, admin: dict[str, str]) -> None:
    created = client.post("/api/courses", json={"slug": "physics", "title": "Physics"}, headers=admin)
    assert created.status_code == 201
    assert client.get(created.headers["Location"]).get_json()["id"] == created.get_json()["id"]
    # CheckedClient (tests/conftest.py) fails any test that gets a 201 without Location.


def test_a_json_body_sent_as_something_else_is_a_415_that_says_so(client: FlaskClient) -> None:
    body = json.dumps({"email": "someone@example.com", "password": PASSWORD})
    for headers in ({"Content-Type": "text/plain;charset=UTF-8"}, {}):
        response = client.post("/api/auth/login", data=body, headers=headers)
        assert response.status_code == 415, response.get_json()
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert "Content-Type: application/json" in problem["detail"]
        assert "errors" not in problem


def test_retry_after_is_only_on_answers_that_ask_to_wait(client: FlaskClient, app: Flask) -> None:
    account = register(client)
    email = account["user"]["email"]
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    assert "X-RateLimit-Limit" in login.headers
    assert "Retry-After" not in login.headers
    failures = [client.post("/api/auth/login", json={"email": email, "password": "wrong-pass-123"}) for _ in range(6)]
    assert [response.status_code for response in failures[:5]] == [401] * 5
    assert all("Retry-After" not in response.headers for response in failures[:5])
    assert failures[5].status_code == 429
    assert int(failures[5].headers["Retry-After"]) > 0
    assert not any(name.lower().startswith("x-limiter") for name, _ in failures[5].headers)


def test_a_purchase_names_its_location_and_a_replay_says_so(client: FlaskClient) -> None:
    headers = {**bearer(register(client)["access_token"]), "Idempotency-Key": "buy-once"}
    subject_id = make_course(subjects=1).subject_ids[0]
    body = {"purchase_type": "single_subject", "subject_id": subject_id}
    first = client.post("/api/purchases", json=body, headers=headers)
    again = client.post("/api/purchases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    purchase_id = first.get_json()["purchase"]["id"]
    assert first.headers["Location"] == again.headers["Location"] == f"/api/purchases/{purchase_id}"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get(first.headers["Location"], headers=headers).status_code == 200
