"""Registration, login and tokens."""

from __future__ import annotations

from shared.openapi import Blueprint

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Registration, login and tokens")
