"""JWT answers in our problem format: every token failure is a 401 problem+json."""

from __future__ import annotations

from typing import Any

from flask import Response

from shared.errors import Unauthorized
from shared.extensions import jwt


def _unauthorized(detail: str) -> Response:
    return Unauthorized(detail).to_response()


def register_jwt_callbacks() -> None:
    @jwt.unauthorized_loader
    def missing_token(reason: str) -> Response:
        return _unauthorized("This request needs an access token in the Authorization: Bearer header.")

    @jwt.invalid_token_loader
    def invalid_token(reason: str) -> Response:
        return _unauthorized("The access token is malformed or its signature is invalid.")

    @jwt.expired_token_loader
    def expired_token(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("The token has expired. Refresh it or log in again.")

    @jwt.revoked_token_loader
    def revoked_token(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("The token has been revoked. Log in again.")

    @jwt.needs_fresh_token_loader
    def stale_token(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("This action needs a fresh login.")

    @jwt.user_lookup_error_loader
    def unknown_user(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("The account of this token no longer exists or is disabled.")
