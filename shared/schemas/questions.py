"""The question bank: what admins send and read."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import marshmallow as ma

from shared.models import Difficulty, QuestionType
from shared.models.questions import MAX_DECIMAL_PLACES, answer_key_problems
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import Integer
from shared.schemas.pagination import PageQuerySchema, page_schema

MAX_OPTIONS, MIN_OPTIONS = 6, 2
MAX_IMPORT = 500


def within(low: int, high: int) -> Callable[[Decimal], None]:
    """A range check for a Decimal field dumped as a string (a `Range` would be documented
    with string bounds, which OpenAPI refuses for a number)."""

    def check(value: Decimal) -> None:
        if not low <= value <= high:
            raise ma.ValidationError(f"Must be from {low} to {high}.")

    return check


# |answer| below 10^14 with 6 decimals: DECIMAL(20, 6).
ANSWER_RANGE = within(-(10**14) + 1, 10**14 - 1)


def numeric_answer(**kwargs: Any) -> ma.fields.Decimal:
    """A decimal sent and returned as a string ("3.14"), at most 6 decimal places."""
    return ma.fields.Decimal(places=MAX_DECIMAL_PLACES, as_string=True, allow_nan=False, **kwargs)


class QuestionInputSchema(Schema):
    type = ma.fields.Enum(
        QuestionType,
        by_value=True,
        load_default=QuestionType.SINGLE,
        metadata={"description": "single: one correct option; multiple: a set of them; numerical: a decimal answer"},
    )
    text = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=5000))
    options = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=1000)),
        load_default=list,
        validate=ma.validate.Length(max=MAX_OPTIONS),
        metadata={"description": "2 to 6 options (single, multiple); none for numerical"},
    )
    correct_option = Integer(
        allow_none=True,
        validate=ma.validate.Range(min=0),
        metadata={"description": "single: the 0-based index of the correct option"},
    )
    correct_options = ma.fields.List(
        Integer(validate=ma.validate.Range(min=0, max=MAX_OPTIONS - 1)),
        allow_none=True,
        validate=ma.validate.Length(max=MAX_OPTIONS),
        metadata={"description": "multiple: the 0-based indexes of every correct option"},
    )
    answer = numeric_answer(
        allow_none=True, validate=ANSWER_RANGE, metadata={"description": 'numerical: the answer, e.g. "3.14"'}
    )
    tolerance = numeric_answer(
        allow_none=True,
        validate=within(0, 10**6),
        metadata={"description": "numerical: accepted distance from the answer (default 0)"},
    )
    decimal_places = Integer(
        allow_none=True,
        validate=ma.validate.Range(min=0, max=MAX_DECIMAL_PLACES),
        metadata={"description": "numerical: instead of a tolerance, right to this many decimal places"},
    )
    explanation = ma.fields.String(load_default="", validate=ma.validate.Length(max=5000))
    difficulty = ma.fields.Enum(Difficulty, by_value=True, load_default=Difficulty.MEDIUM)
    is_active = ma.fields.Boolean(load_default=True)

    @ma.validates_schema
    def answer_key_fits(self, data: dict[str, Any], **kwargs: Any) -> None:
        if self.partial:
            return  # the service checks the question as the PATCH leaves it
        problems = answer_key_problems(data)
        if problems:
            raise ma.ValidationError(problems)


class QuestionUpdateSchema(QuestionInputSchema):
    """The same fields, all optional: load it with `partial=True` (no defaults filled in)."""


class QuestionImportSchema(Schema):
    questions = ma.fields.List(
        ma.fields.Nested(QuestionInputSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_IMPORT),
        metadata={"description": f"1 to {MAX_IMPORT} questions; one bad question rejects the whole import"},
    )


class QuestionAdminSchema(ResponseSchema):
    id = ma.fields.Integer()
    subject_id = ma.fields.Integer()
    type = ma.fields.Enum(QuestionType, by_value=True)
    version = ma.fields.Integer(metadata={"description": "moves on when a question a paper used is edited"})
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    correct_option = ma.fields.Integer(allow_none=True)
    correct_options = ma.fields.List(ma.fields.Integer(), allow_none=True)
    answer = numeric_answer(allow_none=True)
    tolerance = numeric_answer(allow_none=True)
    decimal_places = ma.fields.Integer(allow_none=True)
    explanation = ma.fields.String()
    difficulty = ma.fields.Enum(Difficulty, by_value=True)
    is_active = ma.fields.Boolean()


class QuestionListQuerySchema(PageQuerySchema):
    include_inactive = ma.fields.Boolean(load_default=False)


class ImportResultSchema(ResponseSchema):
    imported = ma.fields.Integer(required=True)
    questions = ma.fields.List(ma.fields.Nested(QuestionAdminSchema))


QuestionPageSchema = page_schema(QuestionAdminSchema, "QuestionPage")
