"""Payment confirmations and webhooks racing through gunicorn (4 workers, sandbox) on MariaDB:
whatever arrives first, and however often, a purchase is fulfilled exactly once."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import ItemState, MockTestAttempt, Payment, PaymentEvent, Purchase, PurchaseItem, PurchaseStatus
from shared.services.payments import hmac_hex
from tests.support.accounts import bearer, register
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.queries import count_rows

pytestmark = pytest.mark.race


@pytest.fixture
def student(mariadb: Flask) -> dict[str, str]:
    return bearer(register(mariadb.test_client())["access_token"])


def post(server: LiveServer, path: str, body: Any, headers: dict[str, str]) -> requests.Response:
    return requests.post(server.url(path), json=body, headers=headers, timeout=60)


def checkout(server: LiveServer, subject_id: int, headers: dict[str, str]) -> dict[str, Any]:
    response = post(server, "/api/purchases", {"purchase_type": "single_subject", "subject_id": subject_id}, headers)
    assert response.status_code == 201, response.text
    return response.json()


def sandbox_pay(server: LiveServer, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    order = body["payment"]["provider_order_id"]
    path = f"/api/payments/sandbox/orders/{order}/pay"
    response = post(server, path, {"outcome": "captured", "deliver_webhook": False}, headers)
    assert response.status_code == 200, response.text
    return response.json()


def confirmation(handed: dict[str, Any]) -> dict[str, Any]:
    return {key: handed[key] for key in ("provider_order_id", "provider_payment_id", "signature")}


def signed_webhook(
    server: LiveServer, secret: str, event: str, handed: dict[str, Any], amount: int, event_id: str
) -> requests.Response:
    entity = {
        "id": handed["provider_payment_id"],
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": "captured",
        "order_id": handed["provider_order_id"],
    }
    body = json.dumps({"entity": "event", "event": event, "payload": {"payment": {"entity": entity}}}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Razorpay-Signature": hmac_hex(secret, body),
        "X-Razorpay-Event-Id": event_id,
    }
    return requests.post(server.url("/api/payments/webhook"), data=body, headers=headers, timeout=60)


def test_twenty_confirmations_and_ten_webhooks_fulfil_once(
    mariadb: Flask, sandbox_server: LiveServer, student: dict[str, str]
) -> None:
    course = make_course(subjects=1, price="499.00")
    body = checkout(sandbox_server, course.subject_ids[0], student)
    handed = sandbox_pay(sandbox_server, body, student)
    purchase_id = body["purchase"]["id"]
    secret = mariadb.config["PAYMENT_WEBHOOK_SECRET"]

    def send(index: int) -> requests.Response:
        if index % 3 == 2:  # 10 webhooks: redeliveries and order.paid, each its own event id
            event = "order.paid" if index % 2 else "payment.captured"
            return signed_webhook(sandbox_server, secret, event, handed, 49900, f"evt_race_{index}")
        return post(sandbox_server, f"/api/purchases/{purchase_id}/payment", confirmation(handed), student)

    responses = fire_concurrently(30, send)
    assert Counter(r.status_code for r in responses) == {200: 30}, sandbox_server.log_tail()
    confirmations = [r.json() for r in responses if "cards_created" in r.json()]
    assert len(confirmations) == 20
    assert {(c["status"], c["cards_created"], c["purchase"]["status"]) for c in confirmations} == {("paid", 50, "paid")}
    assert count_rows(Payment) == 1
    assert count_rows(MockTestAttempt) == 50
    assert count_rows(PaymentEvent) == 10
    assert db.session.execute(select(Purchase.status)).scalar_one() is PurchaseStatus.PAID


def test_thirty_deliveries_of_one_webhook_are_handled_once(
    mariadb: Flask, sandbox_server: LiveServer, student: dict[str, str]
) -> None:
    course = make_course(subjects=2, price="250.00")
    body = checkout(sandbox_server, course.subject_ids[0], student)
    handed = sandbox_pay(sandbox_server, body, student)
    secret = mariadb.config["PAYMENT_WEBHOOK_SECRET"]
    responses = fire_concurrently(
        30, lambda _: signed_webhook(sandbox_server, secret, "payment.captured", handed, 25000, "evt_same")
    )
    assert Counter(r.status_code for r in responses) == {200: 30}, sandbox_server.log_tail()
    assert Counter(r.json()["status"] for r in responses) == {"processed": 1, "duplicate": 29}
    assert count_rows(PaymentEvent) == 1
    assert count_rows(Payment) == 1
    assert count_rows(MockTestAttempt) == 50


def test_two_checkouts_paid_for_one_subject_grant_it_once(
    mariadb: Flask, sandbox_server: LiveServer, student: dict[str, str]
) -> None:
    course = make_course(subjects=1, price="499.00")
    subject = course.subject_ids[0]
    first, second = checkout(sandbox_server, subject, student), checkout(sandbox_server, subject, student)
    paid = [
        (first, sandbox_pay(sandbox_server, first, student)),
        (second, sandbox_pay(sandbox_server, second, student)),
    ]

    def send(index: int) -> requests.Response:
        body, handed = paid[index % 2]
        return post(sandbox_server, f"/api/purchases/{body['purchase']['id']}/payment", confirmation(handed), student)

    responses = fire_concurrently(20, send)
    assert Counter(r.status_code for r in responses) == {200: 20}, sandbox_server.log_tail()
    states = Counter(db.session.execute(select(PurchaseItem.state)).scalars())
    assert states == {ItemState.ACTIVE: 1, ItemState.SURPLUS: 1}
    assert count_rows(MockTestAttempt) == 50
    owners = db.session.execute(
        select(func.count()).select_from(PurchaseItem).where(PurchaseItem.active_customer_id.is_not(None))
    ).scalar_one()
    assert owners == 1
    due = db.session.execute(select(Purchase.refund_due).order_by(Purchase.refund_due)).scalars().all()
    assert due == [Decimal("0.00"), Decimal("499.00")]
    assert set(db.session.execute(select(Purchase.status)).scalars()) == {PurchaseStatus.PAID}
