"""The question bank: admin management, all-or-nothing bulk import, and the versions papers freeze."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, insert, select
from sqlalchemy.orm import Session

from shared.errors import NotFound, ValidationFailed
from shared.extensions import db
from shared.models import Question, QuestionType, QuestionVersion, Subject
from shared.models.questions import VERSIONED_COLUMNS, answer_key_problems, tolerance_of_places
from shared.services.base import Page, paginate, transactional
from shared.services.catalog import SUBJECT_NOT_FOUND

QUESTION_NOT_FOUND = "There is no question with this id in this subject."
QUESTION_VERSION_UNIQUE = next(
    constraint for constraint in QuestionVersion.__table__.constraints if constraint.info.get("problem_message")
)
KEY_FIELDS = ("options", "correct_option", "correct_options", "answer", "tolerance", "decimal_places")


def normalised(data: dict[str, Any]) -> dict[str, Any]:
    """A checked question's fields as stored: each type keeps only its own key."""
    kind = data.get("type") or QuestionType.SINGLE
    row = {name: value for name, value in data.items() if name not in KEY_FIELDS}
    row.update(options=list(data.get("options") or []), correct_option=None, correct_options=None)
    row.update(answer=None, tolerance=None, decimal_places=None)
    if kind is QuestionType.SINGLE:
        row.update(correct_option=data["correct_option"], correct_options=[data["correct_option"]])
    elif kind is QuestionType.MULTIPLE:
        row["correct_options"] = sorted(data["correct_options"])
    else:
        places = data.get("decimal_places")
        row.update(answer=data["answer"], decimal_places=places)
        row["tolerance"] = tolerance_of_places(places) if places is not None else data.get("tolerance") or 0
    return row


def freeze_versions(session: Session, question_ids: list[int]) -> dict[int, int]:
    """In the caller's transaction: the version id of each question as it is now, frozen.

    Two statements whatever the count: one INSERT ... SELECT of the versions not yet
    frozen, one read of the ids. Once frozen, a version is never changed.
    """
    if not question_ids:
        return {}
    version = QuestionVersion.__table__
    current = and_(version.c.question_id == Question.id, version.c.version == Question.version)
    columns = ["question_id", "version", *VERSIONED_COLUMNS, "created_at"]
    rows = select(
        Question.id, Question.version, *(getattr(Question, name) for name in VERSIONED_COLUMNS), Question.updated_at
    ).where(Question.id.in_(question_ids), ~select(version.c.id).where(current).exists())
    session.execute(insert(version).from_select(columns, rows))
    # A locking read sees the versions a concurrent freeze committed, as the INSERT's did
    # (a plain read would see this transaction's older snapshot on MariaDB).
    return dict(
        session.execute(
            select(Question.id, version.c.id)
            .join(version, current)
            .where(Question.id.in_(question_ids))
            .with_for_update(read=True)
        ).all()
    )


class QuestionService:
    @staticmethod
    def list_questions(subject_id: int, page: int, per_page: int, include_inactive: bool) -> Page[Question]:
        QuestionService._require_subject(subject_id)
        statement = select(Question).where(Question.subject_id == subject_id).order_by(Question.id)
        if not include_inactive:
            statement = statement.where(Question.is_active.is_(True))
        return paginate(statement, page, per_page)

    @staticmethod
    @transactional
    def create_question(subject_id: int, data: dict[str, Any]) -> Question:
        QuestionService._require_subject(subject_id)
        question = Question(subject_id=subject_id, **normalised(data))
        db.session.add(question)
        db.session.flush()
        return question

    @staticmethod
    @transactional
    def import_questions(subject_id: int, items: list[dict[str, Any]]) -> list[Question]:
        """Every question or none (the schema has already checked each one)."""
        QuestionService._require_subject(subject_id)
        questions = [Question(subject_id=subject_id, **normalised(item)) for item in items]
        db.session.add_all(questions)
        db.session.flush()
        return questions

    @staticmethod
    @transactional
    def update_question(subject_id: int, question_id: int, data: dict[str, Any]) -> Question:
        """Change a question. A version some paper froze is never changed: the question
        moves to its next version, and the papers keep theirs."""
        question = QuestionService._require_question(subject_id, question_id, lock=True)
        merged = {name: getattr(question, name) for name in (*VERSIONED_COLUMNS, "is_active")}
        if "decimal_places" in data:
            merged["tolerance"] = None
        elif "tolerance" in data:
            merged["decimal_places"] = None
        merged.update(data)
        problems = answer_key_problems(merged)
        if problems:
            raise ValidationFailed("This change leaves the question without a valid answer key.", errors=problems)
        frozen = db.session.execute(
            select(QuestionVersion.id).where(
                QuestionVersion.question_id == question.id, QuestionVersion.version == question.version
            )
        ).first()
        changes = {name: value for name, value in normalised(merged).items() if getattr(question, name) != value}
        if frozen is not None and set(changes) - {"is_active"}:
            question.version += 1
        for name, value in changes.items():
            setattr(question, name, value)
        db.session.flush()
        return question

    @staticmethod
    @transactional
    def deactivate_question(subject_id: int, question_id: int) -> None:
        """Papers already composed keep the question; new papers no longer draw it."""
        QuestionService._require_question(subject_id, question_id).is_active = False

    @staticmethod
    def _require_subject(subject_id: int) -> None:
        if db.session.execute(select(Subject.id).where(Subject.id == subject_id)).first() is None:
            raise NotFound(SUBJECT_NOT_FOUND)

    @staticmethod
    def _require_question(subject_id: int, question_id: int, *, lock: bool = False) -> Question:
        statement = select(Question).where(Question.id == question_id)
        if lock:
            # A paper freezing this question's version takes its turn before or after the edit.
            statement = statement.with_for_update()
        question = db.session.execute(statement).scalar_one_or_none()
        if question is None or question.subject_id != subject_id:
            raise NotFound(QUESTION_NOT_FOUND)
        return question
