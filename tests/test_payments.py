"""Paid checkout in the sandbox (and against a fake of Razorpay's API): a purchase owns
nothing until its money is confirmed, is fulfilled once whoever confirms it, and each
forbidden transition of its state changes nothing. On SQLite and MariaDB."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from shared.extensions import db
from shared.models import ItemState, MockTestAttempt, Payment, PaymentEvent, Purchase, PurchaseItem, PurchaseStatus
from shared.models.base import utcnow
from shared.services.payments import hmac_hex
from shared.services.purchases import PurchaseService
from tests.support.catalog import CourseFixture, make_course
from tests.support.fake_razorpay import FakeRazorpay
from tests.support.purchases import confirmation, pay, purchase_body, sandbox_pay


@pytest.fixture
def course(app: Flask) -> CourseFixture:
    return make_course(subjects=3, price="499.00")


def checkout(client: FlaskClient, headers: dict[str, str], *subject_ids: int, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/purchases", json={**purchase_body(subject_ids), **extra}, headers=headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "pending_payment"
    return body


def confirm(client: FlaskClient, headers: dict[str, str], purchase_id: int, body: dict[str, Any]) -> Any:
    return client.post(f"/api/purchases/{purchase_id}/payment", json=body, headers=headers)


def card_count(purchase_id: int | None = None) -> int:
    statement = select(func.count()).select_from(MockTestAttempt)
    if purchase_id is not None:
        statement = statement.where(MockTestAttempt.purchase_id == purchase_id)
    return db.session.execute(statement).scalar_one()


def status_of(purchase_id: int) -> PurchaseStatus:
    db.session.remove()
    return db.session.execute(select(Purchase.status).where(Purchase.id == purchase_id)).scalar_one()


def webhook(client: FlaskClient, app: Flask, event: dict[str, Any], event_id: str, secret: str | None = None) -> Any:
    body = json.dumps(event).encode()
    signature = hmac_hex(secret or app.config["PAYMENT_WEBHOOK_SECRET"], body)
    return client.post(
        "/api/payments/webhook",
        data=body,
        content_type="application/json",
        headers={"X-Razorpay-Signature": signature, "X-Razorpay-Event-Id": event_id},
    )


def payment_event(name: str, handed: dict[str, Any], amount: int, status: str = "captured") -> dict[str, Any]:
    entity = {
        "id": handed["provider_payment_id"],
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "order_id": handed["provider_order_id"],
    }
    return {"entity": "event", "event": name, "contains": ["payment"], "payload": {"payment": {"entity": entity}}}


# ---------------------------------------------------------------------- the flow


def test_a_checkout_fixes_the_price_and_owns_nothing(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    body = checkout(client, student, course.subject_ids[0], cost="499.00")
    assert body["cards_created"] == 0
    assert body["payment"] == {
        "provider": "sandbox",
        "provider_order_id": body["purchase"]["provider_order_id"],
        "amount": 49900,
        "currency": "INR",
        "key_id": app.config["PAYMENT_KEY_ID"],
    }
    purchase = body["purchase"]
    assert (purchase["status"], purchase["total_cost"], purchase["cards_total"]) == ("pending_payment", "499.00", 0)
    assert [s["state"] for s in purchase["subjects"]] == ["pending"]
    assert purchase["expires_at"] is not None
    assert card_count() == 0
    assert client.get("/api/mock-tests", headers=student).get_json()["items"] == []
    assert client.get("/api/mock-tests/progress", headers=student).get_json() == {"subjects": []}


def test_the_price_is_still_checked(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    body = purchase_body([course.subject_ids[0]])
    response = client.post("/api/purchases", json={**body, "cost": "1.00"}, headers=student)
    assert response.status_code == 409
    assert response.get_json()["current_price"] == "499.00"
    assert db.session.execute(select(func.count()).select_from(Purchase)).scalar_one() == 0


def test_paying_and_confirming_fulfils_once_and_a_repeat_answers_the_same(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    body = checkout(client, student, *course.subject_ids[:2])
    handed = sandbox_pay(client, student, body)
    assert set(handed) >= {"provider_order_id", "provider_payment_id", "signature"}
    purchase_id = body["purchase"]["id"]
    assert status_of(purchase_id) is PurchaseStatus.PENDING_PAYMENT  # no webhook: nothing yet

    first = confirm(client, student, purchase_id, confirmation(handed))
    assert first.status_code == 200, first.get_json()
    paid = first.get_json()
    assert (paid["status"], paid["cards_created"]) == ("paid", 100)
    assert paid["purchase"]["status"] == "paid"
    assert {s["state"] for s in paid["purchase"]["subjects"]} == {"active"}
    assert all(s["access_until"] for s in paid["purchase"]["subjects"])
    again = confirm(client, student, purchase_id, confirmation(handed))
    assert again.status_code == 200
    assert again.get_json() == paid
    assert card_count(purchase_id) == 100
    assert db.session.execute(select(func.count()).select_from(Payment)).scalar_one() == 1


def test_the_webhook_alone_fulfils_and_the_late_confirmation_agrees(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    handed = sandbox_pay(client, student, body, deliver_webhook=True)
    assert handed["webhook"]["status"] == "processed"
    purchase_id = body["purchase"]["id"]
    assert status_of(purchase_id) is PurchaseStatus.PAID
    assert card_count(purchase_id) == 50
    late = confirm(client, student, purchase_id, confirmation(handed))
    assert late.status_code == 200
    assert (late.get_json()["status"], late.get_json()["cards_created"]) == ("paid", 50)
    assert card_count(purchase_id) == 50


def test_a_checkout_replays_with_its_idempotency_key(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    headers = {**student, "Idempotency-Key": "checkout-1"}
    first = client.post("/api/purchases", json=purchase_body([course.subject_ids[0]]), headers=headers)
    second = client.post("/api/purchases", json=purchase_body([course.subject_ids[0]]), headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["payment"] == first.get_json()["payment"]
    assert db.session.execute(select(func.count()).select_from(Purchase)).scalar_one() == 1


def test_owned_subjects_are_already_owned_and_mixed_ones_a_409(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    pay(client, student, checkout(client, student, course.subject_ids[0]))
    owned = client.post("/api/purchases", json=purchase_body([course.subject_ids[0]]), headers=student)
    assert (owned.status_code, owned.get_json()["status"]) == (200, "already_owned")
    mixed = client.post("/api/purchases", json=purchase_body(course.subject_ids[:2]), headers=student)
    assert mixed.status_code == 409
    assert mixed.get_json()["owned_subject_ids"] == [course.subject_ids[0]]


# ---------------------------------------------------------------------- refusals: nothing changes


def test_a_wrong_signature_is_a_400_and_changes_nothing(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    handed = sandbox_pay(client, student, body)
    forged = {**confirmation(handed), "signature": "0" * 64}
    response = confirm(client, student, body["purchase"]["id"], forged)
    assert response.status_code == 400
    assert response.get_json()["type"].endswith("payment-signature-invalid")
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PENDING_PAYMENT
    assert card_count() == 0


def test_another_purchases_order_is_refused(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    first = checkout(client, student, course.subject_ids[0])
    second = checkout(client, student, course.subject_ids[1])
    handed = sandbox_pay(client, student, second)
    response = confirm(client, student, first["purchase"]["id"], confirmation(handed))
    assert response.status_code == 422
    assert "provider_order_id" in response.get_json()["errors"]
    assert status_of(first["purchase"]["id"]) is PurchaseStatus.PENDING_PAYMENT
    assert card_count() == 0


def test_someone_elses_purchase_is_a_404(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    from tests.support.accounts import bearer, register

    body = checkout(client, student, course.subject_ids[0])
    handed = sandbox_pay(client, student, body)
    other = bearer(register(client)["access_token"])
    assert confirm(client, other, body["purchase"]["id"], confirmation(handed)).status_code == 404
    order = body["payment"]["provider_order_id"]
    assert (
        client.post(
            f"/api/payments/sandbox/orders/{order}/pay", json={"outcome": "captured"}, headers=other
        ).status_code
        == 404
    )
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PENDING_PAYMENT


def test_a_failed_payment_fails_the_checkout_and_a_later_one_pays_it(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    purchase_id = body["purchase"]["id"]
    failed = sandbox_pay(client, student, body, "failed", deliver_webhook=True)
    assert failed["signature"] is None
    assert status_of(purchase_id) is PurchaseStatus.FAILED
    # Signed correctly, but the provider says the payment failed: 409, nothing bought.
    signed = hmac_hex(
        app.config["PAYMENT_KEY_SECRET"], f"{failed['provider_order_id']}|{failed['provider_payment_id']}".encode()
    )
    response = confirm(client, student, purchase_id, {**confirmation(failed), "signature": signed})
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("payment-not-captured")
    assert card_count() == 0
    # failed -> paid: Razorpay lets the customer try again on the same order.
    paid = confirm(client, student, purchase_id, confirmation(sandbox_pay(client, student, body)))
    assert paid.status_code == 200
    assert status_of(purchase_id) is PurchaseStatus.PAID


def test_a_payment_failed_event_after_the_payment_leaves_it_paid(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    handed = sandbox_pay(client, student, body)
    confirm(client, student, body["purchase"]["id"], confirmation(handed))
    late = webhook(client, app, payment_event("payment.failed", handed, 49900, "failed"), "evt_late_failure")
    assert late.status_code == 200
    assert late.get_json()["status"] == "ignored"
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PAID
    assert card_count() == 50


def test_a_paid_order_cannot_be_paid_again_in_the_sandbox(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    pay(client, student, body)
    order = body["payment"]["provider_order_id"]
    again = client.post(f"/api/payments/sandbox/orders/{order}/pay", json={"outcome": "captured"}, headers=student)
    assert again.status_code == 409


# ---------------------------------------------------------------------- webhooks


def test_webhooks_are_signed_deduplicated_and_unknown_events_acknowledged(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    handed = sandbox_pay(client, student, body)
    event = payment_event("payment.captured", handed, 49900)

    caplog.set_level(logging.WARNING)
    forged = webhook(client, app, event, "evt_1", secret="not-the-webhook-secret")
    assert forged.status_code == 400
    assert "bad signature" in caplog.text
    unsigned = client.post("/api/payments/webhook", data=json.dumps(event), content_type="application/json")
    assert unsigned.status_code == 400
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PENDING_PAYMENT

    first = webhook(client, app, event, "evt_1")
    assert (first.status_code, first.get_json()["status"]) == (200, "processed")
    again = webhook(client, app, event, "evt_1")
    assert (again.status_code, again.get_json()["status"]) == (200, "duplicate")
    other = webhook(client, app, {"event": "settlement.processed", "payload": {}}, "evt_2")
    assert (other.status_code, other.get_json()["status"]) == (200, "ignored")
    assert db.session.execute(select(func.count()).select_from(PaymentEvent)).scalar_one() == 2
    assert card_count() == 50


def test_a_webhook_for_the_wrong_amount_fulfils_nothing(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    handed = sandbox_pay(client, student, body)
    response = webhook(client, app, payment_event("order.paid", handed, 100), "evt_cheap")
    assert (response.status_code, response.get_json()["status"]) == (200, "ignored")
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PENDING_PAYMENT
    assert card_count() == 0


def test_the_sandbox_route_is_only_there_for_the_sandbox(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    order = body["payment"]["provider_order_id"]
    app.config["PAYMENT_PROVIDER"] = "none"
    try:
        response = client.post(
            f"/api/payments/sandbox/orders/{order}/pay", json={"outcome": "captured"}, headers=student
        )
    finally:
        app.config["PAYMENT_PROVIDER"] = "sandbox"
    assert response.status_code == 404
    without = create_app_with(app, PAYMENT_PROVIDER="none")
    assert not any("sandbox" in rule.rule for rule in without.url_map.iter_rules())


def create_app_with(app: Flask, **settings: Any) -> Flask:
    from app import create_app
    from tests.conftest import app_config

    return create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], **settings))


# ---------------------------------------------------------------------- two checkouts, expiry, reconciliation


def test_two_checkouts_paid_for_one_subject_grant_it_once_and_record_the_surplus(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    subject = course.subject_ids[0]
    first, second = checkout(client, student, subject), checkout(client, student, subject)
    pay(client, student, first)
    surplus = pay(client, student, second)
    assert surplus["purchase"]["refund_due"] == "499.00"
    assert [s["state"] for s in surplus["purchase"]["subjects"]] == ["surplus"]
    assert surplus["cards_created"] == 0
    assert card_count() == 50
    owners = db.session.execute(
        select(func.count()).select_from(PurchaseItem).where(PurchaseItem.active_customer_id.is_not(None))
    ).scalar_one()
    assert owners == 1
    admin_view = client.get("/api/purchases", headers=admin_headers(app)).get_json()["items"]
    assert [p["refund_due"] for p in admin_view] == ["499.00", "0.00"]


def admin_headers(app: Flask) -> dict[str, str]:
    from tests.support.accounts import bearer, create_admin

    return bearer(create_admin())


def test_an_abandoned_checkout_expires_and_never_blocks_a_new_one(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    subject = course.subject_ids[0]
    abandoned = checkout(client, student, subject)
    paid_one = checkout(client, student, subject)  # the first never blocks it
    pay(client, student, paid_one)
    db.session.execute(
        update(Purchase)
        .where(Purchase.id.in_([abandoned["purchase"]["id"], paid_one["purchase"]["id"]]))
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    report = PurchaseService.reconcile()
    assert (report.expired, report.fulfilled) == (1, 0)
    assert status_of(abandoned["purchase"]["id"]) is PurchaseStatus.EXPIRED
    assert status_of(paid_one["purchase"]["id"]) is PurchaseStatus.PAID  # paid never expires
    assert PurchaseService.reconcile().expired == 0  # twice: nothing more
    # Money for the expired checkout arrives late: paid, but the subject is owned: surplus.
    late = pay(client, student, abandoned)
    assert late["purchase"]["status"] == "paid"
    assert late["purchase"]["refund_due"] == "499.00"
    assert card_count() == 50


# ---------------------------------------------------------------------- Razorpay, through its SDK, against a local fake


@pytest.fixture
def razorpay(app: Flask) -> Iterator[FakeRazorpay]:
    fake = FakeRazorpay(key_id="rzp_test_fake", key_secret="fake-key-secret")
    settings = {
        "PAYMENT_PROVIDER": "razorpay",
        "PAYMENT_KEY_ID": fake.key_id,
        "PAYMENT_KEY_SECRET": fake.key_secret,
        "PAYMENT_WEBHOOK_SECRET": "fake-webhook-secret",
        "PAYMENT_API_BASE_URL": fake.url,
    }
    saved = {name: app.config[name] for name in settings}
    app.config.update(settings)
    yield fake
    app.config.update(saved)
    fake.close()


def signed(fake: FakeRazorpay, payment: dict[str, Any]) -> dict[str, str]:
    """What Razorpay Checkout hands the SPA for this payment."""
    return {
        "provider_order_id": payment["order_id"],
        "provider_payment_id": payment["id"],
        "signature": hmac_hex(fake.key_secret, f"{payment['order_id']}|{payment['id']}".encode()),
    }


def test_razorpay_checkout_and_confirmation_through_the_sdk(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, razorpay: FakeRazorpay
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    order_id = body["payment"]["provider_order_id"]
    assert body["payment"]["provider"] == "razorpay"
    assert razorpay.orders[order_id]["amount"] == 49900  # integer paise
    assert body["payment"]["key_id"] == "rzp_test_fake"
    payment = razorpay.pay(order_id)
    response = confirm(client, student, body["purchase"]["id"], signed(razorpay, payment))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cards_created"] == 50
    assert f"GET /v1/payments/{payment['id']}" in razorpay.requests


@pytest.mark.parametrize(
    ("status", "amount", "answer"),
    [("captured", 100, 409), ("failed", None, 409), ("created", None, 409)],
    ids=["wrong-amount", "failed", "unpaid"],
)
def test_razorpay_payments_that_do_not_pay_this_order_change_nothing(
    client: FlaskClient,
    student: dict[str, str],
    course: CourseFixture,
    razorpay: FakeRazorpay,
    status: str,
    amount: int | None,
    answer: int,
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    payment = razorpay.pay(body["payment"]["provider_order_id"], status=status, amount=amount)
    response = confirm(client, student, body["purchase"]["id"], signed(razorpay, payment))
    assert response.status_code == answer, response.get_json()
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PENDING_PAYMENT
    assert card_count() == 0


def test_razorpay_unknown_payment_and_provider_outage(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, razorpay: FakeRazorpay
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    ghost = {"id": "pay_ghost", "order_id": body["payment"]["provider_order_id"]}
    assert confirm(client, student, body["purchase"]["id"], signed(razorpay, ghost)).status_code == 422
    razorpay.failing = True
    down = client.post("/api/purchases", json=purchase_body([course.subject_ids[1]]), headers=student)
    assert down.status_code == 503
    assert down.headers["Retry-After"]
    assert db.session.execute(select(func.count()).select_from(Purchase)).scalar_one() == 1


def test_reconcile_fulfils_a_paid_order_whose_webhook_never_came(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, razorpay: FakeRazorpay
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    razorpay.pay(body["payment"]["provider_order_id"])
    first = PurchaseService.reconcile()
    assert (first.checked, first.fulfilled, first.failed) == (1, 1, [])
    assert status_of(body["purchase"]["id"]) is PurchaseStatus.PAID
    assert PurchaseService.reconcile().checked == 0  # twice: nothing left to ask about
    assert card_count() == 50
    items = db.session.execute(select(PurchaseItem.state)).scalars().all()
    assert items == [ItemState.ACTIVE]


def test_money_is_decimal_and_paise_are_integers() -> None:
    from shared.services.payments import to_paise

    assert to_paise(Decimal("499.00")) == 49900
    assert to_paise(Decimal("0.10")) == 10
    assert isinstance(to_paise(Decimal("12345678.99")), int)
    with pytest.raises(ValueError, match="two decimals"):
        to_paise(Decimal("1.005"))


def test_the_reconcile_command_fulfils_and_is_safe_to_run_again(
    app: Flask, client: FlaskClient, student: dict[str, str], course: CourseFixture, razorpay: FakeRazorpay
) -> None:
    body = checkout(client, student, course.subject_ids[0])
    razorpay.pay(body["payment"]["provider_order_id"])
    runner = app.test_cli_runner()
    first = runner.invoke(args=["reconcile-payments"])
    assert first.exit_code == 0, first.output
    assert "1 fulfilled" in first.output
    second = runner.invoke(args=["reconcile-payments"])
    assert (second.exit_code, "0 fulfilled" in second.output) == (0, True)
    assert card_count() == 50


def test_check_constraints_knows_the_payment_invariants(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, app: Flask
) -> None:
    from shared.constraint_check import check_database

    paid = pay(client, student, checkout(client, student, course.subject_ids[0]))["purchase"]["id"]
    pending = checkout(client, student, course.subject_ids[1])["purchase"]["id"]
    url = app.config["SQLALCHEMY_DATABASE_URI"]

    def broken() -> set[str]:
        db.session.commit()
        report = check_database(url)
        return {check.name for check in report.checks if not check.ok}

    assert broken() == set()
    db.session.execute(update(Purchase).where(Purchase.id == paid).values(status=PurchaseStatus.PENDING_PAYMENT))
    assert broken() == {"unpaid purchases own nothing"}  # a pending purchase with cards
    db.session.execute(update(Purchase).where(Purchase.id == paid).values(status=PurchaseStatus.PAID))
    db.session.execute(update(Purchase).where(Purchase.id == pending).values(status=PurchaseStatus.PAID))
    assert broken() == {"paid purchases fulfilled"}  # paid, but a subject never granted
    db.session.execute(update(Purchase).where(Purchase.id == pending).values(status=PurchaseStatus.PENDING_PAYMENT))
    db.session.execute(update(PurchaseItem).where(PurchaseItem.purchase_id == paid).values(active_customer_id=None))
    assert broken() == {"subjects owned once"}  # active, but not holding its owner key
    db.session.execute(update(PurchaseItem).where(PurchaseItem.purchase_id == paid).values(state=ItemState.REFUNDED))
    assert broken() == set()
