"""Test cards: the card list, papers, answers, reviews, progress; exam patterns and papers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma

from shared.models import CardStatus, QuestionType
from shared.models.cards import Outcome, RegradeAction
from shared.models.questions import MAX_DECIMAL_PLACES
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import Id, Integer, Marks, Percent, UtcDateTime
from shared.schemas.lean import LeanDump
from shared.schemas.pagination import PageQuerySchema, page_schema
from shared.schemas.questions import ANSWER_RANGE, MAX_OPTIONS, numeric_answer, within

MAX_TIME_SPENT = 24 * 3600
MARKS_RANGE = within(-100, 100)
REGRADE_KEY_FIELDS = ("correct_option", "correct_options", "answer", "tolerance", "decimal_places")


class AnswerEntry(ma.fields.Field):
    """One answer in its question type's shape: an option index (single), a list of
    option indexes (multiple), a value string (numerical), null to clear it; or an object
    `{answer?, marked_for_review?, time_spent_seconds?}`. Loaded as that object."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": "An option index, a list of option indexes, a value string, null, or an object "
        "{{answer, marked_for_review, time_spent_seconds}}."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            unknown = set(value) - {"answer", "marked_for_review", "time_spent_seconds"}
            marked, spent = value.get("marked_for_review"), value.get("time_spent_seconds")
            if unknown or (marked is not None and not isinstance(marked, bool)) or not self._seconds(spent):
                raise self.make_error("invalid")
            entry: dict[str, Any] = {"marked_for_review": marked, "time_spent_seconds": spent}
            if "answer" in value:
                entry["answer"] = self._answer(value["answer"])
            return entry
        return {"answer": self._answer(value)}

    def _answer(self, value: Any) -> Any:
        if value is None or self._index(value):
            return value
        if isinstance(value, list) and len(value) <= MAX_OPTIONS and all(self._index(v) for v in value):
            return value
        if isinstance(value, str) and 0 < len(value) <= 40:
            return value
        raise self.make_error("invalid")

    @staticmethod
    def _index(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_OPTIONS

    @staticmethod
    def _seconds(value: Any) -> bool:
        return value is None or (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIME_SPENT
        )


def answers_field(**kwargs: Any) -> ma.fields.Dict:
    """question id -> answer in its type's shape (null clears it)."""
    return ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Regexp(r"^[1-9][0-9]{0,9}$", error="Not a question id.")),
        values=AnswerEntry(allow_none=True),
        validate=ma.validate.Length(max=200),
        metadata={
            "description": "question id -> answer: an option index (single), a list of option indexes (multiple), "
            'a value string such as "3.14" (numerical), null to clear it; or '
            "{answer?, marked_for_review?, time_spent_seconds?}"
        },
        **kwargs,
    )


class CardSchema(ResponseSchema):
    id = ma.fields.Integer()
    purchase_id = ma.fields.Integer()
    subject_id = ma.fields.Integer()
    subject_name = ma.fields.String()
    test_number = ma.fields.Integer()
    status = ma.fields.Enum(CardStatus, by_value=True)
    paper_id = ma.fields.Integer(allow_none=True, metadata={"description": "the paper version fixed at the start"})
    question_count = ma.fields.Integer(allow_none=True)
    correct_count = ma.fields.Integer(allow_none=True)
    wrong_count = ma.fields.Integer(allow_none=True)
    unanswered_count = ma.fields.Integer(allow_none=True)
    marks = ma.fields.Decimal(as_string=True, places=2, allow_none=True)
    score = Percent(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    deadline_at = UtcDateTime(allow_none=True)
    submitted_at = UtcDateTime(allow_none=True)


class CardListQuerySchema(PageQuerySchema):
    subject_id = Id(strict=False)
    status = ma.fields.Enum(CardStatus, by_value=True)


def marks_field(**kwargs: Any) -> Marks:
    return Marks(**kwargs)


class PaperInfoSchema(ResponseSchema):
    id = ma.fields.Integer()
    subject_id = ma.fields.Integer()
    test_number = ma.fields.Integer()
    version = ma.fields.Integer()
    question_count = ma.fields.Integer()
    duration_minutes = ma.fields.Integer()
    max_marks = marks_field()
    created_at = UtcDateTime()


class PaperQuestionSchema(ResponseSchema):
    """A question as the student sees it while taking the test."""

    id = ma.fields.Integer()
    position = ma.fields.Integer()
    type = ma.fields.Enum(QuestionType, by_value=True)
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    marks_correct = marks_field()
    marks_wrong = marks_field()
    marks_unanswered = marks_field()


class PaperSchema(ResponseSchema):
    card = ma.fields.Nested(CardSchema)
    paper = ma.fields.Nested(PaperInfoSchema)
    questions = ma.fields.List(ma.fields.Nested(PaperQuestionSchema))
    answers = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Raw(), metadata={"description": "question id -> saved answer"}
    )
    marked_for_review = ma.fields.List(ma.fields.Integer())
    time_spent_seconds = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    seconds_left = ma.fields.Integer()


