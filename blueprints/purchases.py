"""Buying subjects and bundles."""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from flask_jwt_extended import current_user

from shared.openapi import Blueprint
from shared.schemas.lean import page_response
from shared.schemas.purchases import (
    PURCHASE_ITEMS,
    PaymentConfirmationSchema,
    PurchaseListQuerySchema,
    PurchasePageSchema,
    PurchaseRequestSchema,
    PurchaseResultSchema,
    PurchaseSchema,
    RefundRequestSchema,
    RefundResultSchema,
    SandboxCheckoutSchema,
    SandboxPaymentSchema,
    WebhookOutcomeSchema,
)
from shared.security import admin_required, login_required
from shared.services.idempotency import HEADER, parse_key
from shared.services.purchases import (
    ALREADY_OWNED,
    PurchaseResult,
    PurchaseService,
    PurchaseView,
    RefundResult,
    SandboxCheckout,
    WebhookOutcome,
)

blp = Blueprint("purchases", __name__, url_prefix="/api/purchases", description="Buying subjects and bundles")
payments = Blueprint("payments", __name__, url_prefix="/api/payments", description="The payment provider's side")
# Registered only with PAYMENT_PROVIDER=sandbox (blueprints/__init__.py).
sandbox = Blueprint(
    "payments_sandbox", __name__, url_prefix="/api/payments/sandbox", description="Razorpay Checkout, played locally"
)


# Documented on the answers an Idempotency-Key can replay.
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` on an answer replayed for a retry with the same Idempotency-Key; absent otherwise",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@blp.route("", methods=["POST"])
@login_required
@blp.arguments(PurchaseRequestSchema)
@blp.response(
    201,
    PurchaseResultSchema,
    headers=REPLAYED,
    description="A checkout waiting for its payment (`pending_payment`, with `payment`), or, without a payment "
    "provider and for an admin's comp grant, bought at once (`created`) with the number of cards created",
    location=lambda result: url_for("purchases.get_purchase", purchase_id=result.purchase.id),
)
@blp.alt_response(
    200, schema=PurchaseResultSchema, success=True, description="Everything already owned", headers=REPLAYED
)
@blp.problems(401, 403, 404, 409, 422, 503)
@blp.doc(
    parameters=[
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Makes retries safe: the same key and body replay the first answer for 24 hours; "
            "the same key with another body is a 422; a retry while the first runs is a 409.",
        }
    ]
)
def create_purchase(data: dict[str, Any]) -> tuple[Any, int, dict[str, str]]:
    """Buy one subject, several subjects or a bundle; once paid, every subject unlocks its test cards.

    The price is computed by the server; `cost`, when sent, must match it (409 with
    `current_price` otherwise). Buying only owned subjects answers 200 `already_owned`;
    mixing owned and new subjects is a 409 listing `owned_subject_ids`. With a payment
    provider the answer is a checkout: pay `payment` with Razorpay Checkout, then confirm
    with `POST /api/purchases/{id}/payment`. Admins may send `customer_id` to grant the
    subjects without payment.
    """
    result = PurchaseService.purchase(current_user, data, parse_key(request.headers.get(HEADER)))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return result, 200 if result.status == ALREADY_OWNED else 201, headers


@blp.route("/<id:purchase_id>/payment", methods=["POST"])
@login_required
@blp.arguments(PaymentConfirmationSchema)
@blp.response(200, PurchaseResultSchema, description="Paid: the purchase, fulfilled once, and its cards")
@blp.problems(400, 401, 403, 404, 409, 422, 503)
def confirm_payment(data: dict[str, Any], purchase_id: int) -> PurchaseResult:
    """Confirm a payment with what Razorpay Checkout handed the SPA.

    The signature (HMAC-SHA256 of `order_id|payment_id` with the key secret) must match, and
    the provider must report the payment captured, for this order and its exact amount;
    then the purchase is fulfilled, or found fulfilled by the webhook: the same answer.
    """
    return PurchaseService.confirm_payment(current_user, purchase_id, data)


@blp.route("")
@login_required
@blp.arguments(PurchaseListQuerySchema, location="query")
@blp.response(200, PurchasePageSchema)  # documents the answer, which the view dumps itself
@blp.problems(401, 403, 422)
def list_purchases(query: dict[str, Any]) -> Response:
    """The caller's purchases, newest first (admins: everyone's, or one customer's)."""
    found = PurchaseService.list_purchases(current_user, query["page"], query["per_page"], query.get("customer_id"))
    return page_response(found, PURCHASE_ITEMS)


@blp.route("/<id:purchase_id>")
@login_required
@blp.response(200, PurchaseSchema)
@blp.problems(401, 403, 404)
def get_purchase(purchase_id: int) -> PurchaseView:
    """One purchase with its subjects and card counts (another customer's is a 404)."""
    return PurchaseService.get_purchase(current_user, purchase_id)


@blp.route("/<id:purchase_id>/refund", methods=["POST"])
@admin_required
@blp.arguments(RefundRequestSchema)
@blp.response(
    201,
    RefundResultSchema,
    description="The refund (its state follows the provider) and the purchase",
    location=lambda _result, purchase_id: url_for("purchases.get_purchase", purchase_id=purchase_id),
)
@blp.problems(401, 403, 404, 409, 422, 503)
def refund_purchase(data: dict[str, Any], purchase_id: int) -> RefundResult:
    """Refund a paid purchase, all of it or `subject_ids`: their access ends at once (unstarted
    tests can no longer start; finished ones stay readable) and they can be bought again."""
    return PurchaseService.refund(current_user, purchase_id, data.get("subject_ids"))


@payments.route("/webhook", methods=["POST"])
@payments.response(200, WebhookOutcomeSchema, description="Handled, a duplicate, or not an event the shop acts on")
@payments.problems(400, 404)
@payments.doc(
    security=[],
    parameters=[
        {"in": "header", "name": "X-Razorpay-Signature", "required": True, "schema": {"type": "string"}},
        {"in": "header", "name": "X-Razorpay-Event-Id", "required": False, "schema": {"type": "string"}},
    ],
)
def webhook() -> WebhookOutcome:
    """The provider's signed events (payment captured or failed, order paid, refund processed).

    The signature is checked over the raw body; each event id is handled once.
    """
    return PurchaseService.handle_webhook(
        request.get_data(cache=False),
        request.headers.get("X-Razorpay-Signature"),
        request.headers.get("X-Razorpay-Event-Id"),
    )


@sandbox.route("/orders/<provider_order_id>/pay", methods=["POST"])
@login_required
@sandbox.arguments(SandboxPaymentSchema)
@sandbox.response(200, SandboxCheckoutSchema, description="What Razorpay Checkout hands the SPA")
@sandbox.problems(401, 403, 404, 409, 422)
def sandbox_pay(data: dict[str, Any], provider_order_id: str) -> SandboxCheckout:
    """Pay (or fail to pay) a sandbox order as Razorpay Checkout would; the signed webhook is
    delivered to the app, unless `deliver_webhook` is false."""
    return PurchaseService.sandbox_pay(current_user, provider_order_id, data["outcome"], data["deliver_webhook"])
