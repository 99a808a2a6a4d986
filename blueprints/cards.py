"""Test cards: list, start, answer, submit, review, progress; exam patterns and papers."""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from flask_jwt_extended import current_user

from shared.models import ExamPattern, MockTestAttempt, Paper, PaperRegrade
from shared.openapi import Blueprint
from shared.schemas.cards import (
    CARD_ITEMS,
    SHEET,
    AnswersSchema,
    CardListQuerySchema,
    CardPageSchema,
    CardSchema,
    PaperInfoSchema,
    PaperListSchema,
    PaperSchema,
    PatternResultSchema,
    PatternSchema,
    ProgressSchema,
    RegradeInputSchema,
    RegradeListSchema,
    RegradeSchema,
    ReviewSchema,
    SubmitSchema,
)
from shared.schemas.lean import json_response, page_response
from shared.security import admin_required, login_required
from shared.services.cards import MockTestService, PaperService, Review

blp = Blueprint("mock_tests", __name__, url_prefix="/api/mock-tests", description="Taking the mock tests")
papers = Blueprint("papers", __name__, url_prefix="/api", description="Exam patterns and papers")


@blp.route("")
@login_required
@blp.arguments(CardListQuerySchema, location="query")
@blp.response(200, CardPageSchema)  # documents the answer, which the view dumps itself
@blp.problems(401, 403, 422)
def list_cards(query: dict[str, Any]) -> Response:
    """The caller's test cards across purchases, by subject then test number."""
    found = MockTestService.list_cards(
        current_user, query["page"], query["per_page"], query.get("subject_id"), query.get("status")
    )
    return page_response(found, CARD_ITEMS)


@blp.route("/progress")
@login_required
@blp.response(200, ProgressSchema)
@blp.problems(401, 403)
def get_progress() -> dict[str, Any]:
    """Per owned subject: cards, submitted, average and best score, last activity."""
    return {"subjects": MockTestService.progress(current_user)}


@blp.route("/<id:card_id>")
@login_required
@blp.response(200, CardSchema)
@blp.problems(401, 403, 404)
def get_card(card_id: int) -> MockTestAttempt:
    """One card (another customer's is a 404; admins may read any)."""
    return MockTestService.get_card(current_user, card_id)


@blp.route("/<id:card_id>/start", methods=["POST"])
@login_required
@blp.response(200, PaperSchema)  # documents the answer, which the view dumps itself
@blp.problems(401, 403, 404, 409)
def start_card(card_id: int) -> Response:
    """Start the test (or resume it): its questions without the answers, the deadline.

    409 when the subject has no questions yet, or the test was submitted.
    """
    return json_response(SHEET.one(MockTestService.start(current_user, card_id)))


PREFER_MINIMAL = {
    "in": "header",
    "name": "Prefer",
    "required": False,
    "schema": {"type": "string", "example": "return=minimal"},
    "description": "`return=minimal`: answer 204 without the sheet (RFC 7240)",
}


def wants_minimal_return() -> bool:
    """Whether the request's `Prefer` header (RFC 7240) holds `return=minimal`."""
    preferences = ",".join(request.headers.getlist("Prefer")).split(",")
    return any(p.split(";")[0].strip().replace(" ", "").lower() == "return=minimal" for p in preferences)


@blp.route("/<id:card_id>/answers", methods=["PUT"])
@login_required
@blp.arguments(AnswersSchema)
@blp.response(200, PaperSchema, description="The sheet as now saved")
@blp.alt_response(
    204,
    success=True,
    description="Saved; asked with `Prefer: return=minimal` (RFC 7240), which the answer's "
    "`Preference-Applied` confirms: a client that keeps its own copy saves without the paper sent back",
)
@blp.problems(401, 403, 404, 409, 422)
@blp.doc(parameters=[PREFER_MINIMAL])
def save_answers(data: dict[str, Any], card_id: int) -> Response:
    """Save progress: `{answers: {question_id: answer}}` in each question type's shape.

    An option index (single), a list of option indexes (multiple), a value string
    (numerical), null to clear it, or `{answer?, marked_for_review?, time_spent_seconds?}`.
    """
    if not wants_minimal_return():
        return json_response(SHEET.one(MockTestService.save_answers(current_user, card_id, data["answers"])))
    MockTestService.save_answers(current_user, card_id, data["answers"], minimal=True)
    return Response(status=204, headers={"Preference-Applied": "return=minimal"})


