"""Test cards: the card list, papers, answers, reviews and progress."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from shared.models import CardStatus
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import Id, Integer, Percent, UtcDateTime
from shared.schemas.pagination import PageQuerySchema, page_schema
from shared.schemas.questions import MAX_OPTIONS


def answers_field(**kwargs: Any) -> ma.fields.Dict:
    """question id -> chosen option index; null clears an answer."""
    return ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Regexp(r"^[1-9][0-9]{0,9}$", error="Not a question id.")),
        values=Integer(allow_none=True, validate=ma.validate.Range(min=0, max=MAX_OPTIONS - 1)),
        validate=ma.validate.Length(max=200),
        metadata={"description": "question id -> chosen option index (null clears the answer)"},
        **kwargs,
    )


class CardSchema(ResponseSchema):
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


class PaperQuestionSchema(ResponseSchema):
    """A question as the student sees it while taking the test."""

    id = ma.fields.Integer()
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())


class PaperSchema(ResponseSchema):
    card = ma.fields.Nested(CardSchema)
    questions = ma.fields.List(ma.fields.Nested(PaperQuestionSchema))
    answers = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    seconds_left = ma.fields.Integer()


class AnswersSchema(Schema):
    answers = answers_field(required=True)


class SubmitSchema(Schema):
    answers = answers_field(load_default=dict)


class ReviewQuestionSchema(ResponseSchema):
    id = ma.fields.Integer()
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    your_answer = ma.fields.Integer(allow_none=True)
    correct_option = ma.fields.Integer()
    is_correct = ma.fields.Boolean()
    explanation = ma.fields.String()


class ReviewSchema(ResponseSchema):
    card = ma.fields.Nested(CardSchema)
    questions = ma.fields.List(ma.fields.Nested(ReviewQuestionSchema))


class SubjectProgressSchema(ResponseSchema):
    subject_id = ma.fields.Integer()
    subject_name = ma.fields.String()
    course_id = ma.fields.Integer()
    cards = ma.fields.Integer()
    completed = ma.fields.Integer(metadata={"description": "Submitted cards (completed or expired)"})
    average_score = Percent(allow_none=True)
    best_score = Percent(allow_none=True)
    last_activity = UtcDateTime(allow_none=True)


class ProgressSchema(ResponseSchema):
    subjects = ma.fields.List(ma.fields.Nested(SubjectProgressSchema))


CardPageSchema = page_schema(CardSchema, "CardPage")
