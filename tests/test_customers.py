"""Upgrade to customer (every scenario of the old fix) and customer profiles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from shared.extensions import db
from shared.models import Customer, Role, Subscription, User
from shared.models.accounts import ALREADY_CUSTOMER
from shared.passwords import hash_password
from shared.services.accounts import CustomerService
from tests.support.accounts import bearer, create_admin, register, registration
from tests.support.queries import count_rows


def test_new_admin_upgrades_to_a_customer_with_a_subscription(client: FlaskClient) -> None:
    admin = create_admin(phone_number="+919812345670")
    response = client.post("/api/customers/upgrade", json={"plan": "premium"}, headers=bearer(admin))
    assert response.status_code == 201
    body = response.get_json()
    assert body["customer"]["email"] == admin.email
    assert body["customer"]["phone_number"] == "+919812345670"
    assert body["customer"]["user_id"] == admin.id
    assert (body["subscription"]["plan"], body["subscription"]["status"]) == ("premium", "active")
    assert body["subscription"]["expires_at"] > body["subscription"]["started_at"]
    assert count_rows(Customer) == count_rows(Subscription) == 1
    me = client.get("/api/auth/me", headers=bearer(admin)).get_json()
    assert me["user"]["role"] == "admin"
    assert me["subscription"]["plan"] == "premium"


def test_admin_without_phone_may_give_one(client: FlaskClient) -> None:
    admin = create_admin()
    response = client.post("/api/customers/upgrade", json={"phone_number": "98123 45671"}, headers=bearer(admin))
    assert response.status_code == 201
    assert response.get_json()["customer"]["phone_number"] == "+919812345671"
    assert db.session.get(User, admin.id).phone_number == "+919812345671"


def test_missing_phone_is_a_422_and_creates_nothing(client: FlaskClient) -> None:
    admin = create_admin()
    response = client.post("/api/customers/upgrade", json={}, headers=bearer(admin))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["phone_number"]
    assert count_rows(Customer) == 0


def test_existing_phone_is_a_409_on_phone_number(client: FlaskClient) -> None:
    register(client, phone_number="+919812345672")
    admin = create_admin(phone_number="+91 98123 45672")
    response = client.post("/api/customers/upgrade", json={}, headers=bearer(admin))
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"phone_number": ["A customer with this phone number already exists."]}
    assert count_rows(Customer) == 1
    assert count_rows(Subscription) == 0


def test_existing_email_is_a_409_on_email(client: FlaskClient) -> None:
    admin = create_admin(email="boss@example.com", phone_number="+919812345673")
    # A customer row from the old system carrying the admin's email under another account.
    other = User(
        email="legacy@example.com",
        password_hash=hash_password("x1234567890"),
        full_name="Legacy",
        role=Role.STUDENT,
    )
    db.session.add(other)
    db.session.flush()
    db.session.add(Customer(user_id=other.id, email="boss@example.com", phone_number="+919812345674"))
    db.session.commit()
    response = client.post("/api/customers/upgrade", json={}, headers=bearer(admin))
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"email": ["A customer with this email already exists."]}
    assert count_rows(Subscription) == 0


def test_already_a_customer_is_a_409(client: FlaskClient) -> None:
    admin = create_admin(phone_number="+919812345675")
    assert client.post("/api/customers/upgrade", json={}, headers=bearer(admin)).status_code == 201
    again = client.post("/api/customers/upgrade", json={}, headers=bearer(admin))
    assert again.status_code == 409
    assert again.get_json()["type"] == "urn:exam-shop:problem:already-customer"
    assert again.get_json()["detail"] == ALREADY_CUSTOMER
    assert count_rows(Customer) == count_rows(Subscription) == 1


def test_a_different_phone_than_the_accounts_is_a_422(client: FlaskClient) -> None:
    admin = create_admin(phone_number="+919812345680")
    response = client.post("/api/customers/upgrade", json={"phone_number": "+919812345681"}, headers=bearer(admin))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["phone_number"]
    assert count_rows(Customer) == 0


def test_race_lost_at_the_constraint_is_the_same_field_409(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the friendly pre-check (as when a concurrent request inserts in between),
    the unique constraint and its translation give the same answer, on both databases."""
    register(client, phone_number="+919812345682")
    monkeypatch.setattr(CustomerService, "conflicts", staticmethod(lambda **_: {}))
    admin = create_admin(phone_number="+919812345682")
    upgrade = client.post("/api/customers/upgrade", json={}, headers=bearer(admin))
    assert upgrade.status_code == 409
    assert upgrade.get_json()["errors"] == {"phone_number": ["A customer with this phone number already exists."]}
    duplicate = client.post("/api/auth/register", json=registration(phone_number="+919812345682"))
    assert duplicate.status_code == 409
    assert duplicate.get_json()["errors"] == {"phone_number": ["A customer with this phone number already exists."]}
    assert count_rows(Customer) == 1
    assert count_rows(Subscription) == 0
    assert count_rows(User) == 2


