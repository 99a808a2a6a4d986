"""Purchases, the subjects they bought, and the test cards each bought subject unlocks."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import HexDigest, PreciseDateTime, Timestamps, string_enum, unique_constraint, utcnow
from shared.models.course import Money, Subject

SUBJECT_ALREADY_OWNED = "This subject is already owned."
CARD_EXISTS = "This test card already exists."
# The name deployed databases carry; kept exactly.
COMPOSITE_CARD_CONSTRAINT = "unique_test_per_purchase_subject"
OLD_CARD_CONSTRAINT = "unique_test_per_purchase"


class PurchaseType(enum.StrEnum):
    SINGLE_SUBJECT = "single_subject"
    MULTIPLE_SUBJECTS = "multiple_subjects"
    BUNDLE = "bundle"


class CardStatus(enum.StrEnum):
    AVAILABLE = "available"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    EXPIRED = "expired"


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


class MockTestAttempt(Timestamps, db.Model):
    """A test card: test `test_number` (1..MOCK_TESTS_PER_SUBJECT) of a subject of a purchase."""

    __tablename__ = "mock_test_attempts"
    __table_args__ = (
        unique_constraint(
            "purchase_id",
            "subject_id",
            "test_number",
            name=COMPOSITE_CARD_CONSTRAINT,
            field=None,
            message=CARD_EXISTS,
        ),
        # A customer's cards in list order, read straight from the index (no sort).
        Index("ix_mock_test_attempts_customer_id_subject_id_test_number", "customer_id", "subject_id", "test_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    # The purchase's customer, copied here so that the card lists need no join.
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    test_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[CardStatus] = mapped_column(string_enum(CardStatus), default=CardStatus.AVAILABLE)
    question_ids: Mapped[list[int] | None] = mapped_column(JSON)
    question_count: Mapped[int | None] = mapped_column(Integer)
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    correct_count: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    started_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)

    subject: Mapped[Subject] = relationship(lazy="raise")


class IdempotencyKey(db.Model):
    """The stored outcome of a POST sent with an Idempotency-Key header."""

    __tablename__ = "idempotency_keys"
    # Keys are unique by the SHA-256 of their UTF-8 bytes: no collation (not even
    # utf8mb4_bin, which is PAD SPACE) then folds case, accents or trailing spaces.
    one_use_per_key = unique_constraint(
        "customer_id", "key_sha256", field="Idempotency-Key", message="This Idempotency-Key is already in use."
    )
    __table_args__ = (one_use_per_key,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    key_sha256: Mapped[str] = mapped_column(HexDigest)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