class AnswersSchema(Schema):
    answers = answers_field(required=True)


class SubmitSchema(Schema):
    answers = answers_field(load_default=dict)


class ReviewQuestionSchema(ResponseSchema):
    id = ma.fields.Integer()
    position = ma.fields.Integer()
    type = ma.fields.Enum(QuestionType, by_value=True)
    text = ma.fields.String()
    options = ma.fields.List(ma.fields.String())
    your_answer = ma.fields.Raw(
        allow_none=True,
        metadata={
            "description": "In the question type's shape: an option index (single), option indexes "
            '(multiple), a value string such as "3.14" (numerical); null when unanswered',
            "oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}, {"type": "string"}],
        },
    )
    correct_option = ma.fields.Integer(allow_none=True)
    correct_options = ma.fields.List(ma.fields.Integer(), allow_none=True)
    answer = ma.fields.Decimal(as_string=True, allow_none=True)
    tolerance = ma.fields.Decimal(as_string=True, allow_none=True)
    is_correct = ma.fields.Boolean()
    outcome = ma.fields.Enum(Outcome, by_value=True)
    marks = marks_field()
    explanation = ma.fields.String()
    dropped = ma.fields.Boolean()
    regrade_note = ma.fields.String(
        allow_none=True, metadata={"description": "the last regrade of this question, e.g. dropped: full marks to all"}
    )
    marked_for_review = ma.fields.Boolean()
    time_spent_seconds = ma.fields.Integer()


class RegradeNoteSchema(ResponseSchema):
    """A regrade of the paper as its students see it."""

    position = ma.fields.Integer()
    question_id = ma.fields.Integer()
    action = ma.fields.Enum(RegradeAction, by_value=True)
    regraded_at = UtcDateTime()
    note = ma.fields.String()


class ReviewSchema(ResponseSchema):
    card = ma.fields.Nested(CardSchema)
    paper = ma.fields.Nested(PaperInfoSchema)
    questions = ma.fields.List(ma.fields.Nested(ReviewQuestionSchema))
    regrades = ma.fields.List(
        ma.fields.Nested(RegradeNoteSchema), metadata={"description": "regrades of this paper version, oldest first"}
    )


class SubjectProgressSchema(ResponseSchema):
    subject_id = ma.fields.Integer()
    subject_name = ma.fields.String()
    course_id = ma.fields.Integer()
    cards = ma.fields.Integer()
    completed = ma.fields.Integer(metadata={"description": "Submitted cards (completed or expired)"})
    average_score = Percent(allow_none=True)
    best_score = Percent(allow_none=True)
    average_marks = marks_field(allow_none=True)
    best_marks = marks_field(allow_none=True)
    last_activity = UtcDateTime(allow_none=True)


class ProgressSchema(ResponseSchema):
    subjects = ma.fields.List(ma.fields.Nested(SubjectProgressSchema))


