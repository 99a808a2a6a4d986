"""Purchases and the subjects they bought (each a customer's entitlement)."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.base import PreciseDateTime, string_enum, unique_constraint, utcnow
from shared.models.catalog import Money

SUBJECT_ALREADY_OWNED = "This subject is already owned."


class PurchaseType(enum.StrEnum):
    SINGLE_SUBJECT = "single_subject"
    MULTIPLE_SUBJECTS = "multiple_subjects"
    BUNDLE = "bundle"


class Purchase(db.Model):
    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    purchase_type: Mapped[PurchaseType] = mapped_column(string_enum(PurchaseType, 32))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), index=True)
    bundle_id: Mapped[int | None] = mapped_column(ForeignKey("bundles.id"), index=True)
    total_cost: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)


class PurchaseItem(db.Model):
    """One subject bought: the customer's entitlement, unique per customer and subject."""

    __tablename__ = "purchase_items"
    one_owner_per_subject = unique_constraint(
        "customer_id", "subject_id", field="subject_ids", message=SUBJECT_ALREADY_OWNED
    )
    __table_args__ = (one_owner_per_subject,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    price: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
