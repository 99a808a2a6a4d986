"""Email verification, password reset and password change: tokens mailed through the outbox,
single use, hashed and expiring; an unverified account cannot pay; sessions end as promised."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from shared.extensions import db
from shared.models import AccountToken, MailKind, TokenPurpose
from shared.models.base import utcnow
from shared.services.accounts import TOKEN_EXPIRED, TOKEN_UNKNOWN, TOKEN_USED, token_digest
from shared.services.demo import DEMO_STUDENT, DemoDataService
from tests.support.accounts import PASSWORD, bearer, create_admin, login, register
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.mail import latest_token, outbox, smtp_server, token_in
from tests.support.purchases import make_purchase, purchase_body

NEW_PASSWORD = "battery-staple-77"
UNVERIFIED = "urn:exam-shop:problem:email-unverified"


def token_error(response: Any) -> str:
    assert response.status_code == 422, response.get_json()
    return response.get_json()["errors"]["token"][0]


def expire_tokens() -> None:
    with db.engine.begin() as connection:
        connection.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))


def from_client(address: str) -> dict[str, Any]:
    return {"environ_overrides": {"REMOTE_ADDR": address}}


# ---------------------------------------------------------------- email verification


def test_a_verification_token_is_stored_hashed_and_works_once(app: Flask, client: FlaskClient) -> None:
    email = register(client, verified=False)["user"]["email"]
    token = latest_token(email, MailKind.VERIFY_EMAIL)
    stored = db.session.execute(select(AccountToken)).scalar_one()
    assert stored.purpose == TokenPurpose.VERIFY_EMAIL
    assert stored.token_sha256 == token_digest(token) != token
    lifetime = stored.expires_at - stored.created_at
    assert lifetime == timedelta(hours=app.config["EMAIL_VERIFICATION_HOURS"])

    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 200
    assert token_error(client.post("/api/auth/verify-email", json={"token": token})) == TOKEN_USED
    assert token_error(client.post("/api/auth/verify-email", json={"token": "x" + token})) == TOKEN_UNKNOWN
    assert "token" in client.post("/api/auth/verify-email", json={}).get_json()["errors"]


def test_an_expired_verification_token_is_refused(client: FlaskClient) -> None:
    session = register(client, verified=False)
    expire_tokens()
    token = latest_token(session["user"]["email"], MailKind.VERIFY_EMAIL)
    assert token_error(client.post("/api/auth/verify-email", json={"token": token})) == TOKEN_EXPIRED
    me = client.get("/api/auth/me", headers=bearer(session["access_token"])).get_json()
    assert me["user"]["email_verified_at"] is None


def test_a_resend_replaces_the_earlier_link_and_is_limited(app: Flask, client: FlaskClient) -> None:
    session = register(client, verified=False)
    email, headers = session["user"]["email"], bearer(session["access_token"])
    first = latest_token(email, MailKind.VERIFY_EMAIL)
    response = client.post("/api/auth/verify-email/resend", headers=headers)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "accepted"
    second = latest_token(email, MailKind.VERIFY_EMAIL)
    assert second != first
    assert token_error(client.post("/api/auth/verify-email", json={"token": first})) == TOKEN_USED

    allowed = int(app.config["RATELIMIT_VERIFICATION_RESEND_PER_ACCOUNT"].split()[0])
    for _ in range(allowed - 1):
        assert client.post("/api/auth/verify-email/resend", headers=headers).status_code == 202
    limited = client.post("/api/auth/verify-email/resend", headers=headers)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    # Another account is not limited by this one.
    other = bearer(register(client, verified=False)["access_token"])
    assert client.post("/api/auth/verify-email/resend", headers=other).status_code == 202

    assert (
        client.post("/api/auth/verify-email", json={"token": latest_token(email, MailKind.VERIFY_EMAIL)}).status_code
        == 200
    )


def test_a_verified_account_has_nothing_to_resend(client: FlaskClient, student: dict[str, str]) -> None:
    response = client.post("/api/auth/verify-email/resend", headers=student)
    assert response.status_code == 409
    assert response.get_json()["type"] == "urn:exam-shop:problem:email-already-verified"


def test_admins_made_by_the_operator_and_the_demo_accounts_are_verified(app: Flask, client: FlaskClient) -> None:
    admin = create_admin()
    assert admin.email_verified_at is not None
    DemoDataService.seed()
    demo = login(client, DEMO_STUDENT["email"], DEMO_STUDENT["password"])
    assert demo["user"]["email_verified_at"] is not None


def test_an_unverified_account_browses_but_cannot_pay_until_verified(app: Flask, client: FlaskClient) -> None:
    course = make_course(subjects=1)
    session = register(client, verified=False)
    headers = bearer(session["access_token"])
    assert client.get("/api/courses").status_code == 200
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.get("/api/purchases", headers=headers).status_code == 200

    refused = client.post("/api/purchases", json=purchase_body(course.subject_ids), headers=headers)
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"] == UNVERIFIED
    assert client.get("/api/purchases", headers=headers).get_json()["total"] == 0

    client.post("/api/auth/verify-email", json={"token": latest_token(session["user"]["email"], MailKind.VERIFY_EMAIL)})
    assert make_purchase(client, headers, course.subject_ids)["status"] == "paid"


@pytest.mark.usefixtures("immediate_fulfilment")
def test_without_a_payment_provider_nobody_pays_so_nobody_needs_verifying(app: Flask, client: FlaskClient) -> None:
    course = make_course(subjects=1)
    headers = bearer(register(client, verified=False)["access_token"])
    response = client.post("/api/purchases", json=purchase_body(course.subject_ids), headers=headers)
    assert response.status_code == 201, response.get_json()


def test_an_admin_grants_to_an_unverified_customer(app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    course = make_course(subjects=1)
    user_id = register(client, verified=False)["user"]["id"]
    customer = client.get("/api/customers", headers=admin).get_json()["items"]
    customer_id = next(item["id"] for item in customer if item["user_id"] == user_id)
    body = {**purchase_body(course.subject_ids), "customer_id": customer_id}
    assert client.post("/api/purchases", json=body, headers=admin).status_code == 201


# ---------------------------------------------------------------- password reset


def ask_reset(client: FlaskClient, email: str, address: str = "10.1.0.1") -> Any:
    return client.post("/api/auth/password-reset", json={"email": email}, **from_client(address))


def test_a_reset_answers_the_same_whether_or_not_the_account_exists(client: FlaskClient) -> None:
    email = register(client)["user"]["email"]
    known = ask_reset(client, email.upper())  # the email is normalised
    unknown = ask_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data()
    assert known.mimetype == unknown.mimetype
    assert {k: v for k, v in known.headers if k != "X-Request-ID"} == {
        k: v for k, v in unknown.headers if k != "X-Request-ID"
    }
    assert len(outbox(email, MailKind.RESET_PASSWORD)) == 1
    assert outbox("nobody@example.com") == []


def test_the_reset_flow_sets_the_password_and_ends_every_session(app: Flask, client: FlaskClient) -> None:
    session = register(client)
    email = session["user"]["email"]
    other = login(client, email)
    assert ask_reset(client, email).status_code == 202
    token = latest_token(email, MailKind.RESET_PASSWORD)
    stored = db.session.execute(
        select(AccountToken).where(AccountToken.purpose == TokenPurpose.RESET_PASSWORD)
    ).scalar_one()
    assert stored.expires_at - stored.created_at == timedelta(minutes=30)
    assert stored.token_sha256 == token_digest(token)

    weak = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": "short"})
    assert weak.status_code == 422
    assert "password" in weak.get_json()["errors"]  # and the token is still good:
    done = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 204, done.get_json()

    for tokens in (session, other):
        assert client.get("/api/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
        assert client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).status_code == 401
    assert client.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
    assert login(client, email, NEW_PASSWORD)["user"]["email"] == email
    again = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": "another-pass-99"})
    assert token_error(again) == TOKEN_USED
    assert outbox(email, MailKind.PASSWORD_CHANGED)


def test_a_reset_proves_the_mailbox(client: FlaskClient) -> None:
    email = register(client, verified=False)["user"]["email"]
    ask_reset(client, email)
    token = latest_token(email, MailKind.RESET_PASSWORD)
    client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert login(client, email, NEW_PASSWORD)["user"]["email_verified_at"] is not None


def test_expired_replaced_and_wrong_reset_tokens_are_refused(client: FlaskClient) -> None:
    email = register(client)["user"]["email"]
    ask_reset(client, email)
    first = latest_token(email, MailKind.RESET_PASSWORD)
    ask_reset(client, email)
    second = latest_token(email, MailKind.RESET_PASSWORD)
    confirm = "/api/auth/password-reset/confirm"
    assert token_error(client.post(confirm, json={"token": first, "password": NEW_PASSWORD})) == TOKEN_USED
    assert token_error(client.post(confirm, json={"token": "nonsense", "password": NEW_PASSWORD})) == TOKEN_UNKNOWN
    verification = latest_token(email, MailKind.VERIFY_EMAIL)  # another purpose's token is no reset token
    assert token_error(client.post(confirm, json={"token": verification, "password": NEW_PASSWORD})) == TOKEN_UNKNOWN
    expire_tokens()
    assert token_error(client.post(confirm, json={"token": second, "password": NEW_PASSWORD})) == TOKEN_EXPIRED
    assert login(client, email)["user"]["email"] == email  # the password never changed


def test_resets_are_limited_per_account_and_per_client(app: Flask, client: FlaskClient) -> None:
    email = register(client)["user"]["email"]
    per_account = int(app.config["RATELIMIT_PASSWORD_RESET_PER_ACCOUNT"].split()[0])
    for n in range(per_account):
        assert ask_reset(client, email, f"10.2.0.{n}").status_code == 202
    limited = ask_reset(client, email.upper(), "10.2.1.1")  # another client, the same account
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert ask_reset(client, "nobody@example.com", "10.2.1.1").status_code == 202
    assert len(outbox(email, MailKind.RESET_PASSWORD)) == per_account

    per_client = int(app.config["RATELIMIT_PASSWORD_RESET_PER_CLIENT"].split()[0])
    for n in range(per_client):
        assert ask_reset(client, f"someone{n}@example.com", "10.3.0.1").status_code == 202
    assert ask_reset(client, "someone-else@example.com", "10.3.0.1").status_code == 429
    assert ask_reset(client, "someone-else@example.com", "10.3.0.2").status_code == 202


def test_the_reset_mail_arrives_through_smtp(app: Flask, client: FlaskClient) -> None:
    email = register(client)["user"]["email"]
    ask_reset(client, email)
    with smtp_server() as inbox:
        saved = {name: app.config[name] for name in inbox.settings()}
        app.config.update(inbox.settings())
        try:
            assert app.test_cli_runner().invoke(args=["send-mail"]).exit_code == 0
        finally:
            app.config.update(saved)
        [mail] = [m for m in inbox.to(email) if m["Subject"] == "Reset your password"]
    token = token_in(mail.get_content())
    assert f"/reset-password?token={token}" in mail.get_content()
    done = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 204


@pytest.fixture
def registered(mariadb: Flask) -> dict[str, Any]:
    return register(mariadb.test_client())


@pytest.mark.race
def test_two_racing_confirmations_of_one_token_exactly_one_wins(
    mariadb: Flask, live_server: LiveServer, registered: dict[str, Any]
) -> None:
    email = registered["user"]["email"]
    client = mariadb.test_client()
    ask_reset(client, email)
    token = latest_token(email, MailKind.RESET_PASSWORD)
    passwords = [f"racing-password-{n}" for n in range(6)]

    def confirm(index: int) -> requests.Response:
        body = {"token": token, "password": passwords[index]}
        return requests.post(live_server.url("/api/auth/password-reset/confirm"), json=body, timeout=60)

    answers = fire_concurrently(len(passwords), confirm)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [204] + [422] * (len(passwords) - 1), [answer.text for answer in answers]
    winner = passwords[next(i for i, answer in enumerate(answers) if answer.status_code == 204)]
    assert client.post("/api/auth/login", json={"email": email, "password": winner}).status_code == 200
    losers = [p for p in passwords if p != winner]
    assert all(
        client.post("/api/auth/login", json={"email": email, "password": p}).status_code == 401 for p in losers[:2]
    )
    assert len(outbox(email, MailKind.PASSWORD_CHANGED)) == 1


# ---------------------------------------------------------------- password change


def change(client: FlaskClient, headers: dict[str, str], current: str, new: str) -> Any:
    return client.post("/api/auth/password", json={"current_password": current, "new_password": new}, headers=headers)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(client: FlaskClient) -> None:
    session = register(client)
    email, headers = session["user"]["email"], bearer(session["access_token"])
    other = login(client, email)

    response = change(client, headers, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204, response.get_json()
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.post("/api/auth/refresh", headers=bearer(session["refresh_token"])).status_code == 200
    assert client.get("/api/auth/me", headers=bearer(other["access_token"])).status_code == 401
    assert client.post("/api/auth/refresh", headers=bearer(other["refresh_token"])).status_code == 401
    assert client.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
    assert login(client, email, NEW_PASSWORD)
    assert outbox(email, MailKind.PASSWORD_CHANGED)


def test_a_wrong_current_password_or_a_weak_new_one_is_a_422_on_its_field(app: Flask, client: FlaskClient) -> None:
    session = register(client)
    headers = bearer(session["access_token"])
    wrong = change(client, headers, "not-my-password-1", NEW_PASSWORD)
    assert wrong.status_code == 422
    assert list(wrong.get_json()["errors"]) == ["current_password"]
    weak = change(client, headers, PASSWORD, "short")
    assert weak.status_code == 422
    assert "new_password" in weak.get_json()["errors"]
    assert client.post("/api/auth/password", json={}, headers=headers).status_code == 422
    assert login(client, session["user"]["email"])  # unchanged

    allowed = int(app.config["RATELIMIT_PASSWORD_CHANGE_FAILURES_PER_ACCOUNT"].split()[0])
    for _ in range(allowed - 1):
        assert change(client, headers, "not-my-password-1", NEW_PASSWORD).status_code == 422
    assert change(client, headers, "not-my-password-1", NEW_PASSWORD).status_code == 429
