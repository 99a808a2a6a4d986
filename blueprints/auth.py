"""Registration, login and tokens."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_jwt_extended import current_user, get_jwt
from flask_limiter.util import get_remote_address

from shared.extensions import limiter
from shared.openapi import Blueprint
from shared.schemas.accounts import AccessTokenSchema, LoginSchema, MeSchema, RegisterSchema, SessionSchema
from shared.schemas.fields import normalise_email
from shared.security import any_token_required, login_required, refresh_token_required
from shared.services.auth import AuthService

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Registration, login and tokens")


def login_account_key() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return "login-account:" + normalise_email(email)[:255]
    return "login-client:" + get_remote_address()


def login_account_client_key() -> str:
    """One account as tried from one client: failures here lock out that client only."""
    return f"{login_account_key()}|client:{get_remote_address()}"


def _failed_login(response: Response) -> bool:
    return response.status_code == 401


@blp.route("/register", methods=["POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_REGISTER_PER_CLIENT"], key_func=get_remote_address)
@blp.arguments(RegisterSchema)
@blp.response(201, SessionSchema)
@blp.problems(409, 422, 429)
def register(data: dict[str, Any]) -> dict[str, Any]:
    """Create a student account with its customer profile, and log it in.

    Passwords need 10 to 128 characters with at least one letter and one digit.
    A taken email or phone number is a 409 naming the field. Registrations are limited
    per client address (429 with Retry-After).
    """
    return AuthService.register(data)


@blp.route("/login", methods=["POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN_PER_CLIENT"], key_func=get_remote_address)
@limiter.limit(
    lambda: current_app.config["RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT"],
    key_func=login_account_client_key,
    deduct_when=_failed_login,
)
@limiter.limit(
    lambda: current_app.config["RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT"],
    key_func=login_account_key,
    deduct_when=_failed_login,
)
@blp.arguments(LoginSchema)
@blp.response(200, SessionSchema)
@blp.problems(401, 422, 429)
def login(data: dict[str, Any]) -> dict[str, Any]:
    """Start a session: exchange email and password for an access and a refresh token.

    Unknown email and wrong password get the same 401. Attempts are limited per client
    address, failed attempts per account and client, and (more loosely) failed attempts
    per account (429 with Retry-After).
    """
    return AuthService.login(data["email"], data["password"])


@blp.route("/refresh", methods=["POST"])
@refresh_token_required
@blp.response(200, AccessTokenSchema)
@blp.problems(401)
def refresh() -> dict[str, str]:
    """A new access token of the refresh token's session."""
    return AuthService.refreshed_access_token(current_user, get_jwt())


@blp.route("/logout", methods=["POST"])
@any_token_required
@blp.response(204)
@blp.problems(401)
def logout() -> None:
    """End the session of the token in the Authorization header (access or refresh): both
    tokens of that login are refused at once, on every worker and host."""
    AuthService.end_session(get_jwt())


@blp.route("/logout-all", methods=["POST"])
@any_token_required
@blp.response(204)
@blp.problems(401)
def logout_all() -> None:
    """End every session of the caller (every device), this one included."""
    AuthService.end_all_sessions(current_user)


@blp.route("/me")
@login_required
@blp.response(200, MeSchema)
@blp.problems(401)
def me() -> dict[str, Any]:
    """The caller's account, customer profile and current subscription."""
    return AuthService.profile(current_user)
