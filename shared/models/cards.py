"""Test cards: each bought subject unlocks MOCK_TESTS_PER_SUBJECT of them."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, Numeric
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import (
    PROBLEM_FIELD,
    PROBLEM_MESSAGE,
    PreciseDateTime,
    Timestamps,
    string_enum,
    unique_constraint,
    utcnow,
)
from shared.models.catalog import Subject
from shared.models.questions import NumericAnswer, QuestionType, QuestionVersion

CARD_EXISTS = "This test card already exists."
# The names deployed databases carry; kept exactly.
COMPOSITE_CARD_CONSTRAINT = "unique_test_per_purchase_subject"
OLD_CARD_CONSTRAINT = "unique_test_per_purchase"
RANKED_ONCE = "Only a customer's first attempt of a paper is ranked."


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
        # The cards `flask finalize-overdue` looks for.
        Index("ix_mock_test_attempts_status_deadline_at", "status", "deadline_at"),
        # One ranked (first) attempt per customer and paper version; NULLs never collide. A
        # unique index: SQLite adds one without rebuilding the table (its foreign keys forbid that).
        Index(
            "uq_mock_test_attempts_paper_id_customer_id_ranked",
            "paper_id",
            "customer_id",
            "ranked",
            unique=True,
            info={PROBLEM_FIELD: None, PROBLEM_MESSAGE: RANKED_ONCE},
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    # The purchase's customer, copied here so that the card lists need no join.
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    test_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[CardStatus] = mapped_column(string_enum(CardStatus), default=CardStatus.AVAILABLE)
    # The paper version fixed when the card started; scoring, review and analysis read it alone.
    paper_id: Mapped[int | None] = mapped_column(ForeignKey("papers.id"), index=True)
    # Before papers: the question ids and answers of the card (kept for a downgrade).
    question_ids: Mapped[list[int] | None] = mapped_column(JSON)
    question_count: Mapped[int | None] = mapped_column(Integer)
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    correct_count: Mapped[int | None] = mapped_column(Integer)
    wrong_count: Mapped[int | None] = mapped_column(Integer)
    unanswered_count: Mapped[int | None] = mapped_column(Integer)
    partial_count: Mapped[int | None] = mapped_column(Integer)
    marks: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    started_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    # Set when the card is scored: seconds from the start to the submission (at most the
    # paper's duration), and TRUE on the customer's first submitted attempt of the paper
    # version (NULL otherwise, and for staff): the rows rank and percentile count.
    time_taken_seconds: Mapped[int | None] = mapped_column(Integer)
    ranked: Mapped[bool | None] = mapped_column(Boolean)

    subject: Mapped[Subject] = relationship(lazy="raise")

    @property
    def subject_name(self) -> str:
        """What `CardSchema` shows of the subject (rows of the card list carry it as a column)."""
        return self.subject.name


# Rank and leaderboard: the ranked rows of one paper version in the ranking's order (marks
# down, then fewer wrong answers, then less time), so that "better than me" is one index range.
Index(
    "ix_mock_test_attempts_ranking",
    MockTestAttempt.paper_id,
    MockTestAttempt.ranked,
    MockTestAttempt.marks.desc(),
    MockTestAttempt.wrong_count,
    MockTestAttempt.time_taken_seconds,
)


# Marks per question: DECIMAL(6, 2), negative for negative marking.
Marks = Numeric(6, 2, asdecimal=True)
# A card's or a paper's total marks.
TotalMarks = Numeric(8, 2, asdecimal=True)


class RegradeAction(enum.StrEnum):
    CORRECT_KEY = "correct_key"
    DROP = "drop"


class Outcome(enum.StrEnum):
    CORRECT = "correct"
    PARTIAL = "partial"
    WRONG = "wrong"
    UNANSWERED = "unanswered"


class ExamPattern(db.Model):
    """A subject's exam pattern (admins set it); a subject without one uses the defaults
    (MOCK_TEST_QUESTION_COUNT questions, MOCK_TEST_DURATION_MINUTES, +1/0/0)."""

    __tablename__ = "exam_patterns"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True)
    questions_per_paper: Mapped[int] = mapped_column(Integer)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    single_correct: Mapped[Decimal] = mapped_column(Marks)
    single_wrong: Mapped[Decimal] = mapped_column(Marks)
    single_unanswered: Mapped[Decimal] = mapped_column(Marks)
    multiple_correct: Mapped[Decimal] = mapped_column(Marks)
    multiple_wrong: Mapped[Decimal] = mapped_column(Marks)
    multiple_unanswered: Mapped[Decimal] = mapped_column(Marks)
    # JEE Advanced: this much per correct option chosen when no wrong one is (0: no partial marks).
    multiple_partial: Mapped[Decimal] = mapped_column(Marks)
    numerical_correct: Mapped[Decimal] = mapped_column(Marks)
    numerical_wrong: Mapped[Decimal] = mapped_column(Marks)
    numerical_unanswered: Mapped[Decimal] = mapped_column(Marks)
    updated_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow, onupdate=utcnow)


class Paper(db.Model):
    """Version `version` of paper `test_number` of a subject, frozen when it was composed:
    its question versions, their order and their marking."""

    __tablename__ = "papers"
    __table_args__ = (
        unique_constraint(
            "subject_id", "test_number", "version", field=None, message="This version of the paper exists already."
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: InnoDB's check would take a shared lock on the subject's row, and a
    # first start would wait for an admin editing the subject. Papers exist only for bought
    # subjects, which cannot be deleted.
    subject_id: Mapped[int] = mapped_column(Integer)
    test_number: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    question_count: Mapped[int] = mapped_column(Integer)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    max_marks: Mapped[Decimal] = mapped_column(TotalMarks)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)


class PaperQuestion(db.Model):
    """Question `position` of a paper: the version it froze and its marking. The key is
    copied here from the version, so that a regrade corrects this paper's key alone."""

    __tablename__ = "paper_questions"

    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    question_version_id: Mapped[int] = mapped_column(ForeignKey("question_versions.id"), index=True)
    type: Mapped[QuestionType] = mapped_column(string_enum(QuestionType))
    option_count: Mapped[int] = mapped_column(Integer)
    # single and multiple: bit i set when option i is right.
    key_mask: Mapped[int | None] = mapped_column(Integer)
    key_answer: Mapped[Decimal | None] = mapped_column(NumericAnswer)
    key_tolerance: Mapped[Decimal | None] = mapped_column(NumericAnswer)
    marks_correct: Mapped[Decimal] = mapped_column(Marks)
    marks_wrong: Mapped[Decimal] = mapped_column(Marks)
    marks_unanswered: Mapped[Decimal] = mapped_column(Marks)
    marks_partial: Mapped[Decimal] = mapped_column(Marks)
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)

    version: Mapped[QuestionVersion] = relationship(lazy="raise")


class AttemptAnswer(db.Model):
    """A card's answer to question `position` of its paper, and its marks once scored."""

    __tablename__ = "attempt_answers"

    card_id: Mapped[int] = mapped_column(ForeignKey("mock_test_attempts.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    choice_mask: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[Decimal | None] = mapped_column(NumericAnswer)
    marked_for_review: Mapped[bool] = mapped_column(Boolean, default=False)
    time_spent_seconds: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[Outcome | None] = mapped_column(string_enum(Outcome))
    marks: Mapped[Decimal | None] = mapped_column(Marks)


class PaperRegrade(db.Model):
    """An admin's regrade of one question of a paper version: who, what, when, and what it
    did to the submitted cards. The keys are in the question type's shape (`new_key` is
    null for a drop)."""

    __tablename__ = "paper_regrades"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    action: Mapped[RegradeAction] = mapped_column(string_enum(RegradeAction))
    old_key: Mapped[dict[str, Any]] = mapped_column(JSON)
    new_key: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    attempts_rescored: Mapped[int] = mapped_column(Integer)
    scores_changed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
