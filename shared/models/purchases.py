"""Purchases (checkouts), the subjects they hold (each a customer's entitlement once paid),
and their money: provider payments, refunds and the provider's webhook events.

A purchase's states (README "Purchase states"):

    pending_payment --paid--> paid --refund some--> partially_refunded --refund rest--> refunded
          |    |                 \\---------------- refund all ---------------------------^
          |    +--failed--> failed --paid (a later attempt on the same order)--> paid
          +--past PAYMENT_PENDING_MINUTES--> expired --paid (money arrived late)--> paid

Nothing leaves paid, partially_refunded or refunded except through a refund; nothing
becomes pending again. An item's states: pending (while its purchase waits for money) ->
active (owned) | surplus (paid for, but the subject was owned already: due for refund);
active -> refunded | expired (its access ended and the subject was bought again).
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import PreciseDateTime, string_enum, unique_constraint, utcnow
from shared.models.catalog import Money, Subject

SUBJECT_ALREADY_OWNED = "This subject is already owned."


class PurchaseType(enum.StrEnum):
    SINGLE_SUBJECT = "single_subject"
    MULTIPLE_SUBJECTS = "multiple_subjects"
    BUNDLE = "bundle"


class PurchaseStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# A checkout that may still be paid (and fulfilled).
PAYABLE = (PurchaseStatus.PENDING_PAYMENT, PurchaseStatus.FAILED, PurchaseStatus.EXPIRED)
# A purchase whose money arrived.
SETTLED = (PurchaseStatus.PAID, PurchaseStatus.PARTIALLY_REFUNDED, PurchaseStatus.REFUNDED)


class ItemState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SURPLUS = "surplus"
    REFUNDED = "refunded"
    EXPIRED = "expired"


# Items that were granted (and so have their cards).
GRANTED = (ItemState.ACTIVE, ItemState.REFUNDED, ItemState.EXPIRED)


class Provider(enum.StrEnum):
    RAZORPAY = "razorpay"
    SANDBOX = "sandbox"
    NONE = "none"  # immediate fulfilment (demos, benchmarks)
    LEGACY = "legacy"  # bought before payments existed
    COMP = "comp"  # granted by an admin without payment


class PaymentStatus(enum.StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class Purchase(db.Model):
    __tablename__ = "purchases"
    # A unique index rather than a constraint: SQLite adds one to an existing table without
    # rebuilding it (which its foreign keys forbid).
    one_purchase_per_order = Index("uq_purchases_provider_order_id", "provider_order_id", unique=True)
    __table_args__ = (one_purchase_per_order,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    purchase_type: Mapped[PurchaseType] = mapped_column(string_enum(PurchaseType, 32))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), index=True)
    bundle_id: Mapped[int | None] = mapped_column(ForeignKey("bundles.id"), index=True)
    total_cost: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    status: Mapped[PurchaseStatus] = mapped_column(string_enum(PurchaseStatus, 24), index=True)
    provider: Mapped[Provider] = mapped_column(string_enum(Provider, 16))
    provider_order_id: Mapped[str | None] = mapped_column(String(64))
    # A pending checkout expires at this time (nothing was bought; a new checkout may start).
    expires_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    # The user id of the admin who granted a comp purchase (a record, like a log line).
    granted_by_id: Mapped[int | None] = mapped_column(Integer)
    # Money received for subjects the customer owned already (two checkouts paid for one
    # subject): an admin refunds it.
    refund_due: Mapped[Decimal] = mapped_column(Money, server_default="0.00")


class PurchaseItem(db.Model):
    """One subject of a purchase; once paid, the customer's entitlement.

    `active_customer_id` is the customer while the entitlement is active and NULL otherwise
    (pending, surplus, refunded, expired): unique with the subject, it lets a
    subject be owned once at a time and bought again after a refund or once access ended.
    """

    __tablename__ = "purchase_items"
    one_owner_per_subject = unique_constraint(
        "active_customer_id", "subject_id", field="subject_ids", message=SUBJECT_ALREADY_OWNED
    )
    __table_args__ = (one_owner_per_subject,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    price: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    state: Mapped[ItemState] = mapped_column(string_enum(ItemState, 16))
    active_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # NULL: no end (bought before access periods existed).
    access_until: Mapped[datetime | None] = mapped_column(PreciseDateTime)

    subject: Mapped[Subject] = relationship(lazy="raise")


class Payment(db.Model):
    """A provider payment of a purchase's order: captured (it paid) or failed."""

    __tablename__ = "payments"
    one_row_per_payment = unique_constraint(
        "provider_payment_id", field="provider_payment_id", message="This payment was recorded already."
    )
    __table_args__ = (one_row_per_payment,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    provider: Mapped[Provider] = mapped_column(string_enum(Provider, 16))
    provider_payment_id: Mapped[str] = mapped_column(String(64))
    amount_paise: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(string_enum(PaymentStatus, 16))
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)


class Refund(db.Model):
    """Money given back for some subjects of a purchase; its state follows the provider."""

    __tablename__ = "refunds"
    one_refund_per_key = unique_constraint("idempotency_key", field=None, message="This refund exists already.")
    one_row_per_provider_refund = unique_constraint(
        "provider_refund_id", field=None, message="This provider refund was recorded already."
    )
    __table_args__ = (one_refund_per_key, one_row_per_provider_refund)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    # Sent to the provider (X-Refund-Idempotency): a retried refund is made once.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    provider_refund_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money)
    subject_ids: Mapped[list[int]] = mapped_column(JSON)
    status: Mapped[RefundStatus] = mapped_column(string_enum(RefundStatus, 16))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow, onupdate=utcnow)


class PaymentEvent(db.Model):
    """A provider webhook event, recorded once: a redelivery finds it and does nothing."""

    __tablename__ = "payment_events"
    one_row_per_event = unique_constraint("provider", "event_id", field=None, message="This event was handled.")
    __table_args__ = (one_row_per_event,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[Provider] = mapped_column(string_enum(Provider, 16))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"), index=True)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
