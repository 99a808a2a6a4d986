"""Refunds end access (finished tests stay readable, the subject can be bought again), access
periods end it too, admins grant comps; and each forbidden transition changes nothing.
On SQLite and MariaDB, paying in the sandbox."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from shared.extensions import db
from shared.models import ItemState, MockTestAttempt, Purchase, PurchaseItem, PurchaseStatus, Refund, RefundStatus
from shared.models.base import utcnow
from shared.services.payments import hmac_hex
from tests.support.accounts import bearer, create_admin, register
from tests.support.catalog import CourseFixture, make_course
from tests.support.mock_tests import add_questions, card_id
from tests.support.purchases import confirmation, make_purchase, purchase_body, sandbox_pay


@pytest.fixture
def course(app: Flask) -> CourseFixture:
    course = make_course(subjects=3, price="300.00", bundle_price="600.00")
    for subject in course.subject_ids:
        add_questions(subject, 10)
    return course


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    return bearer(create_admin())


def refund(client: FlaskClient, admin: dict[str, str], purchase_id: int, **body: Any) -> Any:
    return client.post(f"/api/purchases/{purchase_id}/refund", json=body, headers=admin)


def start(client: FlaskClient, headers: dict[str, str], subject_id: int, number: int) -> Any:
    return client.post(f"/api/mock-tests/{card_id(client, headers, subject_id, number)}/start", headers=headers)


def finish(client: FlaskClient, headers: dict[str, str], subject_id: int, number: int) -> int:
    card = card_id(client, headers, subject_id, number)
    assert client.post(f"/api/mock-tests/{card}/start", headers=headers).status_code == 200
    assert client.post(f"/api/mock-tests/{card}/submit", json={}, headers=headers).status_code == 200
    return card


def test_a_full_refund_revokes_access_keeps_history_and_the_subject_can_be_bought_again(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    subject = course.subject_ids[0]
    bought = make_purchase(client, student, [subject])["purchase"]
    finished = finish(client, student, subject, 1)

    response = refund(client, admin, bought["id"])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    # The sandbox settles the refund through its signed refund.processed webhook.
    assert (body["refund"]["status"], body["refund"]["amount"], body["refund"]["subject_ids"]) == (
        "processed",
        "300.00",
        [subject],
    )
    assert body["purchase"]["status"] == "refunded"
    assert [s["state"] for s in body["purchase"]["subjects"]] == ["refunded"]

    refused = start(client, student, subject, 2)
    assert refused.status_code == 403
    assert refused.get_json()["type"].endswith("access-revoked")
    assert client.get(f"/api/mock-tests/{finished}/review", headers=student).status_code == 200
    assert client.get(f"/api/mock-tests/{finished}", headers=student).status_code == 200
    assert client.get("/api/auth/me", headers=student).get_json()["owned"] == []

    again = make_purchase(client, student, [subject])
    assert again["purchase"]["status"] == "paid"
    assert again["cards_created"] == 50
    assert start(client, student, subject, 2).status_code == 403  # the old card stays revoked
    new_card = db.session.execute(
        select(MockTestAttempt.id).where(
            MockTestAttempt.purchase_id == again["purchase"]["id"], MockTestAttempt.test_number == 2
        )
    ).scalar_one()
    assert client.post(f"/api/mock-tests/{new_card}/start", headers=student).status_code == 200


def test_a_refund_of_some_subjects_keeps_the_others(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    first, second = course.subject_ids[:2]
    bought = make_purchase(client, student, [first, second])["purchase"]
    response = refund(client, admin, bought["id"], subject_ids=[first])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["purchase"]["status"], body["refund"]["amount"]) == ("partially_refunded", "300.00")
    assert {s["subject_id"]: s["state"] for s in body["purchase"]["subjects"]} == {first: "refunded", second: "active"}
    assert start(client, student, first, 1).status_code == 403
    assert start(client, student, second, 1).status_code == 200
    rest = refund(client, admin, bought["id"])
    assert rest.status_code == 201
    assert (rest.get_json()["purchase"]["status"], rest.get_json()["refund"]["amount"]) == ("refunded", "300.00")


def test_a_bundle_refund_of_one_subject_is_its_share_of_the_bundle_price(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    bought = make_purchase(client, student, bundle_id=course.bundle_id)["purchase"]
    one = refund(client, admin, bought["id"], subject_ids=[course.subject_ids[0]]).get_json()
    assert one["refund"]["amount"] == "200.00"  # 600 spread over three subjects of 300
    rest = refund(client, admin, bought["id"]).get_json()
    assert rest["refund"]["amount"] == "400.00"


# ---------------------------------------------------------------------- forbidden transitions


def test_an_unpaid_checkout_cannot_be_refunded(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    response = client.post("/api/purchases", json=purchase_body([course.subject_ids[0]]), headers=student)
    purchase_id = response.get_json()["purchase"]["id"]
    refused = refund(client, admin, purchase_id)
    assert refused.status_code == 409
    assert refused.get_json()["type"].endswith("not-refundable")
    assert db.session.execute(select(Purchase.status)).scalar_one() is PurchaseStatus.PENDING_PAYMENT
    assert db.session.execute(select(func.count()).select_from(Refund)).scalar_one() == 0


def test_a_refunded_purchase_is_not_refunded_again_nor_paid_again(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    checkout = client.post("/api/purchases", json=purchase_body([course.subject_ids[0]]), headers=student).get_json()
    handed = sandbox_pay(client, student, checkout)
    purchase_id = checkout["purchase"]["id"]
    assert (
        client.post(f"/api/purchases/{purchase_id}/payment", json=confirmation(handed), headers=student).status_code
        == 200
    )
    assert refund(client, admin, purchase_id).status_code == 201
    assert refund(client, admin, purchase_id).status_code == 409
    # The same confirmation again (refunded -> paid is forbidden): the purchase stays refunded.
    again = client.post(f"/api/purchases/{purchase_id}/payment", json=confirmation(handed), headers=student)
    assert again.status_code == 200
    assert again.get_json()["purchase"]["status"] == "refunded"
    assert db.session.execute(select(func.count()).select_from(Refund)).scalar_one() == 1
    items = db.session.execute(select(PurchaseItem.state, PurchaseItem.active_customer_id)).all()
    assert items == [(ItemState.REFUNDED, None)]


def test_a_comp_purchase_takes_no_refund_and_a_subject_not_in_the_purchase_is_a_422(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    bought = make_purchase(client, student, [course.subject_ids[0]])["purchase"]
    wrong = refund(client, admin, bought["id"], subject_ids=[course.subject_ids[1]])
    assert wrong.status_code == 422
    assert "subject_ids" in wrong.get_json()["errors"]
    customer_id = bought["customer_id"]
    comp = client.post(
        "/api/purchases", json={**purchase_body([course.subject_ids[1]]), "customer_id": customer_id}, headers=admin
    )
    assert refund(client, admin, comp.get_json()["purchase"]["id"]).status_code == 409


def test_refund_states_follow_the_provider_webhooks(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str], app: Flask
) -> None:
    bought = make_purchase(client, student, [course.subject_ids[0]])["purchase"]
    refund(client, admin, bought["id"])
    row = db.session.execute(select(Refund)).scalar_one()
    db.session.execute(update(Refund).values(status=RefundStatus.PENDING))
    db.session.commit()
    event = {"event": "refund.failed", "payload": {"refund": {"entity": {"id": row.provider_refund_id}}}}
    body = json.dumps(event).encode()
    response = client.post(
        "/api/payments/webhook",
        data=body,
        content_type="application/json",
        headers={"X-Razorpay-Signature": hmac_hex(app.config["PAYMENT_WEBHOOK_SECRET"], body)},
    )
    assert response.get_json()["status"] == "processed"
    db.session.remove()
    assert db.session.execute(select(Refund.status)).scalar_one() is RefundStatus.FAILED


# ---------------------------------------------------------------------- access periods


def test_past_its_access_period_a_subject_cannot_start_tests_and_buying_again_renews(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    subject = course.subject_ids[0]
    bought = make_purchase(client, student, [subject])["purchase"]
    finished = finish(client, student, subject, 1)
    owned = client.get("/api/auth/me", headers=student).get_json()["owned"]
    assert [(o["subject_id"], o["purchase_id"]) for o in owned] == [(subject, bought["id"])]
    assert owned[0]["access_until"] == bought["subjects"][0]["access_until"]

    db.session.execute(update(PurchaseItem).values(access_until=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    refused = start(client, student, subject, 2)
    assert refused.status_code == 403
    assert refused.get_json()["type"].endswith("access-expired")
    assert client.get(f"/api/mock-tests/{finished}/review", headers=student).status_code == 200

    renewed = make_purchase(client, student, [subject])
    assert renewed["purchase"]["status"] == "paid"
    states = dict(db.session.execute(select(PurchaseItem.purchase_id, PurchaseItem.state)).all())
    assert states == {bought["id"]: ItemState.EXPIRED, renewed["purchase"]["id"]: ItemState.ACTIVE}
    assert db.session.execute(select(func.count()).select_from(MockTestAttempt)).scalar_one() == 100


def test_access_days_are_set_by_admins_and_counted_from_the_payment(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, admin: dict[str, str]
) -> None:
    subject = course.subject_ids[0]
    patched = client.patch(f"/api/subjects/{subject}", json={"access_days": 30}, headers=admin)
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["access_days"] == 30
    assert client.patch(f"/api/subjects/{subject}", json={"access_days": 0}, headers=admin).status_code == 422
    bought = make_purchase(client, student, [subject])["purchase"]
    assert bought["subjects"][0]["access_until"][:10] == (utcnow() + timedelta(days=30)).date().isoformat()
    bundle = client.patch(f"/api/bundles/{course.bundle_id}", json={"access_days": 90}, headers=admin)
    assert bundle.get_json()["access_days"] == 90
    other = bearer(register(client)["access_token"])
    in_bundle = make_purchase(client, other, bundle_id=course.bundle_id)["purchase"]
    until = {s["access_until"][:10] for s in in_bundle["subjects"]}
    assert until == {(utcnow() + timedelta(days=90)).date().isoformat()}


# ---------------------------------------------------------------------- comp grants


def test_an_admin_grants_a_comp_without_payment(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    admin_user = create_admin()
    customer_id = client.get("/api/customers/me", headers=student).get_json()["id"]
    body = {**purchase_body([course.subject_ids[0]]), "customer_id": customer_id}
    response = client.post("/api/purchases", json=body, headers=bearer(admin_user))
    assert response.status_code == 201, response.get_json()
    granted = response.get_json()
    assert (granted["status"], granted["cards_created"]) == ("created", 50)
    purchase = granted["purchase"]
    assert (purchase["provider"], purchase["granted_by_id"], purchase["status"]) == ("comp", admin_user.id, "paid")
    assert start(client, student, course.subject_ids[0], 1).status_code == 200
    # A student cannot grant.
    refused = client.post("/api/purchases", json={**body, "subject_id": course.subject_ids[1]}, headers=student)
    assert refused.status_code == 422
    assert "customer_id" in refused.get_json()["errors"]
