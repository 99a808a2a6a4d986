"""Authentication: JWT callbacks in our problem format, and the role guards views use."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import Response, g, request
from flask_jwt_extended import current_user, get_current_user, verify_jwt_in_request
from flask_smorest.utils import deepupdate

from shared.errors import Forbidden, Unauthorized
from shared.extensions import jwt
from shared.models import User
from shared.services.accounts import AuthService, Principal

P = ParamSpec("P")
R = TypeVar("R")
BEARER = [{"bearerAuth": []}]
_VIEWER_IS_ADMIN = "exam_shop.viewer_is_admin"


def _unauthorized(detail: str) -> Response:
    return Unauthorized(detail).to_response()


def register_jwt_callbacks() -> None:
    @jwt.user_identity_loader
    def identity(user: User | str) -> str:
        return str(user.id) if isinstance(user, User) else str(user)

    # flask-jwt-extended asks "revoked?" and then "which user?"; one query answers both.
    @jwt.token_in_blocklist_loader
    def is_revoked(header: dict[str, Any], payload: dict[str, Any]) -> bool:
        principal, revoked = AuthService.principal(payload["sub"], payload.get("sid"))
        g.principal = (payload["jti"], principal)
        return revoked

    @jwt.user_lookup_loader
    def load_user(header: dict[str, Any], payload: dict[str, Any]) -> Principal | None:
        jti, principal = g.pop("principal", (None, None))
        if jti == payload["jti"]:
            return principal
        return AuthService.principal(payload["sub"], payload.get("sid"))[0]

    @jwt.unauthorized_loader
    def missing_token(reason: str) -> Response:
        return _unauthorized("This request needs an access token in the Authorization: Bearer header.")

    @jwt.invalid_token_loader
    def invalid_token(reason: str) -> Response:
        return _unauthorized("The token is malformed, of the wrong type, or its signature is invalid.")

    @jwt.expired_token_loader
    def expired_token(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("The token has expired. Refresh it or log in again.")

    @jwt.revoked_token_loader
    def revoked_token(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("The token has been revoked: its session has ended. Log in again.")

    @jwt.needs_fresh_token_loader
    def stale_token(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("This action needs a fresh login.")

    @jwt.user_lookup_error_loader
    def unknown_user(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return _unauthorized("The account of this token no longer exists or is disabled.")


def _guard(*, admin: bool = False, refresh: bool = False, any_type: bool = False) -> Callable[..., Any]:
    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            verify_jwt_in_request(refresh=refresh, verify_type=not any_type)
            caller: Principal = current_user
            if admin and not caller.is_admin:
                raise Forbidden("This action is reserved to admins.")
            return view(*args, **kwargs)

        # Document the bearer requirement in the OpenAPI document.
        guarded._apidoc = deepupdate(  # type: ignore[attr-defined]
            getattr(view, "_apidoc", {}), {"manual_doc": {"security": BEARER}}
        )
        return guarded

    return decorator


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """A valid, unrevoked access token of an active account."""
    return _guard()(view)


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    """Like `login_required`, and the account is an admin (403 otherwise)."""
    return _guard(admin=True)(view)


def refresh_token_required(view: Callable[P, R]) -> Callable[P, R]:
    return _guard(refresh=True)(view)


def any_token_required(view: Callable[P, R]) -> Callable[P, R]:
    """An access or a refresh token (logout accepts either)."""
    return _guard(any_type=True)(view)


def viewer_is_admin() -> bool:
    """On public routes: does the request carry a valid admin token? (A bad token is still a 401.)
    Asked once per request."""
    if "Authorization" not in request.headers:  # tokens come in this header only: anonymous
        return False
    known = request.environ.get(_VIEWER_IS_ADMIN)  # per request: `g` outlives it in tests
    if known is None:
        verify_jwt_in_request(optional=True)
        caller: Principal | None = get_current_user()
        known = request.environ[_VIEWER_IS_ADMIN] = caller is not None and caller.is_admin
    return bool(known)
