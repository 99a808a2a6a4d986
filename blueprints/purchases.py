"""Buying subjects and bundles."""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from flask_jwt_extended import current_user

from shared.openapi import Blueprint
from shared.schemas.purchases import (
    PurchaseListQuerySchema,
    PurchasePageSchema,
    PurchaseRequestSchema,
    PurchaseResultSchema,
    PurchaseSchema,
)
from shared.security import login_required
from shared.services.base import Page
from shared.services.idempotency import HEADER, parse_key
from shared.services.purchases import CREATED, PurchaseService, PurchaseView

blp = Blueprint("purchases", __name__, url_prefix="/api/purchases", description="Buying subjects and bundles")


@blp.route("", methods=["POST"])
@login_required
@blp.arguments(PurchaseRequestSchema)
@blp.response(
    201,
    PurchaseResultSchema,
    description="Bought: the purchase and the number of cards created",
    location=lambda result: url_for("purchases.get_purchase", purchase_id=result.purchase.id),
)
@blp.alt_response(200, schema=PurchaseResultSchema, success=True, description="Everything already owned")
@blp.problems(401, 403, 409, 422)
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
    """Buy one subject, several subjects or a bundle; every subject unlocks its test cards.

    The price is computed by the server; `cost`, when sent, must match it (409 with
    `current_price` otherwise). Buying only owned subjects answers 200 `already_owned`;
    mixing owned and new subjects is a 409 listing `owned_subject_ids`.
    """
    result = PurchaseService.purchase(current_user, data, parse_key(request.headers.get(HEADER)))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return result, 201 if result.status == CREATED else 200, headers


@blp.route("")
@login_required
@blp.arguments(PurchaseListQuerySchema, location="query")
@blp.response(200, PurchasePageSchema)
@blp.problems(401, 403, 422)
def list_purchases(query: dict[str, Any]) -> Page[PurchaseView]:
    """The caller's purchases, newest first (admins: everyone's, or one customer's)."""
    return PurchaseService.list_purchases(current_user, query["page"], query["per_page"], query.get("customer_id"))


@blp.route("/<id:purchase_id>")
@login_required
@blp.response(200, PurchaseSchema)
@blp.problems(401, 403, 404)
def get_purchase(purchase_id: int) -> PurchaseView:
    """One purchase with its subjects and card counts (another customer's is a 404)."""
    return PurchaseService.get_purchase(current_user, purchase_id)
