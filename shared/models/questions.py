"""The question bank of a subject, and the frozen versions papers are built from."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, Numeric, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.base import PreciseDateTime, Timestamps, string_enum, unique_constraint, utcnow

# A numerical answer, its tolerance: DECIMAL(20, 6) everywhere, Decimal in Python.
NumericAnswer = Numeric(20, 6, asdecimal=True)
MAX_DECIMAL_PLACES = 6


class Difficulty(enum.StrEnum):
    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"


class QuestionType(enum.StrEnum):
    SINGLE = "single"  # one correct option
    MULTIPLE = "multiple"  # a set of correct options
    NUMERICAL = "numerical"  # a decimal answer, within a tolerance


def tolerance_of_places(places: int) -> Decimal:
    """Right to `places` decimal places: within half a unit of the last place."""
    return Decimal(5) / Decimal(10) ** (places + 1)


def answer_key_problems(data: dict[str, Any]) -> dict[str, list[str]]:
    """What is wrong with a question's answer key, field by field (empty when it is right).

    One rule for the schema (a new question) and the service (a question after a PATCH).
    """
    kind = data.get("type") or QuestionType.SINGLE
    options = data.get("options") or []
    problems: dict[str, list[str]] = {}
    if kind is QuestionType.NUMERICAL:
        if options:
            problems["options"] = ["A numerical question has no options."]
        if data.get("answer") is None:
            problems["answer"] = ["A numerical question needs its answer."]
        if data.get("tolerance") is not None and data.get("decimal_places") is not None:
            problems["tolerance"] = ["Give a tolerance or a number of decimal places, not both."]
        return problems
    if len(options) < 2:
        problems["options"] = ["A choice question needs 2 to 6 options."]
        return problems
    top = len(options) - 1
    if kind is QuestionType.SINGLE:
        correct = data.get("correct_option")
        if correct is None:
            problems["correct_option"] = ["A single-choice question needs its correct option."]
        elif correct > top:
            problems["correct_option"] = [f"Must be an index of options (0 to {top})."]
    else:
        chosen = data.get("correct_options")
        if not chosen:
            problems["correct_options"] = ["A multiple-choice question needs at least one correct option."]
        elif len(set(chosen)) != len(chosen):
            problems["correct_options"] = ["Each option at most once."]
        elif max(chosen) > top:
            problems["correct_options"] = [f"Must be indexes of options (0 to {top})."]
    return problems


class QuestionContent:
    """What a question says and its key: the bank's current text, and each frozen version."""

    type: Mapped[QuestionType] = mapped_column(string_enum(QuestionType), default=QuestionType.SINGLE)
    text: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON)
    correct_option: Mapped[int | None] = mapped_column(Integer)
    correct_options: Mapped[list[int] | None] = mapped_column(JSON)
    answer: Mapped[Decimal | None] = mapped_column(NumericAnswer)
    tolerance: Mapped[Decimal | None] = mapped_column(NumericAnswer)
    decimal_places: Mapped[int | None] = mapped_column(Integer)
    explanation: Mapped[str] = mapped_column(Text, default="")
    difficulty: Mapped[Difficulty] = mapped_column(string_enum(Difficulty), default=Difficulty.MEDIUM)


class Question(QuestionContent, Timestamps, db.Model):
    """The bank's current text of a question. A version of it that a paper used is frozen
    in `question_versions`; editing such a question moves it to the next version."""

    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class QuestionVersion(QuestionContent, db.Model):
    """An immutable version of a question, as a paper uses it."""

    __tablename__ = "question_versions"
    __table_args__ = (
        unique_constraint("question_id", "version", field=None, message="This question version already exists."),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)


# The columns a version copies from its question.
VERSIONED_COLUMNS = (
    "type",
    "text",
    "options",
    "correct_option",
    "correct_options",
    "answer",
    "tolerance",
    "decimal_places",
    "explanation",
    "difficulty",
)
