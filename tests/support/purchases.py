"""Buy through the API, for tests whose subject is not the purchase itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask.testing import FlaskClient

from tests.support.accounts import bearer, register


def purchase_body(subject_ids: Sequence[int] = (), bundle_id: int | None = None) -> dict[str, Any]:
    """The body that buys a bundle, one subject or several subjects."""
    if bundle_id is not None:
        assert not subject_ids, "a bundle or subjects, not both"
        return {"purchase_type": "bundle", "bundle_id": bundle_id}
    if len(subject_ids) == 1:
        return {"purchase_type": "single_subject", "subject_id": subject_ids[0]}
    return {"purchase_type": "multiple_subjects", "subject_ids": list(subject_ids)}


def make_purchase(
    client: FlaskClient, headers: dict[str, str], subject_ids: Sequence[int] = (), bundle_id: int | None = None
) -> dict[str, Any]:
    """Buy, and fail the test unless the purchase was created (201) and, when the app takes
    payments, paid in the sandbox and confirmed; the last answer's body."""
    response = client.post("/api/purchases", json=purchase_body(subject_ids, bundle_id), headers=headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    if body["status"] == "pending_payment":
        body = pay(client, headers, body)
    return body


def sandbox_pay(
    client: FlaskClient,
    headers: dict[str, str],
    checkout: dict[str, Any],
    outcome: str = "captured",
    *,
    deliver_webhook: bool = False,
) -> dict[str, Any]:
    """Play Razorpay Checkout for a checkout's order: what it hands the SPA."""
    order_id = checkout["payment"]["provider_order_id"]
    response = client.post(
        f"/api/payments/sandbox/orders/{order_id}/pay",
        json={"outcome": outcome, "deliver_webhook": deliver_webhook},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def confirmation(handed: dict[str, Any]) -> dict[str, Any]:
    """The body of POST /api/purchases/{id}/payment from what Checkout handed the SPA."""
    return {key: handed[key] for key in ("provider_order_id", "provider_payment_id", "signature")}


def pay(client: FlaskClient, headers: dict[str, str], checkout: dict[str, Any]) -> dict[str, Any]:
    """Pay a checkout in the sandbox and confirm it as the SPA does: the confirmation's body."""
    handed = sandbox_pay(client, headers, checkout)
    purchase_id = checkout["purchase"]["id"]
    response = client.post(f"/api/purchases/{purchase_id}/payment", json=confirmation(handed), headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def student_with(client: FlaskClient, subject_ids: Sequence[int] = (), bundle_id: int | None = None) -> dict[str, str]:
    """A newly registered student who bought these subjects (or this bundle): their headers."""
    headers = bearer(register(client)["access_token"])
    make_purchase(client, headers, subject_ids, bundle_id)
    return headers
