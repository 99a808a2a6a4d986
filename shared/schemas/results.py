"""Results: a submitted test's analysis, a paper's leaderboard, bookmarks."""

from __future__ import annotations

import marshmallow as ma

from shared.models import Difficulty, QuestionType
from shared.models.cards import Outcome
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.cards import CardSchema, PaperInfoSchema, marks_field
from shared.schemas.fields import Integer, Percent, UtcDateTime
from shared.schemas.pagination import PageQuerySchema, page_schema

MAX_LEADERBOARD = 100


class QuestionTimeSchema(ResponseSchema):
    id = ma.fields.Integer()
    position = ma.fields.Integer()
    type = ma.fields.Enum(QuestionType, by_value=True)
    difficulty = ma.fields.Enum(Difficulty, by_value=True)
    outcome = ma.fields.Enum(Outcome, by_value=True)
    marks = marks_field()
    max_marks = marks_field()
    time_spent_seconds = ma.fields.Integer()
    median_time_seconds = ma.fields.Decimal(
        as_string=True,
        places=1,
        allow_none=True,
        metadata={
            "description": "median time of the paper version's participants on it; null while none",
            "example": "42.5",
        },
    )


class DifficultyMarksSchema(ResponseSchema):
    difficulty = ma.fields.Enum(Difficulty, by_value=True)
    questions = ma.fields.Integer()
    marks = marks_field()
    max_marks = marks_field()
    correct = ma.fields.Integer()
    partial = ma.fields.Integer()
    wrong = ma.fields.Integer()
    unanswered = ma.fields.Integer()


class AnalysisSchema(ResponseSchema):
    card = ma.fields.Nested(CardSchema)
    paper = ma.fields.Nested(PaperInfoSchema)
    marks = marks_field()
    max_marks = marks_field()
    percent = Percent(metadata={"description": "marks / max_marks * 100"})
    correct = ma.fields.Integer()
    partial = ma.fields.Integer()
    wrong = ma.fields.Integer()
    unanswered = ma.fields.Integer()
    attempted = ma.fields.Integer(metadata={"description": "correct + partial + wrong"})
    accuracy = Percent(allow_none=True, metadata={"description": "correct / attempted * 100; null when none"})
    time_taken_seconds = ma.fields.Integer()
    ranked = ma.fields.Boolean(
        metadata={
            "description": "false for a later attempt of the paper and for staff: rank and percentile then "
            "say where this card would stand among the participants"
        }
    )
    rank = ma.fields.Integer()
    percentile = Percent(
        allow_none=True,
        metadata={"description": "participants with marks <= yours / participants * 100; null while none"},
    )
    participants = ma.fields.Integer(metadata={"description": "first attempts of this paper version, staff excluded"})
    by_difficulty = ma.fields.List(ma.fields.Nested(DifficultyMarksSchema))
    questions = ma.fields.List(ma.fields.Nested(QuestionTimeSchema))


class LeaderboardQuerySchema(Schema):
    limit = Integer(strict=False, load_default=10, validate=ma.validate.Range(min=1, max=MAX_LEADERBOARD))


class LeaderboardEntrySchema(ResponseSchema):
    rank = ma.fields.Integer()
    name = ma.fields.String(metadata={"description": 'masked ("Pri*** S."), except your own', "example": "Pri*** S."})
    marks = marks_field()
    percent = Percent()
    wrong_count = ma.fields.Integer()
    time_taken_seconds = ma.fields.Integer()
    you = ma.fields.Boolean()


class LeaderboardSchema(ResponseSchema):
    paper = ma.fields.Nested(PaperInfoSchema)
    participants = ma.fields.Integer()
    entries = ma.fields.List(ma.fields.Nested(LeaderboardEntrySchema))
    you = ma.fields.Nested(LeaderboardEntrySchema, allow_none=True, metadata={"description": "null for admins"})
    percentile = Percent(allow_none=True)
    ranked = ma.fields.Boolean(metadata={"description": "whether your attempt is among the ranked ones"})


class BookmarkSchema(ResponseSchema):
    """A bookmarked question as the submitted paper showed it, with its solution."""

    id = ma.fields.Integer(metadata={"description": "the question's id"})
    paper_id = ma.fields.Integer()
    position = ma.fields.Integer()
    type = ma.fields.Enum(QuestionType, by_value=True)
    difficulty = ma.fields.Enum(Difficulty, by_value=True)
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    correct_option = ma.fields.Integer(allow_none=True)
    correct_options = ma.fields.List(ma.fields.Integer(), allow_none=True)
    answer = ma.fields.Decimal(as_string=True, allow_none=True)
    tolerance = ma.fields.Decimal(as_string=True, allow_none=True)
    explanation = ma.fields.String()
    dropped = ma.fields.Boolean()
    created_at = UtcDateTime()


BookmarkPageSchema = page_schema(BookmarkSchema, "BookmarkPage")
BookmarkListQuerySchema = PageQuerySchema
