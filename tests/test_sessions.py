"""Sessions (logout, logout-all, other sessions) and the login and registration limits,
in-process on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import select

from app import create_app
from shared.extensions import db
from shared.models import User, UserSession
from shared.services.accounts import AuthService
from tests.conftest import CheckedClient, app_config
from tests.support.accounts import PASSWORD, bearer, login, register, registration
from tests.support.queries import count_rows

WRONG = "wrong-password-1"


def statuses(client: FlaskClient, tokens: list[str], path: str = "/api/auth/me") -> list[int]:
    """The status of `path` for each token (GET for /me, POST for /refresh)."""
    method = "post" if path == "/api/auth/refresh" else "get"
    return [getattr(client, method)(path, headers=bearer(token)).status_code for token in tokens]


def test_a_logout_with_the_access_token_ends_its_refresh_token(client: FlaskClient) -> None:
    tokens = register(client)
    assert client.post("/api/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204
    refused = client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert refused.status_code == 401
    assert "revoked" in refused.get_json()["detail"]
    assert client.get("/api/auth/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_a_logout_with_the_refresh_token_ends_its_access_tokens(client: FlaskClient) -> None:
    tokens = register(client)
    refreshed = client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).get_json()["access_token"]
    assert statuses(client, [tokens["access_token"], refreshed]) == [200, 200]
    assert client.post("/api/auth/logout", headers=bearer(tokens["refresh_token"])).status_code == 204
    assert statuses(client, [tokens["access_token"], refreshed]) == [401, 401]
    assert statuses(client, [tokens["refresh_token"]], "/api/auth/refresh") == [401]


def test_one_token_pair_is_one_session_and_a_logout_ends_only_it(client: FlaskClient) -> None:
    first = register(client)
    second = login(client, first["user"]["email"])
    claims = [decode_token(t)["sid"] for t in (first["access_token"], first["refresh_token"], second["access_token"])]
    assert claims[0] == claims[1] != claims[2]
    assert client.post("/api/auth/logout", headers=bearer(first["access_token"])).status_code == 204
    assert statuses(client, [first["access_token"], second["access_token"]]) == [401, 200]
    assert statuses(client, [second["refresh_token"]], "/api/auth/refresh") == [200]
    assert count_rows(UserSession, UserSession.ended_at.is_(None)) == 1


def test_logout_all_ends_every_session_of_the_caller_and_no_one_else(client: FlaskClient) -> None:
    mine = register(client)
    email = mine["user"]["email"]
    others = [login(client, email), login(client, email)]
    stranger = register(client)
    # any of the caller's tokens may do it, a refresh token too
    assert client.post("/api/auth/logout-all", headers=bearer(others[0]["refresh_token"])).status_code == 204
    sessions = [mine, *others]
    assert statuses(client, [s["access_token"] for s in sessions]) == [401, 401, 401]
    assert statuses(client, [s["refresh_token"] for s in sessions], "/api/auth/refresh") == [401, 401, 401]
    assert statuses(client, [stranger["access_token"]]) == [200]
    assert statuses(client, [login(client, email)["access_token"]]) == [200]  # a new login starts afresh
    assert client.post("/api/auth/logout-all", headers=bearer(mine["access_token"])).status_code == 401


def test_end_other_sessions_keeps_only_the_current_one(app: Flask, client: FlaskClient) -> None:
    current = register(client)
    email = current["user"]["email"]
    others = [login(client, email), login(client, email)]
    stranger = register(client)
    user = db.session.execute(select(User).where(User.email == email)).scalar_one()
    assert AuthService.end_other_sessions(user, decode_token(current["access_token"])["sid"]) == 2
    assert statuses(client, [current["access_token"], *(o["access_token"] for o in others)]) == [200, 401, 401]
    assert statuses(client, [o["refresh_token"] for o in others], "/api/auth/refresh") == [401, 401]
    assert statuses(client, [stranger["access_token"]]) == [200]
    assert AuthService.end_other_sessions(user, decode_token(current["access_token"])["sid"]) == 0


def test_tokens_without_a_session_are_refused(app: Flask, client: FlaskClient) -> None:
    """Tokens issued before sessions existed (no `sid`) are refused: their owners log in again."""
    user_id = str(register(client)["user"]["id"])
    old_access = create_access_token(identity=user_id, additional_claims={"role": "student"})
    old_refresh = create_refresh_token(identity=user_id, additional_claims={"role": "student"})
    assert statuses(client, [old_access]) == [401]
    assert statuses(client, [old_refresh], "/api/auth/refresh") == [401]
    # a session id that is someone else's is no session of this user
    other = register(client)
    borrowed = create_access_token(
        identity=user_id, additional_claims={"sid": decode_token(other["access_token"])["sid"]}
    )
    assert statuses(client, [borrowed]) == [401]


def test_authentication_is_one_statement(app: Flask, client: FlaskClient, query_counter: Callable[[], Any]) -> None:
    tokens = register(client)
    payload = decode_token(tokens["access_token"])
    db.session.remove()
    with query_counter() as queries:
        principal, revoked = AuthService.principal(payload["sub"], payload["sid"])
    assert queries.count == 1
    assert principal is not None
    assert not revoked
    assert principal.customer_id is not None  # read by the same statement
    assert (principal.id, principal.is_admin) == (int(payload["sub"]), False)


# --------------------------------------------------------------------------- rate limits

CLIENT_A, CLIENT_B = "203.0.113.10", "198.51.100.20"


@pytest.fixture
def proxied(app: Flask) -> Iterator[Callable[..., FlaskClient]]:
    """`proxied(**settings)`: a client of the app behind one trusted proxy (TRUSTED_PROXY_COUNT=1),
    so that X-Forwarded-For names the client, on the same database as `app`."""
    made: list[Flask] = []

    def make(**settings: Any) -> FlaskClient:
        behind_proxy = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], TRUSTED_PROXY_COUNT=1, **settings))
        behind_proxy.test_client_class = CheckedClient
        made.append(behind_proxy)
        return behind_proxy.test_client()

    yield make
    for behind_proxy in made:
        with behind_proxy.app_context():
            db.engine.dispose()


def attempt(client: FlaskClient, address: str, email: str, password: str) -> Any:
    return client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": address}
    )


def assert_limited(response: Any) -> None:
    assert response.status_code == 429, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 429
    assert int(response.headers["Retry-After"]) > 0


def test_failed_logins_from_one_client_do_not_lock_out_the_owner_elsewhere(
    app: Flask, proxied: Callable[..., FlaskClient]
) -> None:
    client = proxied()
    email = register(client)["user"]["email"]
    allowed = int(app.config["RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT"].split()[0])
    assert [attempt(client, CLIENT_A, email, WRONG).status_code for _ in range(allowed)] == [401] * allowed
    assert_limited(attempt(client, CLIENT_A, email, PASSWORD))  # client A is locked out, even with the password
    assert attempt(client, CLIENT_B, email, PASSWORD).status_code == 200  # the owner, elsewhere, is not
    assert attempt(client, CLIENT_B, email, WRONG).status_code == 401


def test_the_per_account_ceiling_stops_guessing_from_many_clients(proxied: Callable[..., FlaskClient]) -> None:
    client = proxied(RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT="8 per hour")
    email = register(client)["user"]["email"]
    bystander = register(client)["user"]["email"]
    guesses = [attempt(client, f"192.0.2.{n}", email, WRONG).status_code for n in range(1, 9)]
    assert guesses == [401] * 8
    assert_limited(attempt(client, "192.0.2.100", email, WRONG))
    assert_limited(attempt(client, CLIENT_B, email, PASSWORD))
    assert attempt(client, "192.0.2.1", bystander, PASSWORD).status_code == 200


def test_successful_logins_do_not_count_as_failures(app: Flask, proxied: Callable[..., FlaskClient]) -> None:
    client = proxied()
    email = register(client)["user"]["email"]
    allowed = int(app.config["RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT"].split()[0])
    for _ in range(allowed + 2):
        assert attempt(client, CLIENT_A, email, PASSWORD).status_code == 200


def test_registration_is_limited_per_client(proxied: Callable[..., FlaskClient]) -> None:
    client = proxied(RATELIMIT_REGISTER_PER_CLIENT="3 per hour")

    def register_from(address: str, **fields: Any) -> Any:
        return client.post("/api/auth/register", json=registration(**fields), headers={"X-Forwarded-For": address})

    assert register_from(CLIENT_A).status_code == 201
    taken = register_from(CLIENT_A).get_json()["user"]["email"]
    assert register_from(CLIENT_A, email=taken).status_code == 409  # refusals count too
    assert_limited(register_from(CLIENT_A))
    assert_limited(register_from(CLIENT_A, email=taken))  # and no longer say which email exists
    assert register_from(CLIENT_B).status_code == 201
