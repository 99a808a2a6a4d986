"""Accounts: registration, login and sessions (/api/auth); customer profiles (/api/customers);
admin user management (/api/users)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request, url_for
from flask_jwt_extended import current_user, get_jwt
from flask_limiter.util import get_remote_address

from shared.errors import problem_type
from shared.extensions import limiter
from shared.models import Customer
from shared.openapi import Blueprint
from shared.schemas.accounts import (
    AcceptedSchema,
    AccessTokenSchema,
    CustomerDetailSchema,
    CustomerListQuerySchema,
    CustomerPageSchema,
    CustomerUpdateSchema,
    EmailVerifiedSchema,
    LoginSchema,
    MailedTokenSchema,
    MeSchema,
    PasswordChangeSchema,
    PasswordResetRequestSchema,
    PasswordResetSchema,
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
from shared.services.accounts import (
    WRONG_PASSWORD_SLUG,
    AuthService,
    CustomerService,
    EmailVerificationService,
    PasswordService,
    UserService,
    UserSummary,
)
from shared.services.base import Page

auth = Blueprint("auth", __name__, url_prefix="/api/auth", description="Registration, login and tokens")


def _body_email() -> str | None:
    """The normalised email of the body, whether or not such an account exists."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return normalise_email(email)[:255] if isinstance(email, str) and email.strip() else None


def _account_key(prefix: str) -> str:
    """The account the body names, else the client."""
    email = _body_email()
    return f"{prefix}-account:{email}" if email else f"{prefix}-client:" + get_remote_address()


def login_account_key() -> str:
    return _account_key("login")


def password_reset_account_key() -> str:
    return _account_key("password-reset")


def caller_key(prefix: str) -> Callable[[], str]:
    """The authenticated caller's account (the view's guard has checked the token)."""
    return lambda: f"{prefix}:{current_user.id}"


def login_account_client_key() -> str:
    """One account as tried from one client: failures here lock out that client only."""
    return f"{login_account_key()}|client:{get_remote_address()}"


def _failed_login(response: Response) -> bool:
    return response.status_code == 401


def _wrong_password(response: Response) -> bool:
    """A 422 for the current password (not for a weak new one) counts against the account."""
    body = response.get_json(silent=True) if response.status_code == 422 else None
    return isinstance(body, dict) and body.get("type") == problem_type(WRONG_PASSWORD_SLUG)


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


VERIFICATION_SENT = "A new verification mail is on its way; earlier links no longer work."
RESET_ACCEPTED = (
    "If an account has this email address, a password-reset link is on its way. It is valid for a short time."
)


@auth.route("/verify-email", methods=["POST"])
@auth.arguments(MailedTokenSchema)
@auth.response(200, EmailVerifiedSchema)
@auth.problems(422)
def verify_email(data: dict[str, Any]) -> Any:
    """Prove the account's mailbox with the token mailed at registration (or by a resend).

    Needs no login: the link may be opened on another device. An unknown, used, replaced or
    expired token is a 422 on `token`. Verified accounts can pay.
    """
    return EmailVerificationService.verify(data["token"])


@auth.route("/verify-email/resend", methods=["POST"])
@login_required
@limiter.limit(
    lambda: current_app.config["RATELIMIT_VERIFICATION_RESEND_PER_ACCOUNT"], key_func=caller_key("verify-resend")
)
@auth.response(202, AcceptedSchema, description="The mail is written to the outbox and sent shortly")
@auth.problems(401, 409, 429)
def resend_verification() -> dict[str, str]:
    """Mail the caller a new verification link (the earlier ones stop working).

    409 `email-already-verified` when there is nothing to verify; limited per account.
    """
    EmailVerificationService.resend(AuthService.account(current_user))
    return {"status": "accepted", "detail": VERIFICATION_SENT}


@auth.route("/password-reset", methods=["POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_PASSWORD_RESET_PER_CLIENT"], key_func=get_remote_address)
@limiter.limit(
    lambda: current_app.config["RATELIMIT_PASSWORD_RESET_PER_ACCOUNT"],
    key_func=password_reset_account_key,
    exempt_when=lambda: _body_email() is None,  # no account named: a 422, limited per client
)
@auth.arguments(PasswordResetRequestSchema)
@auth.response(202, AcceptedSchema, description="The same answer whether or not the account exists")
@auth.problems(422, 429)
def request_password_reset(data: dict[str, Any]) -> dict[str, str]:
    """Ask for a password-reset mail.

    Always 202 with the same body: nobody learns whether an account has this email. The
    mail's token is valid for PASSWORD_RESET_MINUTES (30) and once; a newer request
    replaces it. Limited per client address and per email address (429 with Retry-After).
    """
    PasswordService.request_reset(data["email"])
    return {"status": "accepted", "detail": RESET_ACCEPTED}


@auth.route("/password-reset/confirm", methods=["POST"])
@auth.arguments(PasswordResetSchema)
@auth.response(204)
@auth.problems(422)
def confirm_password_reset(data: dict[str, Any]) -> None:
    """Set a new password with the mailed token.

    Every session of the account ends at once (its access and refresh tokens are refused
    on every worker): log in again with the new password. The address counts as verified.
    An unknown, used or expired token is a 422 on `token`; the password rules are those of
    registration.
    """
    PasswordService.confirm_reset(data["token"], data["password"])


@auth.route("/password", methods=["POST"])
@login_required
@limiter.limit(
    lambda: current_app.config["RATELIMIT_PASSWORD_CHANGE_FAILURES_PER_ACCOUNT"],
    key_func=caller_key("password-change"),
    deduct_when=_wrong_password,
)
@auth.arguments(PasswordChangeSchema)
@auth.response(204)
@auth.problems(401, 422, 429)
def change_password(data: dict[str, Any]) -> None:
    """Change the caller's password: every other session of the account ends, this one goes on.

    A wrong `current_password` is a 422 on that field (`wrong-password`; such failures are
    limited per account); the new password follows the rules of registration.
    """
    PasswordService.change(
        AuthService.account(current_user), get_jwt()["sid"], data["current_password"], data["new_password"]
    )


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
    customer, subscription = CustomerService.upgrade_to_customer(AuthService.account(current_user), data)
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
