"""Customer profiles and the admin upgrade to customer."""

from __future__ import annotations

from shared.openapi import Blueprint

blp = Blueprint(
    "customers",
    __name__,
    url_prefix="/api/customers",
    description="Customer profiles and the admin upgrade to customer",
)
