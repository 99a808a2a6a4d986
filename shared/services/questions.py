"""The question bank: admin management and all-or-nothing bulk import."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.errors import NotFound, ValidationFailed
from shared.extensions import db
from shared.models import Question, Subject
from shared.services.base import Page, apply_changes, paginate, transactional
from shared.services.catalog import SUBJECT_NOT_FOUND

QUESTION_NOT_FOUND = "There is no question with this id in this subject."


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
        question = Question(subject_id=subject_id, **data)
        db.session.add(question)
        db.session.flush()
        return question

    @staticmethod
    @transactional
    def import_questions(subject_id: int, items: list[dict[str, Any]]) -> list[Question]:
        """Every question or none (the schema has already checked each one)."""
        QuestionService._require_subject(subject_id)
        questions = [Question(subject_id=subject_id, **item) for item in items]
        db.session.add_all(questions)
        db.session.flush()
        return questions

    @staticmethod
    @transactional
    def update_question(subject_id: int, question_id: int, data: dict[str, Any]) -> Question:
        question = QuestionService._require_question(subject_id, question_id)
        options = data.get("options", question.options)
        correct = data.get("correct_option", question.correct_option)
        if correct >= len(options):
            message = f"Must be an index of options (0 to {len(options) - 1})."
            raise ValidationFailed(message, errors={"correct_option": [message]})
        return apply_changes(question, data)

    @staticmethod
    @transactional
    def deactivate_question(subject_id: int, question_id: int) -> None:
        """Papers already started keep the question; new papers no longer draw it."""
        QuestionService._require_question(subject_id, question_id).is_active = False

    @staticmethod
    def _require_subject(subject_id: int) -> None:
        if db.session.execute(select(Subject.id).where(Subject.id == subject_id)).first() is None:
            raise NotFound(SUBJECT_NOT_FOUND)

    @staticmethod
    def _require_question(subject_id: int, question_id: int) -> Question:
        question = db.session.get(Question, question_id)
        if question is None or question.subject_id != subject_id:
            raise NotFound(QUESTION_NOT_FOUND)
        return question
