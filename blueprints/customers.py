"""Customer profiles and the admin upgrade to customer."""

from __future__ import annotations

from typing import Any

from flask_jwt_extended import current_user

from shared.models import Customer
from shared.openapi import Blueprint
from shared.schemas.accounts import (
    CustomerDetailSchema,
    CustomerListQuerySchema,
    CustomerPageSchema,
    CustomerUpdateSchema,
    UpgradeResultSchema,
    UpgradeSchema,
)
from shared.security import admin_required, login_required
from shared.services.base import Page
from shared.services.customers import CustomerService

blp = Blueprint("customers", __name__, url_prefix="/api/customers", description="Customer profiles and the upgrade")


@blp.route("/upgrade", methods=["POST"])
@admin_required
@blp.arguments(UpgradeSchema)
@blp.response(201, UpgradeResultSchema)
@blp.problems(401, 403, 409, 422)
def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Make the calling admin a customer, with a subscription.

    409 with `errors.email` or `errors.phone_number` when another customer holds them,
    409 when the admin already is a customer, 422 when the account has no phone number
    and the body gives none.
    """
    customer, subscription = CustomerService.upgrade_to_customer(current_user, data)
    return {"customer": customer, "subscription": subscription}


@blp.route("")
@admin_required
@blp.arguments(CustomerListQuerySchema, location="query")
@blp.response(200, CustomerPageSchema)
@blp.problems(401, 403, 422)
def list_customers(query: dict[str, Any]) -> Page[Customer]:
    """All customers, by id, optionally searched by email or phone number."""
    return CustomerService.list_customers(query["page"], query["per_page"], query.get("q"))


@blp.route("/<id:customer_id>")
@admin_required
@blp.response(200, CustomerDetailSchema)
@blp.problems(401, 403, 404)
def get_customer(customer_id: int) -> Customer:
    return CustomerService.get_customer(customer_id)


@blp.route("/me")
@login_required
@blp.response(200, CustomerDetailSchema)
@blp.problems(401, 403)
def get_own_profile() -> Customer:
    """The caller's customer profile (403 for accounts that are not customers)."""
    return CustomerService.customer_of(current_user)


@blp.route("/me", methods=["PATCH"])
@login_required
@blp.arguments(CustomerUpdateSchema)
@blp.response(200, CustomerDetailSchema)
@blp.problems(401, 403, 409, 422)
def update_own_profile(data: dict[str, Any]) -> Customer:
    """Change the caller's name or phone number (a phone another customer holds is a 409)."""
    return CustomerService.update_own_profile(current_user, data)
