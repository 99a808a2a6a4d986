"""Accounts: registration, login and sessions; customer profiles and the admin's upgrade."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import Select, bindparam, delete, inspect, or_, select, update
from sqlalchemy.orm import joinedload, selectinload

from shared.errors import Conflict, ConstraintConflict, FieldErrors, Forbidden, NotFound, Unauthorized, ValidationFailed
from shared.extensions import db
from shared.models import (
    Customer,
    Plan,
    PurchaseItem,
    Role,
    Subject,
    Subscription,
    SubscriptionStatus,
    User,
    UserSession,
)
from shared.models.accounts import ALREADY_CUSTOMER, EMAIL_IN_USE, EMAIL_TAKEN, PHONE_TAKEN
from shared.models.base import utcnow
from shared.passwords import hash_password, needs_rehash, verify_password
from shared.services.base import Page, escape_like, paginate, retry_on_lock_conflict, settle_race, transactional

PHONE_REQUIRED = "A phone number is required to become a customer; this account has none."
PHONE_MISMATCH = "This account already has another phone number; the customer takes the account's number."
NOT_A_CUSTOMER = "This action needs a customer account."
SUBSCRIPTION_DAYS = {Plan.BASIC: 365, Plan.PREMIUM: 365}


@functools.cache
def _principal() -> Select[tuple[User, bool]]:
    """The statement of `AuthService.principal`, built once (it runs on every authenticated request)."""
    live = (
        select(UserSession.id)
        .where(
            UserSession.id == bindparam("session_id"),
            UserSession.user_id == bindparam("user_id"),
            UserSession.ended_at.is_(None),
        )
        .exists()
    )
    return select(User, live).where(User.id == bindparam("user_id")).options(joinedload(User.customer))


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
    def profile_of(user: User) -> Customer | None:
        """The user's customer profile: the one loaded with the user when the request was
        authenticated, or one query."""
        if "customer" not in inspect(user).unloaded:
            return user.customer
        return db.session.execute(select(Customer).where(Customer.user_id == user.id)).scalar_one_or_none()

    @staticmethod
    def customer_id_of(user: User) -> int:
        """The id of the caller's customer profile; 403 for accounts that have none."""
        customer = CustomerService.profile_of(user)
        if customer is None:
            raise Forbidden(NOT_A_CUSTOMER)
        return customer.id

    @staticmethod
    def customer_of(user: User) -> Customer:
        """The caller's own customer profile; 403 for accounts that have none."""
        return CustomerService.get_customer(CustomerService.customer_id_of(user))

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def update_own_profile(user: User, data: dict[str, Any]) -> Customer:
        customer = CustomerService.customer_of(user)
        phone_number = data.get("phone_number")
        if phone_number is not None and phone_number != customer.phone_number:
            conflicts = CustomerService.conflicts(phone_number=phone_number, exclude_id=customer.id)
            if conflicts:
                raise Conflict(PHONE_TAKEN, errors=conflicts)
            customer.phone_number = phone_number
            user.phone_number = phone_number
        if "full_name" in data:
            user.full_name = data["full_name"]
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
    def refreshed_access_token(user: User, refresh_token: dict[str, Any]) -> dict[str, str]:
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
    def end_all_sessions(user: User) -> int:
        """Log out everywhere: end every session of `user`. The number of sessions ended."""
        return AuthService._end_sessions(user, keep=None)

    @staticmethod
    @transactional
    def end_other_sessions(user: User, current_session: str) -> int:
        """End every session of `user` but `current_session` (a password change keeps the
        session that made it). The number of sessions ended."""
        return AuthService._end_sessions(user, keep=current_session)

    @staticmethod
    def _end_sessions(user: User, keep: str | None) -> int:
        statement = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        if keep is not None:
            statement = statement.where(UserSession.id != keep)
        return db.session.execute(statement.values(ended_at=utcnow())).rowcount or 0

    @staticmethod
    def principal(identity: str, session_id: Any) -> tuple[User | None, bool]:
        """The token's active user (with its customer profile) and whether the token is
        refused because its session ended, in one statement: the work every authenticated
        request starts with. Tokens without a session id (issued before sessions) are refused."""
        try:
            user_id = int(identity)
        except ValueError:
            return None, False
        if not isinstance(session_id, str):
            return None, True
        row = db.session.execute(_principal(), {"user_id": user_id, "session_id": session_id}).first()
        if row is None:
            return None, False
        user, is_live = row
        return (user if user.is_active else None), not is_live

    @staticmethod
    def active_user(identity: str) -> User | None:
        try:
            user = db.session.get(User, int(identity))
        except ValueError:
            return None
        return user if user is not None and user.is_active else None

    @staticmethod
    def profile(user: User) -> dict[str, Any]:
        """The user, its customer profile (loaded with the token) and its latest subscription."""
        customer = CustomerService.profile_of(user)
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
