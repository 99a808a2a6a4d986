"""Accounts: registration, login and sessions (/api/auth); customer profiles (/api/customers);
admin user management (/api/users)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request, url_for
from flask_jwt_extended import current_user, get_jwt
from flask_limiter.util import get_remote_address

from shared.extensions import limiter
from shared.models import Customer
from shared.openapi import Blueprint
from shared.schemas.accounts import (
    AccessTokenSchema,
    CustomerDetailSchema,
    CustomerListQuerySchema,
    CustomerPageSchema,
    CustomerUpdateSchema,
    LoginSchema,
    MeSchema,
    RegisterSchema,
    SessionSchema,
    UpgradeResultSchema,
    UpgradeSchema,
    UserListQuerySchema,
    UserPageSchema,
    UserSummarySchema,
    UserUpdateSchema,
)
from shared.schemas.fields import normalise_email
from shared.security import admin_required, any_token_required, login_required, refresh_token_required
from shared.services.accounts import AuthService, CustomerService, UserService, UserSummary
from shared.services.base import Page

auth = Blueprint("auth", __name__, url_prefix="/api/auth", description="Registration, login and tokens")


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


@auth.route("/register", methods=["POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_REGISTER_PER_CLIENT"], key_func=get_remote_address)
@auth.arguments(RegisterSchema)
@auth.response(201, SessionSchema, location=lambda _session: url_for("auth.get_me"))
@auth.problems(409, 422, 429)
def register(data: dict[str, Any]) -> dict[str, Any]:
    """Create a student account with its customer profile, and log it in.

    Passwords need 10 to 128 characters with at least one letter and one digit.
    A taken email or phone number is a 409 naming the field. Registrations are limited
    per client address (429 with Retry-After).
    """
    return AuthService.register(data)


@auth.route("/login", methods=["POST"])
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
@auth.arguments(LoginSchema)
@auth.response(200, SessionSchema)
@auth.problems(401, 422, 429)
def login(data: dict[str, Any]) -> dict[str, Any]:
    """Start a session: exchange email and password for an access and a refresh token.

    Unknown email and wrong password get the same 401. Attempts are limited per client
    address, failed attempts per account and client, and (more loosely) failed attempts
    per account (429 with Retry-After).
    """
    return AuthService.login(data["email"], data["password"])


@auth.route("/refresh", methods=["POST"])
@refresh_token_required
@auth.response(200, AccessTokenSchema)
@auth.problems(401)
def refresh() -> dict[str, str]:
    """A new access token of the refresh token's session."""
    return AuthService.refreshed_access_token(current_user, get_jwt())


@auth.route("/logout", methods=["POST"])
@any_token_required
@auth.response(204)
@auth.problems(401)
def logout() -> None:
    """End the session of the token in the Authorization header (access or refresh): both
    tokens of that login are refused at once, on every worker and host."""
    AuthService.end_session(get_jwt())


@auth.route("/logout-all", methods=["POST"])
@any_token_required
@auth.response(204)
@auth.problems(401)
def logout_all() -> None:
    """End every session of the caller (every device), this one included."""
    AuthService.end_all_sessions(current_user)


@auth.route("/me")
@login_required
@auth.response(200, MeSchema)
@auth.problems(401)
def get_me() -> dict[str, Any]:
    """The caller's account, customer profile and current subscription."""
    return AuthService.profile(current_user)


customers = Blueprint(
    "customers", __name__, url_prefix="/api/customers", description="Customer profiles and the upgrade"
)


@customers.route("/upgrade", methods=["POST"])
@admin_required
@customers.arguments(UpgradeSchema)
@customers.response(201, UpgradeResultSchema, location=lambda _result: url_for("customers.get_own_profile"))
@customers.problems(401, 403, 409, 422)
def upgrade_to_customer(data: dict[str, Any]) -> dict[str, Any]:
    """Make the calling admin a customer, with a subscription.

    409 with `errors.email` or `errors.phone_number` when another customer holds them,
    409 when the admin already is a customer, 422 when the account has no phone number
    and the body gives none.
    """
    customer, subscription = CustomerService.upgrade_to_customer(current_user, data)
    return {"customer": customer, "subscription": subscription}


@customers.route("")
@admin_required
@customers.arguments(CustomerListQuerySchema, location="query")
@customers.response(200, CustomerPageSchema)
@customers.problems(401, 403, 422)
def list_customers(query: dict[str, Any]) -> Page[Customer]:
    """All customers, by id, optionally searched by email or phone number."""
    return CustomerService.list_customers(query["page"], query["per_page"], query.get("q"))


@customers.route("/<id:customer_id>")
@admin_required
@customers.response(200, CustomerDetailSchema)
@customers.problems(401, 403, 404)
def get_customer(customer_id: int) -> Customer:
    return CustomerService.get_customer(customer_id)


@customers.route("/me")
@login_required
@customers.response(200, CustomerDetailSchema)
@customers.problems(401, 403)
def get_own_profile() -> Customer:
    """The caller's customer profile (403 for accounts that are not customers)."""
    return CustomerService.customer_of(current_user)


@customers.route("/me", methods=["PATCH"])
@login_required
@customers.arguments(CustomerUpdateSchema)
@customers.response(200, CustomerDetailSchema)
@customers.problems(401, 403, 409, 422)
def update_own_profile(data: dict[str, Any]) -> Customer:
    """Change the caller's name or phone number (a phone another customer holds is a 409)."""
    return CustomerService.update_own_profile(current_user, data)


# ======================================================================================
# Admin user management (/api/users)
# ======================================================================================

users = Blueprint("users", __name__, url_prefix="/api/users", description="Admins find and deactivate accounts")


@users.route("")
@admin_required
@users.arguments(UserListQuerySchema, location="query")
@users.response(200, UserPageSchema)
@users.problems(401, 403, 422)
def list_users(query: dict[str, Any]) -> Page[UserSummary]:
    """All accounts, by id: searched (`q`, case-insensitive, in email, name and phone number)
    and filtered by `role` and `is_active`, with customer id and last login."""
    filters = {name: query[name] for name in ("role", "is_active") if name in query}
    return UserService.list_users(query["page"], query["per_page"], search=query.get("q"), **filters)


@users.route("/<id:user_id>")
@admin_required
@users.response(200, UserSummarySchema)
@users.problems(401, 403, 404)
def get_user(user_id: int) -> UserSummary:
    return UserService.get_user(user_id)


@users.route("/<id:user_id>", methods=["PATCH"])
@admin_required
@users.arguments(UserUpdateSchema)
@users.response(200, UserSummarySchema)
@users.problems(401, 403, 404, 409, 422)
def update_user(data: dict[str, Any], user_id: int) -> UserSummary:
    """Deactivate (`{"is_active": false}`) or reactivate an account.

    Deactivating ends every session of the account at once: its access and refresh tokens
    are a 401 on the next request, on every worker, and logging in is refused until it is
    reactivated (then it logs in again). Setting the state it already has is a 200 that
    changes nothing. An admin cannot deactivate their own account, nor the last active
    admin (409).
    """
    return UserService.update_user(current_user, user_id, data)
