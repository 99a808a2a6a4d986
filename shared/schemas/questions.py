"""The question bank: what admins send and read."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from shared.models import Difficulty
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import Integer
from shared.schemas.pagination import PageQuerySchema, page_schema

MAX_OPTIONS, MIN_OPTIONS = 6, 2
MAX_IMPORT = 500


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


class QuestionAdminSchema(ResponseSchema):
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


class ImportResultSchema(ResponseSchema):
    imported = ma.fields.Integer(required=True)
    questions = ma.fields.List(ma.fields.Nested(QuestionAdminSchema))


QuestionPageSchema = page_schema(QuestionAdminSchema, "QuestionPage")
