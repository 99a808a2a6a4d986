"""Every failure answers with the same problem+json body, a request id and no internals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask_jwt_extended import create_access_token, jwt_required

from app import create_app
from shared.errors import Conflict, Forbidden
from shared.extensions import limiter
from shared.openapi import Blueprint
from shared.services.accounts import AuthService
from tests.conftest import LEAK_MARKERS, app_config, migrate_to_head
from tests.support.accounts import create_admin


class EchoSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=2))
    age = ma.fields.Integer(required=True)


def _probe_blueprint() -> Blueprint:
    blp = Blueprint("probe", __name__, url_prefix="/api/probe")

    @blp.route("/echo", methods=["POST"])
    @blp.arguments(EchoSchema)
    @blp.response(200, EchoSchema)
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @blp.route("/crash")
    def crash() -> None:
        raise RuntimeError("SELECT password_hash FROM users -- secret internals")

    @blp.route("/conflict")
    def conflict() -> None:
        raise Conflict("That name is taken.", errors={"name": ["That name is taken."]})

    @blp.route("/forbidden")
    def forbidden() -> None:
        raise Forbidden("Admins only.")

    @blp.route("/private")
    @jwt_required()
    def private() -> dict[str, str]:
        return {"ok": "yes"}

    @blp.route("/limited")
    @limiter.limit("2 per minute")
    def limited() -> dict[str, str]:
        return {"ok": "yes"}

    return blp


@pytest.fixture(scope="module")
def probe_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    path = tmp_path_factory.mktemp("probe") / "probe.sqlite3"
    flask_app = migrate_to_head(f"sqlite:///{path}")
    flask_app.extensions["flask-smorest"]["apis"][""]["ext_obj"].register_blueprint(_probe_blueprint())
    return flask_app


@pytest.fixture
def probe(probe_app: Flask) -> Iterator[Any]:
    yield probe_app.test_client()
    limiter.reset()


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = response.get_data(as_text=True)
    for marker in LEAK_MARKERS:
        assert marker not in text
    return body


def test_unknown_path_is_a_404_problem(probe: Any) -> None:
    body = assert_problem(probe.get("/api/does-not-exist"), 404)
    assert body["instance"] == "/api/does-not-exist"


def test_wrong_method_is_a_405_problem_with_allow(probe: Any) -> None:
    response = probe.delete("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_malformed_json_is_a_400_problem(probe: Any) -> None:
    response = probe.post("/api/probe/echo", data="{not json", content_type="application/json")
    body = assert_problem(response, 400)
    assert "JSON" in body["detail"]


def test_validation_error_is_a_422_with_field_errors(probe: Any) -> None:
    body = assert_problem(probe.post("/api/probe/echo", json={"name": "x"}), 422)
    assert set(body["errors"]) == {"name", "age"}
    assert all(isinstance(msg, str) for msgs in body["errors"].values() for msg in msgs)


def test_valid_request_passes_through(probe: Any) -> None:
    response = probe.post("/api/probe/echo", json={"name": "Asha", "age": 30})
    assert response.status_code == 200
    assert response.get_json() == {"name": "Asha", "age": 30}


def test_internal_error_is_a_500_without_internals(probe: Any, caplog: pytest.LogCaptureFixture) -> None:
    response = probe.get("/api/probe/crash", headers={"X-Request-ID": "trace-me-123"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "trace-me-123"
    assert "secret internals" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("secret internals" in (r.exc_text or str(r.exc_info)) for r in logged)
    assert all(getattr(r, "request_id", None) == "trace-me-123" for r in logged)


def test_service_exceptions_map_to_409_and_403(probe: Any) -> None:
    body = assert_problem(probe.get("/api/probe/conflict"), 409)
    assert body["errors"] == {"name": ["That name is taken."]}
    assert body["type"] == "urn:exam-shop:problem:conflict"
    assert assert_problem(probe.get("/api/probe/forbidden"), 403)["detail"] == "Admins only."


def test_missing_invalid_and_expired_tokens_are_401(probe: Any, probe_app: Flask) -> None:
    assert_problem(probe.get("/api/probe/private"), 401)
    bad = probe.get("/api/probe/private", headers={"Authorization": "Bearer not.a.token"})
    assert_problem(bad, 401)
    with probe_app.app_context():
        user = create_admin()
        expired = create_access_token(str(user.id), expires_delta=timedelta(seconds=-5))
        valid = AuthService.start_session(user)["access_token"]
    body = assert_problem(probe.get("/api/probe/private", headers={"Authorization": f"Bearer {expired}"}), 401)
    assert "expired" in body["detail"]
    assert probe.get("/api/probe/private", headers={"Authorization": f"Bearer {valid}"}).status_code == 200


def test_rate_limit_is_a_429_problem_with_retry_after(probe: Any) -> None:
    assert probe.get("/api/probe/limited").status_code == 200
    assert probe.get("/api/probe/limited").status_code == 200
    response = probe.get("/api/probe/limited")
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) > 0


def test_request_id_is_echoed_or_generated(probe: Any) -> None:
    sent = probe.get("/health", headers={"X-Request-ID": "abc-123"})
    assert sent.headers["X-Request-ID"] == "abc-123"
    hostile = probe.get("/health", headers={"X-Request-ID": "bad id with spaces!"})
    assert hostile.headers["X-Request-ID"] != "bad id with spaces!"
    assert len(hostile.headers["X-Request-ID"]) == 32


def test_body_over_the_limit_is_a_413_problem(probe: Any, probe_app: Flask) -> None:
    oversized = "x" * (probe_app.config["MAX_CONTENT_LENGTH"] + 1)
    response = probe.post("/api/probe/echo", data=oversized, content_type="application/json")
    assert_problem(response, 413)


def test_database_down_is_a_503_with_retry_after(tmp_path_factory: pytest.TempPathFactory) -> None:
    unreachable = create_app(app_config("mysql+pymysql://root@127.0.0.1:9/nowhere"))
    response = unreachable.test_client().get("/health/ready")
    body = assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    assert "127.0.0.1" not in body["detail"]
    assert "nowhere" not in response.get_data(as_text=True)
    assert unreachable.test_client().get("/health").status_code == 200
