"""The question bank of each subject (admins)."""

from __future__ import annotations

from typing import Any

from flask import url_for

from shared.models import Question
from shared.openapi import Blueprint
from shared.schemas.questions import (
    ImportResultSchema,
    QuestionAdminSchema,
    QuestionImportSchema,
    QuestionInputSchema,
    QuestionListQuerySchema,
    QuestionPageSchema,
    QuestionUpdateSchema,
)
from shared.security import admin_required
from shared.services.base import Page
from shared.services.questions import QuestionService

blp = Blueprint("questions", __name__, url_prefix="/api/subjects", description="The question bank (admins)")


@blp.route("/<id:subject_id>/questions")
@admin_required
@blp.arguments(QuestionListQuerySchema, location="query")
@blp.response(200, QuestionPageSchema)
@blp.problems(401, 403, 404, 422)
def list_questions(query: dict[str, Any], subject_id: int) -> Page[Question]:
    return QuestionService.list_questions(subject_id, query["page"], query["per_page"], query["include_inactive"])


@blp.route("/<id:subject_id>/questions", methods=["POST"])
@admin_required
@blp.arguments(QuestionInputSchema)
@blp.response(
    201,
    QuestionAdminSchema,
    location=lambda question, subject_id: url_for(
        "questions.update_question", subject_id=subject_id, question_id=question.id
    ),
)
@blp.problems(401, 403, 404, 422)
def create_question(data: dict[str, Any], subject_id: int) -> Question:
    """Add a question: 2 to 6 options and the 0-based index of the correct one."""
    return QuestionService.create_question(subject_id, data)


@blp.route("/<id:subject_id>/questions/import", methods=["POST"])
@admin_required
@blp.arguments(QuestionImportSchema)
@blp.response(
    201,
    ImportResultSchema,
    location=lambda _result, subject_id: url_for("questions.list_questions", subject_id=subject_id),
)
@blp.problems(401, 403, 404, 422)
def import_questions(data: dict[str, Any], subject_id: int) -> dict[str, Any]:
    """Import a list of questions, all or nothing.

    One bad question rejects the import; `errors` names each problem as
    `questions.<index>.<field>`.
    """
    questions = QuestionService.import_questions(subject_id, data["questions"])
    return {"imported": len(questions), "questions": questions}


@blp.route("/<id:subject_id>/questions/<id:question_id>", methods=["PATCH"])
@admin_required
@blp.arguments(QuestionUpdateSchema(partial=True))
@blp.response(200, QuestionAdminSchema)
@blp.problems(401, 403, 404, 422)
def update_question(data: dict[str, Any], subject_id: int, question_id: int) -> Question:
    """Change a question; tests already started keep the question as it is drawn from the bank."""
    return QuestionService.update_question(subject_id, question_id, data)


@blp.route("/<id:subject_id>/questions/<id:question_id>", methods=["DELETE"])
@admin_required
@blp.response(204)
@blp.problems(401, 403, 404)
def deactivate_question(subject_id: int, question_id: int) -> None:
    """Deactivate a question: new papers stop drawing it; started and finished tests keep it."""
    QuestionService.deactivate_question(subject_id, question_id)