class PatternSchema(Schema):
    """A subject's exam pattern: papers composed from now on follow it."""

    subject_id = ma.fields.Integer(dump_only=True)
    questions_per_paper = Integer(required=True, validate=ma.validate.Range(min=1, max=200))
    duration_minutes = Integer(required=True, validate=ma.validate.Range(min=1, max=600))
    single_correct = marks_field(load_default=Decimal(1), validate=MARKS_RANGE)
    single_wrong = marks_field(load_default=Decimal(0), validate=MARKS_RANGE)
    single_unanswered = marks_field(load_default=Decimal(0), validate=MARKS_RANGE)
    multiple_correct = marks_field(load_default=Decimal(1), validate=MARKS_RANGE)
    multiple_wrong = marks_field(load_default=Decimal(0), validate=MARKS_RANGE)
    multiple_unanswered = marks_field(load_default=Decimal(0), validate=MARKS_RANGE)
    multiple_partial = marks_field(
        load_default=Decimal(0),
        validate=within(0, 100),
        metadata={"description": "per correct option chosen when no wrong one is (JEE Advanced: 1); 0: none"},
    )
    numerical_correct = marks_field(load_default=Decimal(1), validate=MARKS_RANGE)
    numerical_wrong = marks_field(load_default=Decimal(0), validate=MARKS_RANGE)
    numerical_unanswered = marks_field(load_default=Decimal(0), validate=MARKS_RANGE)


class PatternResultSchema(ResponseSchema, PatternSchema):
    """The pattern as the API answers it: every field present."""


class RegradeInputSchema(Schema):
    """Which question of the paper, and what to do: correct its key (in the question type's
    shape) or drop it (full marks to all)."""

    position = Integer(
        required=True,
        validate=ma.validate.Range(min=1, max=200),
        metadata={"description": "the question's position in the paper (1-based), as in the review"},
    )
    action = ma.fields.Enum(
        RegradeAction,
        by_value=True,
        required=True,
        metadata={"description": "correct_key: a new key in the question type's shape; drop: full marks to all"},
    )
    correct_option = Integer(
        validate=ma.validate.Range(min=0, max=MAX_OPTIONS - 1),
        metadata={"description": "single: the 0-based index of the correct option"},
    )
    correct_options = ma.fields.List(
        Integer(validate=ma.validate.Range(min=0, max=MAX_OPTIONS - 1)),
        validate=ma.validate.Length(max=MAX_OPTIONS),
        metadata={"description": "multiple: the 0-based indexes of every correct option"},
    )
    answer = numeric_answer(validate=ANSWER_RANGE, metadata={"description": 'numerical: the answer, e.g. "3.14"'})
    tolerance = numeric_answer(
        validate=within(0, 10**6), metadata={"description": "numerical: accepted distance from the answer (default 0)"}
    )
    decimal_places = Integer(
        validate=ma.validate.Range(min=0, max=MAX_DECIMAL_PLACES),
        metadata={"description": "numerical: instead of a tolerance, right to this many decimal places"},
    )

    @ma.validates_schema
    def key_fits_the_action(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The key's fit to the question's type is the service's to check (it knows the type)."""
        given = [name for name in REGRADE_KEY_FIELDS if name in data]
        if data.get("action") is RegradeAction.DROP and given:
            raise ma.ValidationError({name: ["A drop takes no key."] for name in given})


class RegradeSchema(ResponseSchema):
    """A regrade: who, what, when, and what it did to the submitted cards of the paper."""

    id = ma.fields.Integer()
    paper_id = ma.fields.Integer()
    position = ma.fields.Integer()
    question_id = ma.fields.Integer()
    action = ma.fields.Enum(RegradeAction, by_value=True)
    old_key = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Raw(),
        metadata={
            "description": "the key before, in the type's shape: {correct_option} | {correct_options} | "
            "{answer, tolerance}"
        },
    )
    new_key = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Raw(),
        allow_none=True,
        metadata={"description": "the key after, in the same shape; null for a drop"},
    )
    admin_id = ma.fields.Integer(allow_none=True, metadata={"description": "the admin who regraded"})
    attempts_rescored = ma.fields.Integer(metadata={"description": "submitted cards of the paper rescored"})
    scores_changed = ma.fields.Integer(metadata={"description": "of those, the cards whose marks changed"})
    created_at = UtcDateTime()


class RegradeListSchema(ResponseSchema):
    regrades = ma.fields.List(ma.fields.Nested(RegradeSchema))


class PaperListSchema(ResponseSchema):
    papers = ma.fields.List(ma.fields.Nested(PaperInfoSchema))


CardPageSchema = page_schema(CardSchema, "CardPage")
CARD_ITEMS = LeanDump(CardSchema())
SHEET = LeanDump(PaperSchema())
