"""Accounts: registration, login and sessions; customer profiles and the admin's upgrade."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql.base import Executable

from shared.errors import Conflict, ConstraintConflict, FieldErrors, Forbidden, NotFound, Unauthorized, ValidationFailed
from shared.extensions import db
from shared.models import (
    AccountToken,
    Customer,
    MailKind,
    Plan,
    PurchaseItem,
    Role,
    Subject,
    Subscription,
    SubscriptionStatus,
    TokenPurpose,
    User,
    UserSession,
)
from shared.models.accounts import ALREADY_CUSTOMER, EMAIL_IN_USE, EMAIL_TAKEN, PHONE_TAKEN
from shared.models.base import utcnow
from shared.passwords import hash_password, needs_rehash, verify_password
from shared.services.base import Page, escape_like, paginate, retry_on_lock_conflict, settle_race, transactional
from shared.services.mail import MailService

PHONE_REQUIRED = "A phone number is required to become a customer; this account has none."
PHONE_MISMATCH = "This account already has another phone number; the customer takes the account's number."
NOT_A_CUSTOMER = "This action needs a customer account."
SUBSCRIPTION_DAYS = {Plan.BASIC: 365, Plan.PREMIUM: 365}


@dataclass(frozen=True, slots=True)
class Principal:
    """Whom a request acts for: what the token check reads of the account, once per request
    (`AuthService.principal`). Routes that show or change the account itself load the
    `User` (`AuthService.account`)."""

    id: int
    role: Role
    customer_id: int | None
    email_verified: bool

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@functools.cache
def _principal() -> Select[Any]:
    """The statement of `AuthService.principal`, built once (it runs on every authenticated
    request): columns of the tables, no entities to build."""
    users, customers, sessions = User.__table__, Customer.__table__, UserSession.__table__
    live = (
        select(sessions.c.id)
        .where(
            sessions.c.id == bindparam("session_id"),
            sessions.c.user_id == users.c.id,
            sessions.c.ended_at.is_(None),
        )
        .exists()
    )
    return (
        select(users.c.id, users.c.role, users.c.is_active, users.c.email_verified_at, customers.c.id, live)
        .outerjoin(customers, customers.c.user_id == users.c.id)
        .where(users.c.id == bindparam("user_id"))
    )


def hot_statements() -> list[tuple[Executable, dict[str, Any]]]:
    """The statement every authenticated request runs, with values that match no row
    (`shared.warm_up` runs it)."""
    return [(_principal(), {"user_id": 0, "session_id": ""})]


class CustomerService:
    @staticmethod
    def conflicts(
        *, email: str | None = None, phone_number: str | None = None, exclude_id: int | None = None
    ) -> FieldErrors:
        """Which of these values another customer already holds (one statement).

        A friendly pre-check only: the unique constraints decide under concurrency.
        """
        conditions = []
        if email is not None:
            conditions.append(Customer.email == email)
        if phone_number is not None:
            conditions.append(Customer.phone_number == phone_number)
        if not conditions:
            return {}
        statement = select(Customer.email, Customer.phone_number).where(or_(*conditions))
        if exclude_id is not None:
            statement = statement.where(Customer.id != exclude_id)
        errors: FieldErrors = {}
        for taken_email, taken_phone in db.session.execute(statement):
            if email is not None and taken_email == email:
                errors["email"] = [EMAIL_TAKEN]
            if phone_number is not None and taken_phone == phone_number:
                errors["phone_number"] = [PHONE_TAKEN]
        return errors

    @staticmethod
    def upgrade_to_customer(admin: User, data: dict[str, Any]) -> tuple[Customer, Subscription]:
        """The admin's email and phone become a customer with a subscription, atomically."""
        return settle_race(lambda: CustomerService._upgrade(admin, data), CustomerService._lost_upgrade(admin))

    @staticmethod
    def _lost_upgrade(admin: User) -> Callable[[ConstraintConflict], tuple[Customer, Subscription]]:
        def decide(conflict: ConstraintConflict) -> tuple[Customer, Subscription]:
            # If the concurrent winner was this same admin's request, say so rather than
            # naming whichever unique index the database happened to check first.
            if CustomerService._is_customer(admin):
                raise CustomerService._already_customer() from conflict
            raise conflict

        return decide

    @staticmethod
    def _is_customer(user: User) -> bool:
        """Asks the database: the profile loaded with the token may predate a concurrent upgrade."""
        return db.session.execute(select(Customer.id).where(Customer.user_id == user.id)).first() is not None

    @staticmethod
    def _already_customer() -> Conflict:
        return Conflict(ALREADY_CUSTOMER, title="Already a customer", slug="already-customer")

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _upgrade(admin: User, data: dict[str, Any]) -> tuple[Customer, Subscription]:
        if not admin.is_admin:
            raise Forbidden("Only an admin account can be upgraded to a customer.")
        if CustomerService._is_customer(admin):
            raise CustomerService._already_customer()
        given = data.get("phone_number")
        if admin.phone_number and given and given != admin.phone_number:
            raise ValidationFailed(PHONE_MISMATCH, errors={"phone_number": [PHONE_MISMATCH]})
        phone_number = admin.phone_number or given
        if phone_number is None:
            raise ValidationFailed(PHONE_REQUIRED, errors={"phone_number": [PHONE_REQUIRED]})
        conflicts = CustomerService.conflicts(email=admin.email, phone_number=phone_number)
        if conflicts:
            raise Conflict(next(iter(conflicts.values()))[0], errors=conflicts)

        if admin.phone_number is None:
            admin.phone_number = phone_number
        customer = Customer(user=admin, email=admin.email, phone_number=phone_number)  # sets admin.customer too
        db.session.add(customer)
        db.session.flush()
        plan = data.get("plan", Plan.BASIC)
        started_at = utcnow()
        subscription = Subscription(
            customer_id=customer.id,
            plan=plan,
            status=SubscriptionStatus.ACTIVE,
            started_at=started_at,
            expires_at=started_at + timedelta(days=SUBSCRIPTION_DAYS[plan]),
        )
        db.session.add(subscription)
        db.session.flush()
        return customer, subscription

    @staticmethod
    def list_customers(page: int, per_page: int, search: str | None = None) -> Page[Customer]:
        statement = select(Customer).order_by(Customer.id)
        if search:
            pattern = f"%{escape_like(search)}%"
            statement = statement.where(
                or_(
                    Customer.email.like(pattern, escape="\\"),
                    Customer.phone_number.like(pattern, escape="\\"),
                )
            )
        return paginate(statement, page, per_page)

    @staticmethod
    def get_customer(customer_id: int) -> Customer:
        customer = db.session.execute(
            select(Customer)
            .where(Customer.id == customer_id)
            .options(joinedload(Customer.user), selectinload(Customer.subscriptions))
        ).scalar_one_or_none()
        if customer is None:
            raise NotFound("There is no customer with this id.")
        return customer

    @staticmethod
    def customer_id_of(caller: Principal) -> int:
        """The id of the caller's customer profile; 403 for accounts that have none."""
        if caller.customer_id is None:
            raise Forbidden(NOT_A_CUSTOMER)
        return caller.customer_id

    @staticmethod
    def customer_of(caller: Principal) -> Customer:
        """The caller's own customer profile; 403 for accounts that have none."""
        return CustomerService.get_customer(CustomerService.customer_id_of(caller))

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def update_own_profile(caller: Principal, data: dict[str, Any]) -> Customer:
        customer = CustomerService.customer_of(caller)
        phone_number = data.get("phone_number")
        if phone_number is not None and phone_number != customer.phone_number:
            conflicts = CustomerService.conflicts(phone_number=phone_number, exclude_id=customer.id)
            if conflicts:
                raise Conflict(PHONE_TAKEN, errors=conflicts)
            customer.phone_number = phone_number
            customer.user.phone_number = phone_number
        if "full_name" in data:
            customer.user.full_name = data["full_name"]
        db.session.flush()
        return customer


