"""Admin user management: GET /api/users (search, filters, pages), GET /api/users/{id}, and
PATCH /api/users/{id} {is_active}, whose deactivation ends every session of the account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.errors import Conflict
from shared.extensions import db
from shared.models import User, UserSession
from shared.schemas.accounts import UserSummarySchema
from shared.services.accounts import INVALID_CREDENTIALS, UserService
from tests.support.accounts import PASSWORD, bearer, create_admin, login, register
from tests.support.queries import count_rows


def search(client: FlaskClient, admin: dict[str, str], **query: Any) -> dict[str, Any]:
    response = client.get("/api/users", query_string=query, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def emails(page: dict[str, Any]) -> list[str]:
    return [item["email"] for item in page["items"]]


def deactivate(client: FlaskClient, admin: dict[str, str], user_id: int, active: bool = False) -> Any:
    return client.patch(f"/api/users/{user_id}", json={"is_active": active}, headers=admin)


def live_sessions(user_id: int) -> int:
    return count_rows(UserSession, UserSession.user_id == user_id, UserSession.ended_at.is_(None))


# --------------------------------------------------------------------------- the list


def test_q_searches_email_name_and_phone_case_insensitively(client: FlaskClient, admin: dict[str, str]) -> None:
    priya = register(client, email="priya.sharma@example.com", full_name="Priya Sharma", phone_number="+919876501234")
    register(client, email="ravi@example.com", full_name="Ravi Kumar")
    create_admin(email="ops@example.com", phone_number="+919811122233")  # an admin: no customer profile

    assert emails(search(client, admin, q="SHARMA")) == ["priya.sharma@example.com"]
    assert emails(search(client, admin, q="Priya.Sharma@EXAMPLE")) == ["priya.sharma@example.com"]
    assert emails(search(client, admin, q="pRiYa sH")) == ["priya.sharma@example.com"]
    # Any spelling of the digits of a phone number: E.164 is stored.
    for phone in ("98765 01234", "+91 98765-01234", "501234"):
        assert emails(search(client, admin, q=phone)) == ["priya.sharma@example.com"], phone
    assert emails(search(client, admin, q="98111 22233")) == ["ops@example.com"]
    assert search(client, admin, q="nobody-has-this")["items"] == []

    item = search(client, admin, q="priya")["items"][0]
    assert set(item) == set(UserSummarySchema().fields)  # every documented field, also the account's new ones
    assert item["id"] == priya["user"]["id"]
    assert item["full_name"] == "Priya Sharma"
    assert item["role"] == "student"
    assert item["is_active"] is True
    assert item["is_customer"] is True
    assert isinstance(item["customer_id"], int)
    assert item["created_at"].endswith("+00:00")
    assert item["last_login_at"] is not None  # registering logged in
    ops = search(client, admin, q="ops@")["items"][0]
    assert (ops["is_customer"], ops["customer_id"], ops["last_login_at"]) == (False, None, None)


def test_like_wildcards_in_q_are_literal(client: FlaskClient, admin: dict[str, str]) -> None:
    register(client, email="a_b@example.com", full_name="Under Score")
    register(client, email="axb@example.com", full_name="Hundred 100% Sure")
    register(client, email="a1000b@example.com", full_name="Hundred 1000 Sure")
    register(client, email="back@example.com", full_name="Back\\slash")

    assert emails(search(client, admin, q="a_b")) == ["a_b@example.com"]
    assert emails(search(client, admin, q="100%")) == ["axb@example.com"]
    assert emails(search(client, admin, q="%")) == ["axb@example.com"]
    assert emails(search(client, admin, q="_")) == ["a_b@example.com"]
    assert emails(search(client, admin, q="\\")) == ["back@example.com"]


def test_pages_and_filters_follow_the_house_contract(client: FlaskClient, admin: dict[str, str]) -> None:
    students = [register(client, full_name=f"Paged Person {n}")["user"]["id"] for n in range(5)]

    first = search(client, admin, q="paged person", per_page=2)
    assert (first["page"], first["per_page"], first["total"], first["pages"]) == (1, 2, 5, 3)
    assert [item["id"] for item in first["items"]] == students[:2]  # by id
    last = search(client, admin, q="paged person", per_page=2, page=3)
    assert [item["id"] for item in last["items"]] == students[4:]
    assert search(client, admin, q="paged person", per_page=2, page=4)["items"] == []

    assert deactivate(client, admin, students[1]).status_code == 200
    inactive = search(client, admin, is_active="false")
    assert [item["id"] for item in inactive["items"]] == [students[1]]
    assert search(client, admin, q="paged", is_active="true")["total"] == 4
    admins = search(client, admin, role="admin")
    assert {item["role"] for item in admins["items"]} == {"admin"}
    assert admins["total"] == 1
    assert search(client, admin, role="student")["total"] == 5

    for bad in ({"role": "root"}, {"per_page": 101}, {"page": 0}, {"is_active": "maybe"}, {"q": ""}):
        response = client.get("/api/users", query_string=bad, headers=admin)
        assert response.status_code == 422, bad
        assert response.mimetype == "application/problem+json"


def test_the_list_takes_the_same_statements_for_one_user_or_many(
    client: FlaskClient, admin: dict[str, str], query_counter: Callable[[], Any]
) -> None:
    register(client)

    def statements() -> tuple[int, int]:
        with query_counter() as queries:
            page = search(client, admin, per_page=100)
        return queries.count, page["total"]

    one, total = statements()
    assert total == 2  # the student and the admin
    for _ in range(6):
        login(client, register(client)["user"]["email"])  # customers with several sessions
    create_admin()
    many, total = statements()
    assert total == 9
    assert many == one, f"{one} statements for 2 users, {many} for 9"


def test_one_user_by_id(client: FlaskClient, admin: dict[str, str]) -> None:
    student = register(client)["user"]
    response = client.get(f"/api/users/{student['id']}", headers=admin)
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == student["email"]
    assert body["is_customer"] is True
    assert client.get("/api/users/999999", headers=admin).status_code == 404


def test_only_admins_see_and_change_users(client: FlaskClient, admin: dict[str, str], student: dict[str, str]) -> None:
    other = register(client)["user"]["id"]
    for method, path, body in [
        ("GET", "/api/users", None),
        ("GET", f"/api/users/{other}", None),
        ("PATCH", f"/api/users/{other}", {"is_active": False}),
    ]:
        assert client.open(path, method=method, json=body).status_code == 401
        assert client.open(path, method=method, json=body, headers=student).status_code == 403
    assert db.session.get(User, other).is_active is True


# --------------------------------------------------------------------------- deactivation


def test_deactivating_ends_every_session_at_once_and_refuses_login(client: FlaskClient, admin: dict[str, str]) -> None:
    first = register(client)
    email, user_id = first["user"]["email"], first["user"]["id"]
    second = login(client, email)
    bystander = register(client)
    assert live_sessions(user_id) == 2

    response = deactivate(client, admin, user_id)
    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    assert live_sessions(user_id) == 0

    for session in (first, second):
        me = client.get("/api/auth/me", headers=bearer(session["access_token"]))
        refresh = client.post("/api/auth/refresh", headers=bearer(session["refresh_token"]))
        assert (me.status_code, refresh.status_code) == (401, 401)
        assert me.mimetype == "application/problem+json"
    # Login is refused with the same problem as a wrong password: nothing tells the account apart.
    refused = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    wrong = client.post("/api/auth/login", json={"email": bystander["user"]["email"], "password": "wrong-pass-99"})
    assert refused.status_code == wrong.status_code == 401
    assert refused.get_json()["type"] == wrong.get_json()["type"]
    assert refused.get_json()["detail"] == wrong.get_json()["detail"] == INVALID_CREDENTIALS
    # Nobody else is touched.
    assert client.get("/api/auth/me", headers=bearer(bystander["access_token"])).status_code == 200


def test_deactivating_is_idempotent_and_reactivating_needs_a_new_login(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    tokens = register(client)
    user_id = tokens["user"]["id"]
    assert deactivate(client, admin, user_id).status_code == 200
    updated_at = db.session.execute(select(User.updated_at).where(User.id == user_id)).scalar_one()

    again = deactivate(client, admin, user_id)
    assert again.status_code == 200
    assert again.get_json()["is_active"] is False
    assert client.patch(f"/api/users/{user_id}", json={}, headers=admin).get_json()["is_active"] is False
    db.session.remove()
    assert db.session.execute(select(User.updated_at).where(User.id == user_id)).scalar_one() == updated_at

    back = deactivate(client, admin, user_id, active=True)
    assert back.status_code == 200
    assert back.get_json()["is_active"] is True
    assert deactivate(client, admin, user_id, active=True).status_code == 200
    # The sessions ended with the deactivation stay ended; the user logs in again.
    assert client.get("/api/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).status_code == 401
    fresh = login(client, tokens["user"]["email"])
    assert client.get("/api/auth/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_only_is_active_is_accepted(client: FlaskClient, admin: dict[str, str]) -> None:
    user_id = register(client)["user"]["id"]
    for body in ({"is_active": False, "role": "admin"}, {"email": "x@example.com"}, {"is_active": "false"}):
        response = client.patch(f"/api/users/{user_id}", json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.mimetype == "application/problem+json"
    for body in ({"is_active": 0}, {"is_active": None}):
        assert client.patch(f"/api/users/{user_id}", json=body, headers=admin).status_code == 422, body
    assert client.patch(f"/api/users/{user_id}", data="false", headers=admin).status_code in {415, 422}
    assert client.patch("/api/users/999999", json={"is_active": False}, headers=admin).status_code == 404
    assert db.session.get(User, user_id).is_active is True


def test_an_admin_cannot_deactivate_themself(client: FlaskClient) -> None:
    me = create_admin()
    headers = bearer(me)
    response = deactivate(client, headers, me.id)
    assert response.status_code == 409
    assert response.get_json()["type"] == "urn:exam-shop:problem:cannot-deactivate-self"
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert deactivate(client, headers, me.id, active=True).status_code == 200  # no-op


def test_admins_deactivate_each_other_but_never_the_last_active_one(app: Flask, client: FlaskClient) -> None:
    first, second = create_admin(), create_admin()
    first_headers, second_headers = bearer(first), bearer(second)

    assert deactivate(client, first_headers, second.id).status_code == 200
    # The deactivated admin's token is dead: it cannot strike back.
    assert deactivate(client, second_headers, first.id).status_code == 401
    assert db.session.get(User, first.id).is_active is True
    # Without an actor (the operator's command) the last active admin is still refused.
    with pytest.raises(Conflict) as refused:
        UserService.set_active(None, first.id, False)
    assert refused.value.slug == "last-active-admin"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["set-user-active", "--email", first.email, "--inactive"])
    assert result.exit_code != 0
    assert "last active admin" in result.output
    # Reactivated by the operator, the second admin logs in again and may deactivate the first.
    result = runner.invoke(args=["set-user-active", "--email", second.email.upper(), "--active"])
    assert result.exit_code == 0, result.output
    again = bearer(login(client, second.email)["access_token"])
    assert deactivate(client, again, first.id).status_code == 200
    assert client.get("/api/auth/me", headers=first_headers).status_code == 401
