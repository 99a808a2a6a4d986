"""Shapes of the question bank, test cards, papers, reviews and progress.

The correct option and the explanation appear only in QuestionAdminSchema (admins) and
ReviewQuestionSchema (after submission): never in what a student sees before.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from shared.models import CardStatus, Difficulty
from shared.schemas.base import Schema
from shared.schemas.fields import Id, Integer, Percent, UtcDateTime
from shared.schemas.pagination import PageQuerySchema, page_schema

MAX_OPTIONS, MIN_OPTIONS = 6, 2
MAX_IMPORT = 500


def answers_field(**kwargs: Any) -> ma.fields.Dict:
    """question id -> chosen option index; null clears an answer."""
    return ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Regexp(r"^[1-9][0-9]{0,9}$", error="Not a question id.")),
        values=Integer(allow_none=True, validate=ma.validate.Range(min=0, max=MAX_OPTIONS - 1)),
        validate=ma.validate.Length(max=200),
        metadata={"description": "question id -> chosen option index (null clears the answer)"},
        **kwargs,
    )


class QuestionInputSchema(Schema):
    text = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=5000))
    options = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=1000)),
        required=True,
        validate=ma.validate.Length(min=MIN_OPTIONS, max=MAX_OPTIONS),
    )
    correct_option = Integer(
        required=True,
        validate=ma.validate.Range(min=0),
        metadata={"description": "0-based index into options"},
    )
    explanation = ma.fields.String(load_default="", validate=ma.validate.Length(max=5000))
    difficulty = ma.fields.Enum(Difficulty, by_value=True, load_default=Difficulty.MEDIUM)
    is_active = ma.fields.Boolean(load_default=True)

    @ma.validates_schema
    def correct_option_exists(self, data: dict[str, Any], **kwargs: Any) -> None:
        options, correct = data.get("options"), data.get("correct_option")
        if options is not None and correct is not None and correct >= len(options):
            raise ma.ValidationError(f"Must be an index of options (0 to {len(options) - 1}).", "correct_option")


class QuestionUpdateSchema(QuestionInputSchema):
    """The same fields, all optional: load it with `partial=True` (no defaults filled in)."""


class QuestionImportSchema(Schema):
    questions = ma.fields.List(
        ma.fields.Nested(QuestionInputSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_IMPORT),
        metadata={"description": f"1 to {MAX_IMPORT} questions; one bad question rejects the whole import"},
    )


class QuestionAdminSchema(Schema):
    id = ma.fields.Integer()
    subject_id = ma.fields.Integer()
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    correct_option = ma.fields.Integer()
    explanation = ma.fields.String()
    difficulty = ma.fields.Enum(Difficulty, by_value=True)
    is_active = ma.fields.Boolean()


class QuestionListQuerySchema(PageQuerySchema):
    include_inactive = ma.fields.Boolean(load_default=False)


class ImportResultSchema(Schema):
    imported = ma.fields.Integer(required=True)
    questions = ma.fields.List(ma.fields.Nested(QuestionAdminSchema))


class CardSchema(Schema):
    id = ma.fields.Integer()
    purchase_id = ma.fields.Integer()
    subject_id = ma.fields.Integer()
    subject_name = ma.fields.String(attribute="subject.name")
    test_number = ma.fields.Integer()
    status = ma.fields.Enum(CardStatus, by_value=True)
    question_count = ma.fields.Integer(allow_none=True)
    correct_count = ma.fields.Integer(allow_none=True)
    score = Percent(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    deadline_at = UtcDateTime(allow_none=True)
    submitted_at = UtcDateTime(allow_none=True)


class CardListQuerySchema(PageQuerySchema):
    subject_id = Id(strict=False)
    status = ma.fields.Enum(CardStatus, by_value=True)


class PaperQuestionSchema(Schema):
    """A question as the student sees it while taking the test."""

    id = ma.fields.Integer()
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())


class PaperSchema(Schema):
    card = ma.fields.Nested(CardSchema)
    questions = ma.fields.List(ma.fields.Nested(PaperQuestionSchema))
    answers = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    seconds_left = ma.fields.Integer()


class AnswersSchema(Schema):
    answers = answers_field(required=True)


class SubmitSchema(Schema):
    answers = answers_field(load_default=dict)


class ReviewQuestionSchema(Schema):
    id = ma.fields.Integer()
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    your_answer = ma.fields.Integer(allow_none=True)
    correct_option = ma.fields.Integer()
    is_correct = ma.fields.Boolean()
    explanation = ma.fields.String()


class ReviewSchema(Schema):
    card = ma.fields.Nested(CardSchema)
    questions = ma.fields.List(ma.fields.Nested(ReviewQuestionSchema))


class SubjectProgressSchema(Schema):
    subject_id = ma.fields.Integer()
    subject_name = ma.fields.String()
    course_id = ma.fields.Integer()
    cards = ma.fields.Integer()
    completed = ma.fields.Integer(metadata={"description": "Submitted cards (completed or expired)"})
    average_score = Percent(allow_none=True)
    best_score = Percent(allow_none=True)
    last_activity = UtcDateTime(allow_none=True)


class ProgressSchema(Schema):
    subjects = ma.fields.List(ma.fields.Nested(SubjectProgressSchema))


CardPageSchema = page_schema(CardSchema, "CardPage")
QuestionPageSchema = page_schema(QuestionAdminSchema, "QuestionPage")
