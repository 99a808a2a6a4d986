"""Test cards: start, answer, submit, review."""

from __future__ import annotations

from shared.openapi import Blueprint

blp = Blueprint(
    "mock_tests",
    __name__,
    url_prefix="/api/mock-tests",
    description="Test cards: start, answer, submit, review",
)
