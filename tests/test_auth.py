"""Register, login, refresh, logout and me, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy import select

from shared.extensions import db
from shared.models import Customer, User, UserSession
from tests.support.accounts import PASSWORD, bearer, create_admin, register, registration
from tests.support.queries import count_rows


def test_register_creates_a_student_with_a_customer_profile(client: FlaskClient) -> None:
    body = register(client, email="  Asha.Rao@Example.COM ", phone_number="098765 43210")
    assert body["user"]["email"] == "asha.rao@example.com"
    assert body["user"]["phone_number"] == "+919876543210"
    assert body["user"]["role"] == "student"
    assert body["token_type"] == "Bearer"
    assert "password" not in body["user"]
    user = db.session.execute(select(User).where(User.email == "asha.rao@example.com")).scalar_one()
    assert user.password_hash.startswith("$argon2id$")
    customer = db.session.execute(select(Customer).where(Customer.user_id == user.id)).scalar_one()
    assert (customer.email, customer.phone_number) == ("asha.rao@example.com", "+919876543210")
    me = client.get("/api/auth/me", headers=bearer(body["access_token"])).get_json()
    assert me["customer"]["phone_number"] == "+919876543210"
    assert me["subscription"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("password", "short1"),
        ("password", "onlyletterslong"),
        ("password", "1234567890123"),
        ("phone_number", "12345"),
        ("phone_number", "call me maybe"),
        ("full_name", "   "),
    ],
)
def test_register_rejects_invalid_fields(client: FlaskClient, field: str, value: str) -> None:
    response = client.post("/api/auth/register", json=registration(**{field: value}))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]


def test_register_requires_every_field(client: FlaskClient) -> None:
    response = client.post("/api/auth/register", json={})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"email", "password", "full_name", "phone_number"}


def test_taken_email_is_a_409_on_email(client: FlaskClient) -> None:
    register(client, email="taken@example.com")
    response = client.post("/api/auth/register", json=registration(email="TAKEN@example.com"))
    assert response.status_code == 409
    assert list(response.get_json()["errors"]) == ["email"]


def test_taken_phone_in_another_spelling_is_a_409_on_phone(client: FlaskClient) -> None:
    register(client, phone_number="+91 98765 43210")
    response = client.post("/api/auth/register", json=registration(phone_number="0091-98765-43210"))
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"phone_number": ["A customer with this phone number already exists."]}
    assert count_rows(User) == 1


def test_login_returns_tokens_and_the_user(client: FlaskClient) -> None:
    register(client, email="login@example.com")
    response = client.post("/api/auth/login", json={"email": "Login@Example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["email"] == "login@example.com"
    assert client.get("/api/auth/me", headers=bearer(body["access_token"])).status_code == 200


# "student@Example.com" in fullwidth letters: the same address once NFKC-normalised.
FULLWIDTH_TWIN = "\uff53tudent\uff20\uff25xample.com"


def test_a_fullwidth_spelling_of_an_email_is_the_same_account(client: FlaskClient) -> None:
    register(client, email="student@example.com")
    response = client.post("/api/auth/login", json={"email": FULLWIDTH_TWIN, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["email"] == "student@example.com"
    twin = client.post("/api/auth/register", json=registration(email=FULLWIDTH_TWIN))
    assert twin.status_code == 409
    assert list(twin.get_json()["errors"]) == ["email"]
    assert count_rows(User) == 1


def test_a_fullwidth_email_is_stored_normalised(client: FlaskClient) -> None:
    assert register(client, email=FULLWIDTH_TWIN)["user"]["email"] == "student@example.com"


def test_login_limit_per_account_counts_every_spelling_of_the_email(app: Flask, client: FlaskClient) -> None:
    register(client, email="student@example.com")
    allowed = int(app.config["RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT"].split()[0])
    spellings = ["student@example.com", "STUDENT@example.com", FULLWIDTH_TWIN]
    for n in range(allowed):
        failed = client.post("/api/auth/login", json={"email": spellings[n % 3], "password": "wrong-12345"})
        assert failed.status_code == 401
    blocked = client.post("/api/auth/login", json={"email": FULLWIDTH_TWIN, "password": PASSWORD})
    assert blocked.status_code == 429


def test_unknown_email_and_wrong_password_get_the_same_401(client: FlaskClient) -> None:
    register(client, email="known@example.com")
    wrong_password = client.post("/api/auth/login", json={"email": "known@example.com", "password": "nope-12345"})
    unknown_email = client.post("/api/auth/login", json={"email": "who@example.com", "password": PASSWORD})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.get_json()["detail"] == unknown_email.get_json()["detail"]


def test_disabled_account_cannot_log_in_nor_use_its_tokens(client: FlaskClient) -> None:
    body = register(client, email="gone@example.com")
    db.session.execute(db.update(User).where(User.email == "gone@example.com").values(is_active=False))
    db.session.commit()
    assert client.post("/api/auth/login", json={"email": "gone@example.com", "password": PASSWORD}).status_code == 401
    assert client.get("/api/auth/me", headers=bearer(body["access_token"])).status_code == 401


def test_refresh_gives_a_new_access_token(client: FlaskClient) -> None:
    body = register(client)
    refreshed = client.post("/api/auth/refresh", headers=bearer(body["refresh_token"]))
    assert refreshed.status_code == 200
    assert client.get("/api/auth/me", headers=bearer(refreshed.get_json()["access_token"])).status_code == 200
    # an access token is not a refresh token, and the other way round
    assert client.post("/api/auth/refresh", headers=bearer(body["access_token"])).status_code == 401
    assert client.get("/api/auth/me", headers=bearer(body["refresh_token"])).status_code == 401


def test_logout_ends_the_session_in_the_database(client: FlaskClient) -> None:
    body = register(client)
    headers = bearer(body["access_token"])
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert count_rows(UserSession, UserSession.ended_at.is_not(None)) == 1
    revoked = client.get("/api/auth/me", headers=headers)
    assert revoked.status_code == 401
    assert "revoked" in revoked.get_json()["detail"]
    assert client.post("/api/auth/logout", headers=bearer(body["refresh_token"])).status_code == 401
    assert client.post("/api/auth/refresh", headers=bearer(body["refresh_token"])).status_code == 401


def test_expired_and_forged_tokens_are_401(client: FlaskClient, app: Flask) -> None:
    body = register(client)
    user_id = body["user"]["id"]
    expired = create_access_token(identity=str(user_id), expires_delta=timedelta(seconds=-1))
    assert "expired" in client.get("/api/auth/me", headers=bearer(expired)).get_json()["detail"]
    forged = body["access_token"][:-4] + ("AAAA" if not body["access_token"].endswith("AAAA") else "BBBB")
    assert client.get("/api/auth/me", headers=bearer(forged)).status_code == 401


def test_students_get_403_and_anonymous_401_on_admin_routes(client: FlaskClient) -> None:
    student = bearer(register(client)["access_token"])
    for method, path in [
        ("get", "/api/customers"),
        ("get", "/api/customers/1"),
        ("post", "/api/customers/upgrade"),
    ]:
        assert getattr(client, method)(path, headers=student, json={}).status_code == 403
        assert getattr(client, method)(path, json={}).status_code == 401


def test_login_is_rate_limited_per_account_and_client(app: Flask, client: FlaskClient) -> None:
    register(client, email="target@example.com")
    allowed = int(app.config["RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT"].split()[0])
    for _ in range(allowed):
        failed = client.post("/api/auth/login", json={"email": "target@example.com", "password": "wrong-12345"})
        assert failed.status_code == 401
    blocked = client.post("/api/auth/login", json={"email": "target@example.com", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.get_json()["status"] == 429
    register(client, email="other@example.com")
    other = client.post("/api/auth/login", json={"email": "other@example.com", "password": PASSWORD})
    assert other.status_code == 200


def test_login_is_rate_limited_per_client(app: Flask, client: FlaskClient) -> None:
    allowed = int(app.config["RATELIMIT_LOGIN_PER_CLIENT"].split()[0])
    for n in range(allowed):
        client.post("/api/auth/login", json={"email": f"probe{n}@example.com", "password": "wrong-12345"})
    blocked = client.post("/api/auth/login", json={"email": "fresh@example.com", "password": "wrong-12345"})
    assert blocked.status_code == 429
    elsewhere = client.post(
        "/api/auth/login",
        json={"email": "fresh@example.com", "password": "wrong-12345"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert elsewhere.status_code == 401


def test_create_admin_command(app: Flask) -> None:
    runner = app.test_cli_runner()
    ok = runner.invoke(
        args=["create-admin", "--email", "Ops@Example.com", "--password", PASSWORD, "--phone", "9876500001"]
    )
    assert ok.exit_code == 0, ok.output
    admin = db.session.execute(select(User).where(User.email == "ops@example.com")).scalar_one()
    assert admin.is_admin
    assert admin.phone_number == "+919876500001"
    taken = runner.invoke(args=["create-admin", "--email", "ops@example.com", "--password", PASSWORD])
    assert taken.exit_code != 0
    assert "already exists" in taken.output
    weak = runner.invoke(args=["create-admin", "--email", "x@example.com", "--password", "weak"])
    assert weak.exit_code != 0
    assert "password" in weak.output


@pytest.mark.parametrize("command", ["purge-expired-sessions", "purge-revoked-tokens"])
def test_purge_forgets_only_expired_sessions(app: Flask, client: FlaskClient, command: str) -> None:
    admin = create_admin()
    ended = bearer(admin)
    assert client.post("/api/auth/logout", headers=ended).status_code == 204
    live = bearer(admin)
    long_ago = datetime(2000, 1, 1)  # noqa: DTZ001 - the columns hold naive UTC
    db.session.add(UserSession(id="old", user_id=admin.id, expires_at=long_ago, ended_at=long_ago))
    db.session.add(UserSession(id="old-not-ended", user_id=admin.id, expires_at=long_ago))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=[command])
    assert "Purged 2 expired sessions" in result.output
    assert count_rows(UserSession) == 2
    assert client.get("/api/auth/me", headers=ended).status_code == 401
    assert client.get("/api/auth/me", headers=live).status_code == 200
