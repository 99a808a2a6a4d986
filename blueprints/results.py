"""Results students compare and keep: a test's analysis, a paper's leaderboard, bookmarks."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_jwt_extended import current_user

from shared.openapi import Blueprint
from shared.schemas.results import (
    AnalysisSchema,
    BookmarkListQuerySchema,
    BookmarkPageSchema,
    BookmarkSchema,
    LeaderboardQuerySchema,
    LeaderboardSchema,
)
from shared.security import login_required
from shared.services.base import Page
from shared.services.results import Analysis, BookmarkedQuestion, BookmarkService, Leaderboard, ResultService

blp = Blueprint("results", __name__, url_prefix="/api", description="Analysis, leaderboards and bookmarks")


@blp.route("/mock-tests/<id:card_id>/analysis")
@login_required
@blp.response(200, AnalysisSchema)
@blp.problems(401, 403, 404, 409)
def get_analysis(card_id: int) -> Analysis:
    """After submission (409 before): marks, accuracy, marks per difficulty, time per question
    against the median of the paper version's participants, rank, percentile, participants."""
    return ResultService.analysis(current_user, card_id)


@blp.route("/papers/<id:paper_id>/leaderboard")
@login_required
@blp.arguments(LeaderboardQuerySchema, location="query")
@blp.response(200, LeaderboardSchema)
@blp.problems(401, 403, 404, 422)
def get_leaderboard(query: dict[str, Any], paper_id: int) -> Leaderboard:
    """The top `limit` (10, at most 100) first attempts of this paper version with masked names,
    and your own rank. For admins and for customers who submitted this paper version (403 before)."""
    return ResultService.leaderboard(current_user, paper_id, query["limit"])


@blp.route("/bookmarks")
@login_required
@blp.arguments(BookmarkListQuerySchema, location="query")
@blp.response(200, BookmarkPageSchema)
@blp.problems(401, 403, 422)
def list_bookmarks(query: dict[str, Any]) -> Page[BookmarkedQuestion]:
    """Your bookmarked questions with their solutions, by question id."""
    return BookmarkService.list(current_user, query["page"], query["per_page"])


@blp.route("/bookmarks/<id:question_id>")
@login_required
@blp.response(200, BookmarkSchema)
@blp.problems(401, 403, 404)
def get_bookmark(question_id: int) -> BookmarkedQuestion:
    """One bookmarked question with its solution (404 when it is not bookmarked)."""
    return BookmarkService.get(current_user, question_id)


@blp.route("/bookmarks/<id:question_id>", methods=["PUT"])
@login_required
@blp.response(
    201,
    BookmarkSchema,
    description="Bookmarked now",
    location=lambda bookmark, **_: url_for("results.get_bookmark", question_id=bookmark.id),
)
@blp.alt_response(200, schema=BookmarkSchema, success=True, description="Bookmarked already: nothing changed")
@blp.problems(401, 403, 404)
def put_bookmark(question_id: int) -> tuple[BookmarkedQuestion, int]:
    """Bookmark a question of a paper you submitted (404 for any other question: nothing is
    shown before you submit). It comes back with its solution as your paper showed it."""
    bookmark, created = BookmarkService.put(current_user, question_id)
    return bookmark, 201 if created else 200


@blp.route("/bookmarks/<id:question_id>", methods=["DELETE"])
@login_required
@blp.response(204)
@blp.problems(401, 403, 404)
def delete_bookmark(question_id: int) -> None:
    """Remove a bookmark (404 when the question is not bookmarked)."""
    BookmarkService.delete(current_user, question_id)