@blp.route("/<id:card_id>/submit", methods=["POST"])
@login_required
@blp.arguments(SubmitSchema)
@blp.response(200, CardSchema)  # documents the answer, which the view dumps itself
@blp.problems(401, 403, 404, 409, 422)
def submit_card(data: dict[str, Any], card_id: int) -> Response:
    """Score the test on the server; a second submit is a 409.

    After the deadline plus MOCK_TEST_GRACE_SECONDS the card becomes `expired` and only
    the answers saved in time count.
    """
    return json_response(CARD_ITEMS.one(MockTestService.submit(current_user, card_id, data["answers"])))


@blp.route("/<id:card_id>/review")
@login_required
@blp.response(200, ReviewSchema)
@blp.problems(401, 403, 404, 409)
def review_card(card_id: int) -> Review:
    """After submission: each question with your answer, the correct option, the explanation."""
    return MockTestService.review(current_user, card_id)


@papers.route("/subjects/<id:subject_id>/pattern")
@admin_required
@papers.response(200, PatternResultSchema)
@papers.problems(401, 403, 404)
def get_pattern(subject_id: int) -> ExamPattern:
    """The subject's exam pattern (the defaults when none was set)."""
    return PaperService.pattern(subject_id)


@papers.route("/subjects/<id:subject_id>/pattern", methods=["PUT"])
@admin_required
@papers.arguments(PatternSchema)
@papers.response(200, PatternResultSchema)
@papers.problems(401, 403, 404, 422)
def set_pattern(data: dict[str, Any], subject_id: int) -> ExamPattern:
    """Set the exam pattern: papers composed from now on follow it; composed papers keep theirs."""
    return PaperService.set_pattern(subject_id, data)


@papers.route("/subjects/<id:subject_id>/papers")
@admin_required
@papers.response(200, PaperListSchema)
@papers.problems(401, 403, 404)
def list_papers(subject_id: int) -> dict[str, Any]:
    """Every composed paper of the subject, each version, by test number."""
    return {"papers": PaperService.list_papers(subject_id)}


@papers.route("/papers/<id:paper_id>/versions", methods=["POST"])
@admin_required
@papers.response(
    201,
    PaperInfoSchema,
    location=lambda paper, **_: url_for("papers.list_papers", subject_id=paper.subject_id),
)
@papers.problems(401, 403, 404, 409)
def publish_version(paper_id: int) -> Paper:
    """Publish a new version of this paper from today's bank and pattern: later starts get
    it; cards already started keep theirs."""
    return PaperService.publish_version(paper_id)


@papers.route("/papers/<id:paper_id>/regrade", methods=["POST"])
@admin_required
@papers.arguments(RegradeInputSchema)
@papers.response(
    201,
    RegradeSchema,
    location=lambda regrade, **_: url_for("papers.list_regrades", paper_id=regrade.paper_id),
)
@papers.problems(401, 403, 404, 409, 422)
def regrade_paper(data: dict[str, Any], paper_id: int) -> PaperRegrade:
    """Correct the key of question `position` of this paper version, or drop it (full marks
    to all), and rescore every submitted card of the paper at once. The bank and the other
    versions of the paper are untouched.

    409 when the key is already that one, or the question was dropped already.
    """
    key = {name: value for name, value in data.items() if name not in ("position", "action")}
    return PaperService.regrade(paper_id, data["position"], data["action"], key, current_user.id)


@papers.route("/papers/<id:paper_id>/regrades")
@admin_required
@papers.response(200, RegradeListSchema)
@papers.problems(401, 403, 404)
def list_regrades(paper_id: int) -> dict[str, Any]:
    """The regrades of this paper version, oldest first."""
    return {"regrades": PaperService.regrades(paper_id)}
