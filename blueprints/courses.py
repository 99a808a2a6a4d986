"""The catalog: courses, subjects and bundles."""

from __future__ import annotations

from shared.openapi import Blueprint

blp = Blueprint(
    "courses", __name__, url_prefix="/api/courses", description="The catalog: courses, subjects and bundles"
)
