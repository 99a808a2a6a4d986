"""Test cards: each bought subject unlocks MOCK_TESTS_PER_SUBJECT of them."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import PreciseDateTime, Timestamps, string_enum, unique_constraint
from shared.models.catalog import Subject

CARD_EXISTS = "This test card already exists."
# The names deployed databases carry; kept exactly.
COMPOSITE_CARD_CONSTRAINT = "unique_test_per_purchase_subject"
OLD_CARD_CONSTRAINT = "unique_test_per_purchase"


class CardStatus(enum.StrEnum):
    AVAILABLE = "available"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    EXPIRED = "expired"


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
