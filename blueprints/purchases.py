"""Buying subjects and bundles."""

from __future__ import annotations

from shared.openapi import Blueprint

blp = Blueprint("purchases", __name__, url_prefix="/api/purchases", description="Buying subjects and bundles")