INVALID_CREDENTIALS = "The email or password is not correct."


class AuthService:
    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def register(data: dict[str, Any]) -> dict[str, Any]:
        """A student and its customer profile, together or not at all, and its first session."""
        conflicts = CustomerService.conflicts(email=data["email"], phone_number=data["phone_number"])
        if AuthService._email_in_use(data["email"]):
            conflicts["email"] = [EMAIL_IN_USE]
        if conflicts:
            raise Conflict(next(iter(conflicts.values()))[0], errors=conflicts)
        user = User(
            email=data["email"],
            password_hash=hash_password(data["password"]),
            full_name=data["full_name"],
            phone_number=data["phone_number"],
            role=Role.STUDENT,
            is_active=True,
        )
        db.session.add(user)
        db.session.flush()
        db.session.add(Customer(user_id=user.id, email=user.email, phone_number=user.phone_number))
        db.session.flush()
        EmailVerificationService.send_token(user)
        return AuthService.start_session(user)

    @staticmethod
    @transactional
    def create_admin(data: dict[str, Any]) -> User:
        if AuthService._email_in_use(data["email"]):
            raise Conflict(EMAIL_IN_USE, errors={"email": [EMAIL_IN_USE]})
        user = User(
            email=data["email"],
            password_hash=hash_password(data["password"]),
            full_name=data["full_name"],
            phone_number=data.get("phone_number"),
            role=Role.ADMIN,
            is_active=True,
            # The operator who runs `flask create-admin` on the server vouches for the address.
            email_verified_at=utcnow(),
        )
        db.session.add(user)
        db.session.flush()
        return user

    @staticmethod
    @transactional
    def login(email: str, password: str) -> dict[str, Any]:
        user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        password_ok = verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or not user.is_active:
            raise Unauthorized(INVALID_CREDENTIALS)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        return AuthService.start_session(user)

    @staticmethod
    @transactional(join=True)
    def start_session(user: User) -> dict[str, Any]:
        """A new session of `user`: the user and a fresh pair of tokens carrying its id (`sid`)."""
        config = current_app.config
        now = utcnow()
        session = UserSession(
            id=secrets.token_hex(16),
            user_id=user.id,
            created_at=now,
            # An access token refreshed at the refresh token's last moment outlives it by
            # one access lifetime; until then the row must stay.
            expires_at=now + config["JWT_REFRESH_TOKEN_EXPIRES"] + config["JWT_ACCESS_TOKEN_EXPIRES"],
        )
        db.session.add(session)
        db.session.flush()
        claims = {"role": user.role.value, "sid": session.id}
        return {
            "user": user,
            "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
            "refresh_token": create_refresh_token(identity=str(user.id), additional_claims=claims),
            "token_type": "Bearer",
        }

    @staticmethod
    def refreshed_access_token(user: Principal, refresh_token: dict[str, Any]) -> dict[str, str]:
        """A new access token of the refresh token's session (the session was checked live)."""
        claims = {"role": user.role.value, "sid": refresh_token["sid"]}
        return {
            "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
            "token_type": "Bearer",
        }

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def end_session(token: dict[str, Any]) -> None:
        """Log out: end the session of a decoded token, which refuses every token of that login.
        Ending it twice, even at the same instant, is not an error."""
        db.session.execute(
            update(UserSession)
            .where(UserSession.id == token["sid"], UserSession.user_id == int(token["sub"]))
            .where(UserSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )

    @staticmethod
    @transactional
    def end_all_sessions(user: User | Principal) -> int:
        """Log out everywhere: end every session of `user`. The number of sessions ended."""
        return AuthService._end_sessions(user, keep=None)

    @staticmethod
    @transactional
    def end_other_sessions(user: User | Principal, current_session: str) -> int:
        """End every session of `user` but `current_session` (a password change keeps the
        session that made it). The number of sessions ended."""
        return AuthService._end_sessions(user, keep=current_session)

    @staticmethod
    def _end_sessions(user: User | Principal, keep: str | None) -> int:
        statement = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        if keep is not None:
            statement = statement.where(UserSession.id != keep)
        return db.session.execute(statement.values(ended_at=utcnow())).rowcount or 0

    @staticmethod
    def principal(identity: str, session_id: Any) -> tuple[Principal | None, bool]:
        """The token's active account and whether the token is refused because its session
        ended, in one statement: the work every authenticated request starts with. Tokens
        without a session id (issued before sessions) are refused."""
        try:
            user_id = int(identity)
        except ValueError:
            return None, False
        if not isinstance(session_id, str):
            return None, True
        row = db.session.execute(_principal(), {"user_id": user_id, "session_id": session_id}).first()
        if row is None:
            return None, False
        _, role, is_active, verified_at, customer_id, is_live = row
        principal = Principal(user_id, role, customer_id, verified_at is not None) if is_active else None
        return principal, not is_live

    @staticmethod
    def principal_of(user: User) -> Principal:
        """The principal of an account at hand (commands and scripts act for a user they loaded)."""
        customer_id = db.session.execute(select(Customer.id).where(Customer.user_id == user.id)).scalar()
        return Principal(user.id, user.role, customer_id, user.email_verified_at is not None)

    @staticmethod
    def account(principal: Principal) -> User:
        """The caller's account, for the routes that show or change it."""
        user = db.session.get(User, principal.id)
        if user is None or not user.is_active:
            raise Unauthorized("The account of this token no longer exists or is disabled.")
        return user

    @staticmethod
    def profile(caller: Principal) -> dict[str, Any]:
        """The account, its customer profile and its latest subscription, what it owns."""
        user = AuthService.account(caller)
        customer = db.session.get(Customer, caller.customer_id) if caller.customer_id is not None else None
        subscription = None
        owned: list[Any] = []
        if customer is not None:
            subscription = db.session.execute(
                select(Subscription)
                .where(Subscription.customer_id == customer.id)
                .order_by(Subscription.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            # What the customer owns, and until when (an ended access period shows as such).
            owned = list(
                db.session.execute(
                    select(PurchaseItem.subject_id, Subject.name, PurchaseItem.purchase_id, PurchaseItem.access_until)
                    .join(Subject, Subject.id == PurchaseItem.subject_id)
                    .where(PurchaseItem.active_customer_id == customer.id)
                    .order_by(PurchaseItem.subject_id)
                ).mappings()
            )
        return {"user": user, "customer": customer, "subscription": subscription, "owned": owned}

    @staticmethod
    @transactional
    def purge_expired_sessions() -> int:
        """Sessions whose tokens have all expired refuse nothing more than a missing row; forget them."""
        result = db.session.execute(delete(UserSession).where(UserSession.expires_at < utcnow()))
        return result.rowcount or 0

    @staticmethod
    def _email_in_use(email: str) -> bool:
        return db.session.execute(select(User.id).where(User.email == email)).first() is not None


EMAIL_UNVERIFIED = "Verify your email address before paying: follow the link we mailed you, or ask for a new one."
ALREADY_VERIFIED = "This email address is verified already."
TOKEN_UNKNOWN = "This link is not valid. Ask for a new one."  # noqa: S105 - not a secret
TOKEN_USED = "This link has been used already, or a newer one replaced it."  # noqa: S105 - not a secret
TOKEN_EXPIRED = "This link has expired. Ask for a new one."  # noqa: S105 - not a secret
WRONG_PASSWORD = "The current password is not correct."  # noqa: S105 - not a secret
WRONG_PASSWORD_SLUG = "wrong-password"  # noqa: S105 - not a secret


def email_unverified() -> Forbidden:
    return Forbidden(EMAIL_UNVERIFIED, title="Email address not verified", slug="email-unverified")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountTokenService:
    """The secrets mailed to an account's owner: random, stored as SHA-256 only, used once."""

    @staticmethod
    def issue(user: User, purpose: TokenPurpose, lifetime: timedelta) -> str:
        """A new token for `user` (in the caller's unit of work), replacing the unused ones of
        the same purpose: only the latest mail works."""
        AccountTokenService.revoke(user.id, purpose)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        db.session.add(
            AccountToken(
                user_id=user.id,
                purpose=purpose,
                token_sha256=token_digest(token),
                created_at=now,
                expires_at=now + lifetime,
            )
        )
        db.session.flush()
        return token

    @staticmethod
    def revoke(user_id: int, purpose: TokenPurpose) -> None:
        db.session.execute(
            update(AccountToken)
            .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    @transactional
    def purge(older_than: timedelta) -> int:
        """Forget tokens that expired longer ago than `older_than` (used or not, they open nothing)."""
        cutoff = utcnow() - older_than
        return db.session.execute(delete(AccountToken).where(AccountToken.expires_at < cutoff)).rowcount or 0

    @staticmethod
    def use(token: str, purpose: TokenPurpose) -> int:
        """Spend a token: the id of its user. One conditional UPDATE decides, so of two
        requests racing with one token exactly one wins; the other (and any later use, an
        expired or an unknown token) is a 422 on `token`."""
        digest, now = token_digest(token), utcnow()
        won = db.session.execute(
            update(AccountToken)
            .where(
                AccountToken.token_sha256 == digest,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        row = db.session.execute(
            select(AccountToken.user_id, AccountToken.used_at, AccountToken.expires_at).where(
                AccountToken.token_sha256 == digest, AccountToken.purpose == purpose
            )
        ).first()
        if won == 1 and row is not None:
            return row.user_id
        message = TOKEN_UNKNOWN if row is None else TOKEN_EXPIRED if row.used_at is None else TOKEN_USED
        raise ValidationFailed(message, errors={"token": [message]}, slug="invalid-token")


class MailTemplates:
    """The texts of the account mails: a link to the SPA's page, and the token itself."""

    @staticmethod
    def link(page: str, token: str) -> str:
        return f"{current_app.config['FRONTEND_URL']}/{page}?token={token}"

    @staticmethod
    def _with_token(user: User, what: str, page: str, route: str, token: str, otherwise: str) -> str:
        return (
            f"Hello {user.full_name},\n\n{what}\n\n{MailTemplates.link(page, token)}\n\n"
            f"or send this token to {route}:\n\ntoken: {token}\n\n{otherwise}\n"
        )

    @staticmethod
    def verification(user: User, token: str) -> tuple[str, str]:
        hours = current_app.config["EMAIL_VERIFICATION_HOURS"]
        what = f"please confirm that this is your email address by opening this link within {hours} hours:"
        otherwise = "If you did not create an account, ignore this mail."
        return "Verify your email address", MailTemplates._with_token(
            user, what, "verify-email", "POST /api/auth/verify-email", token, otherwise
        )

    @staticmethod
    def reset(user: User, token: str) -> tuple[str, str]:
        minutes = current_app.config["PASSWORD_RESET_MINUTES"]
        what = (
            "someone asked to reset the password of this account. To choose a new one, open this link "
            f"within {minutes} minutes:"
        )
        otherwise = "If it was not you, ignore this mail: your password stays as it is."
        route = "POST /api/auth/password-reset/confirm, with the new password"
        return "Reset your password", MailTemplates._with_token(user, what, "reset-password", route, token, otherwise)

    @staticmethod
    def password_changed(user: User) -> tuple[str, str]:
        return "Your password was changed", (
            f"Hello {user.full_name},\n\n"
            "the password of your account was just changed, and its other sessions were ended.\n"
            "If it was not you, reset your password at once and tell us.\n"
        )


class EmailVerificationService:
    @staticmethod
    @transactional(join=True)
    def send_token(user: User) -> None:
        """Mail `user` a new verification token (with the caller's change, e.g. the registration)."""
        lifetime = timedelta(hours=current_app.config["EMAIL_VERIFICATION_HOURS"])
        token = AccountTokenService.issue(user, TokenPurpose.VERIFY_EMAIL, lifetime)
        MailService.enqueue(MailKind.VERIFY_EMAIL, user.email, *MailTemplates.verification(user, token))

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def resend(user: User) -> None:
        """Another verification mail (the earlier links stop working); 409 when verified already."""
        if user.email_verified_at is not None:
            raise Conflict(ALREADY_VERIFIED, title="Already verified", slug="email-already-verified")
        EmailVerificationService.send_token(user)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def verify(token: str) -> User:
        """Spend a verification token: its account's email is verified (from now on, or since
        it first was)."""
        user_id = AccountTokenService.use(token, TokenPurpose.VERIFY_EMAIL)
        db.session.execute(
            update(User)
            .where(User.id == user_id, User.email_verified_at.is_(None))
            .values(email_verified_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        fresh = select(User).where(User.id == user_id).execution_options(populate_existing=True)
        return db.session.execute(fresh).scalar_one()


class PasswordService:
    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def request_reset(email: str) -> None:
        """Mail a reset token to the account with this (normalised) email, if there is an
        active one; the caller answers the same whatever happened."""
        user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if user is None or not user.is_active:
            return
        lifetime = timedelta(minutes=current_app.config["PASSWORD_RESET_MINUTES"])
        token = AccountTokenService.issue(user, TokenPurpose.RESET_PASSWORD, lifetime)
        MailService.enqueue(MailKind.RESET_PASSWORD, user.email, *MailTemplates.reset(user, token))

    @staticmethod
    def confirm_reset(token: str, password: str) -> None:
        """Spend a reset token: the new password, every session of the account ended (its
        tokens are refused at once, on every worker), and the mailbox counts as verified."""
        PasswordService._confirm_reset(token, hash_password(password))  # hashed before any row is locked

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _confirm_reset(token: str, password_hash: str) -> None:
        user_id = AccountTokenService.use(token, TokenPurpose.RESET_PASSWORD)
        user = db.session.execute(select(User).where(User.id == user_id)).scalar_one()
        user.password_hash = password_hash
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
        db.session.flush()
        AuthService._end_sessions(user, keep=None)
        MailService.enqueue(MailKind.PASSWORD_CHANGED, user.email, *MailTemplates.password_changed(user))

    @staticmethod
    def change(user: User, session_id: str, current_password: str, new_password: str) -> None:
        """The caller's new password: the current one must be right (422 on
        `current_password`); every other session of the account ends, the caller's goes on."""
        if not verify_password(user.password_hash, current_password):
            raise ValidationFailed(
                WRONG_PASSWORD, errors={"current_password": [WRONG_PASSWORD]}, slug=WRONG_PASSWORD_SLUG
            )
        PasswordService._change(user, session_id, hash_password(new_password))

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _change(user: User, session_id: str, password_hash: str) -> None:
        db.session.execute(
            update(User)
            .where(User.id == user.id)
            .values(password_hash=password_hash, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        AuthService._end_sessions(user, keep=session_id)
        MailService.enqueue(MailKind.PASSWORD_CHANGED, user.email, *MailTemplates.password_changed(user))


# ======================================================================================
# Admin user management (GET/PATCH /api/users): UserService and its helpers only.
# ======================================================================================

USER_NOT_FOUND = "There is no user with this id."
CANNOT_DEACTIVATE_SELF = "An admin cannot deactivate their own account; ask another admin."
LAST_ACTIVE_ADMIN = "This is the last active admin account; it cannot be deactivated."
ACTOR_DEACTIVATED = "The account of this token no longer exists or is disabled."


@dataclass(frozen=True)
class UserSummary:
    """An account as the admins' user list shows it: the user (every column the account
    schema dumps, `email_verified_at` too once it exists), its customer id and last login."""

    user: User
    customer_id: int | None
    last_login_at: datetime | None

    @property
    def is_customer(self) -> bool:
        return self.customer_id is not None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocols (copy, pickle) ask before `user` is set
            raise AttributeError(name)
        return getattr(self.user, name)


def _summaries() -> Select[Any]:
    """One row per user with its customer id and last login: a fixed number of statements
    whatever the number of users (the last login is a correlated MAX on the indexed user_id)."""
    last_login = select(func.max(UserSession.created_at)).where(UserSession.user_id == User.id).scalar_subquery()
    return select(User, Customer.id, last_login).outerjoin(Customer, Customer.user_id == User.id).order_by(User.id)


def _phone_digits(search: str) -> str | None:
    """The digits of a search that looks like a phone number (`98765 43210`, `+91-98765`):
    phones are stored in E.164, so their digits are found whatever the spelling."""
    if not re.fullmatch(r"[\d\s+().-]+", search):
        return None
    digits = re.sub(r"\D", "", search)
    return digits if len(digits) >= 3 else None


class UserService:
    @staticmethod
    def list_users(
        page: int, per_page: int, *, search: str | None = None, role: Role | None = None, is_active: bool | None = None
    ) -> Page[UserSummary]:
        """Two statements: the count, and the page. `search` is a case-insensitive substring
        of the email, the name or the phone number (the account's or its customer's);
        LIKE wildcards in it are literal."""
        statement = _summaries()
        if search:
            pattern = f"%{escape_like(search)}%"
            matches = [
                User.email.ilike(pattern, escape="\\"),
                User.full_name.ilike(pattern, escape="\\"),
                User.phone_number.like(pattern, escape="\\"),
                Customer.phone_number.like(pattern, escape="\\"),
            ]
            digits = _phone_digits(search)
            if digits:
                matches += [User.phone_number.like(f"%{digits}%"), Customer.phone_number.like(f"%{digits}%")]
            statement = statement.where(or_(*matches))
        if role is not None:
            statement = statement.where(User.role == role)
        if is_active is not None:
            statement = statement.where(User.is_active.is_(is_active))
        found = paginate(statement, page, per_page, rows=True)
        return Page(
            items=[UserSummary(*row) for row in found.items],
            page=found.page,
            per_page=found.per_page,
            total=found.total,
        )

    @staticmethod
    def get_user(user_id: int) -> UserSummary:
        row = db.session.execute(_summaries().where(User.id == user_id)).first()
        if row is None:
            raise NotFound(USER_NOT_FOUND)
        return UserSummary(*row)

    @staticmethod
    def id_of(email: str) -> int:
        found = db.session.execute(select(User.id).where(User.email == email)).scalar_one_or_none()
        if found is None:
            raise NotFound("There is no user with this email.")
        return found

    @staticmethod
    def update_user(actor: Principal | None, user_id: int, data: dict[str, Any]) -> UserSummary:
        """Apply an admin's PATCH (`is_active` only) and answer the user as it now is."""
        if "is_active" in data:
            UserService.set_active(actor, user_id, data["is_active"])
        return UserService.get_user(user_id)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def set_active(actor: Principal | None, user_id: int, is_active: bool) -> None:
        """Activate or deactivate an account; deactivating ends every session of it in the
        same transaction (each request checks both, so the next one on any worker is a 401).
        Setting the state it has already is a no-op.

        `actor` is the admin doing it (None: an operator's command). The actor and the
        target rows are locked in id order, so two admins deactivating each other are
        serialised: the second sees that its own account is no longer active and is refused.
        The actor's row is written too, so that on Galera (whose row locks are local to a
        node) the two transactions certify against each other and one of them retries.
        The last active admin is never deactivated.
        """
        ids = sorted({user_id} | ({actor.id} if actor is not None else set()))
        rows = db.session.execute(
            select(User.id, User.role, User.is_active).where(User.id.in_(ids)).order_by(User.id).with_for_update()
        ).all()
        locked = {row.id: row for row in rows}
        if actor is not None and (
            actor.id not in locked or not locked[actor.id].is_active or locked[actor.id].role != Role.ADMIN
        ):
            raise Unauthorized(ACTOR_DEACTIVATED)
        target = locked.get(user_id)
        if target is None:
            raise NotFound(USER_NOT_FOUND)
        if target.is_active == is_active:
            return
        if not is_active:
            if actor is not None and actor.id == user_id:
                raise Conflict(
                    CANNOT_DEACTIVATE_SELF, title="Cannot deactivate yourself", slug="cannot-deactivate-self"
                )
            if target.role == Role.ADMIN and UserService._other_active_admins(user_id) == 0:
                raise Conflict(LAST_ACTIVE_ADMIN, title="Last active admin", slug="last-active-admin")
            db.session.execute(
                update(UserSession)
                .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
                .values(ended_at=utcnow())
            )
        db.session.execute(update(User).where(User.id == user_id).values(is_active=is_active, updated_at=utcnow()))
        if actor is not None:
            db.session.execute(update(User).where(User.id == actor.id).values(updated_at=utcnow()))

    @staticmethod
    def _other_active_admins(user_id: int) -> int:
        return db.session.execute(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN, User.is_active.is_(True), User.id != user_id)
        ).scalar_one()
