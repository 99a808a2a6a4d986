"""Registration, login, tokens and their revocation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload

from shared.errors import Conflict, Unauthorized
from shared.extensions import db
from shared.models import Customer, RevokedToken, Role, Subscription, User
from shared.models.base import utcnow
from shared.models.user import EMAIL_IN_USE
from shared.passwords import hash_password, needs_rehash, verify_password
from shared.services.base import retry_on_lock_conflict, settle_race, transactional
from shared.services.customers import CustomerService

INVALID_CREDENTIALS = "The email or password is not correct."


class AuthService:
    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def register(data: dict[str, Any]) -> User:
        """A student and its customer profile, together or not at all."""
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
        return user

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
    def login(email: str, password: str) -> User:
        user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        password_ok = verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or not user.is_active:
            raise Unauthorized(INVALID_CREDENTIALS)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        return user

    @staticmethod
    def session(user: User) -> dict[str, Any]:
        """The answer to a registration or a login: the user and a fresh pair of tokens."""
        return {"user": user, **AuthService.issue_tokens(user)}

    @staticmethod
    def issue_tokens(user: User) -> dict[str, str]:
        claims = {"role": user.role.value}
        return {
            "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
            "refresh_token": create_refresh_token(identity=str(user.id), additional_claims=claims),
            "token_type": "Bearer",
        }

    @staticmethod
    def refreshed_access_token(user: User) -> dict[str, str]:
        token = create_access_token(identity=str(user.id), additional_claims={"role": user.role.value})
        return {"access_token": token, "token_type": "Bearer"}

    @staticmethod
    def revoke(token: dict[str, Any]) -> None:
        """Revoke a decoded token; revoking it twice, even at the same instant, is not an error."""
        settle_race(
            lambda: AuthService._record_revocation(token),
            lambda _: None,
            lost_on=[RevokedToken.one_revocation_per_token],
        )

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _record_revocation(token: dict[str, Any]) -> None:
        db.session.add(
            RevokedToken(
                jti=token["jti"],
                token_type=token["type"],
                user_id=int(token["sub"]),
                expires_at=datetime.fromtimestamp(token["exp"], UTC).replace(tzinfo=None),
            )
        )

    @staticmethod
    def principal(identity: str, jti: str) -> tuple[User | None, bool]:
        """The token's active user (with its customer profile) and whether the token is
        revoked, in one statement: the work every authenticated request starts with."""
        try:
            user_id = int(identity)
        except ValueError:
            return None, False
        revoked = select(RevokedToken.id).where(RevokedToken.jti == jti).exists()
        row = db.session.execute(
            select(User, revoked).where(User.id == user_id).options(joinedload(User.customer))
        ).first()
        if row is None:
            return None, AuthService.is_revoked(jti)
        user, is_revoked = row
        return (user if user.is_active else None), bool(is_revoked)

    @staticmethod
    def is_revoked(jti: str) -> bool:
        return db.session.execute(select(RevokedToken.id).where(RevokedToken.jti == jti)).first() is not None

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
        if customer is not None:
            subscription = db.session.execute(
                select(Subscription)
                .where(Subscription.customer_id == customer.id)
                .order_by(Subscription.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        return {"user": user, "customer": customer, "subscription": subscription}

    @staticmethod
    @transactional
    def purge_expired_revocations() -> int:
        """Revoked tokens past their expiry are refused anyway; forget them."""
        result = db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
        return result.rowcount or 0

    @staticmethod
    def _email_in_use(email: str) -> bool:
        return db.session.execute(select(User.id).where(User.email == email)).first() is not None