def test_invalid_plan_is_a_422(client: FlaskClient) -> None:
    admin = create_admin(phone_number="+919812345676")
    response = client.post("/api/customers/upgrade", json={"plan": "platinum"}, headers=bearer(admin))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["plan"]


@pytest.fixture
def failing_subscription_insert(backend: str) -> Iterator[None]:
    """A real database error on the subscription insert (a trigger), after the customer row."""
    if backend == "mariadb":
        create = (
            "CREATE TRIGGER refuse_subscriptions BEFORE INSERT ON subscriptions FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'storage engine exploded: internal detail'"
        )
    else:
        create = (
            "CREATE TRIGGER refuse_subscriptions BEFORE INSERT ON subscriptions "
            "BEGIN INSERT INTO table_that_does_not_exist VALUES (1); END"
        )
    db.session.execute(text(create))
    db.session.commit()
    yield
    db.session.rollback()
    db.session.execute(text("DROP TRIGGER refuse_subscriptions"))
    db.session.commit()


def test_database_error_is_a_500_without_internals_and_no_half_customer(
    client: FlaskClient, failing_subscription_insert: None
) -> None:
    admin = create_admin()
    response = client.post("/api/customers/upgrade", json={"phone_number": "+919812345677"}, headers=bearer(admin))
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    text_body = response.get_data(as_text=True)
    assert "exploded" not in text_body
    assert "table_that_does_not_exist" not in text_body
    assert count_rows(Customer) == 0
    assert count_rows(Subscription) == 0
    assert db.session.get(User, admin.id).phone_number is None


def test_admin_lists_and_reads_customers(client: FlaskClient) -> None:
    for _ in range(3):
        register(client)
    admin = bearer(create_admin())
    page = client.get("/api/customers?per_page=2", headers=admin).get_json()
    assert (page["total"], page["pages"], len(page["items"])) == (3, 2, 2)
    second = client.get("/api/customers?per_page=2&page=2", headers=admin).get_json()
    assert len(second["items"]) == 1
    found = client.get(f"/api/customers?q={second['items'][0]['email']}", headers=admin).get_json()
    assert [c["id"] for c in found["items"]] == [second["items"][0]["id"]]
    detail = client.get(f"/api/customers/{second['items'][0]['id']}", headers=admin).get_json()
    assert detail["full_name"].startswith("Student")
    assert detail["subscriptions"] == []
    assert client.get("/api/customers/999999", headers=admin).status_code == 404
    assert client.get("/api/customers?per_page=101", headers=admin).status_code == 422


def test_customer_list_makes_a_fixed_number_of_queries(client: FlaskClient, query_counter: object) -> None:
    admin = bearer(create_admin())
    register(client)
    with query_counter() as few:  # type: ignore[operator]
        client.get("/api/customers", headers=admin)
    for _ in range(5):
        register(client)
    with query_counter() as many:  # type: ignore[operator]
        client.get("/api/customers", headers=admin)
    assert few.count == many.count, many


def test_customer_reads_and_updates_own_profile(client: FlaskClient) -> None:
    first = register(client, phone_number="+919812345678")
    second = register(client)
    headers = bearer(second["access_token"])
    assert client.get("/api/customers/me", headers=headers).get_json()["email"] == second["user"]["email"]
    taken = client.patch("/api/customers/me", json={"phone_number": "09812345678"}, headers=headers)
    assert taken.status_code == 409
    assert list(taken.get_json()["errors"]) == ["phone_number"]
    changed = client.patch(
        "/api/customers/me",
        json={"phone_number": "+91 98123 45679", "full_name": " New  Name "},
        headers=headers,
    )
    assert changed.status_code == 200
    assert changed.get_json()["phone_number"] == "+919812345679"
    assert changed.get_json()["full_name"] == "New Name"
    untouched = db.session.execute(select(Customer).where(Customer.user_id == first["user"]["id"])).scalar_one()
    assert untouched.phone_number == "+919812345678"


def test_admin_without_customer_profile_gets_403_on_me(client: FlaskClient) -> None:
    response = client.get("/api/customers/me", headers=bearer(create_admin()))
    assert response.status_code == 403
