"""Accounts: login identities, their sessions, and the buying profile of a user with its subscription."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import (
    EmailString,
    HexDigest,
    PreciseDateTime,
    Timestamps,
    string_enum,
    unique_constraint,
    utcnow,
)

EMAIL_IN_USE = "An account with this email already exists."


class Role(enum.StrEnum):
    STUDENT = "student"
    ADMIN = "admin"


class User(Timestamps, db.Model):
    __tablename__ = "users"
    __table_args__ = (unique_constraint("email", field="email", message=EMAIL_IN_USE),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(EmailString)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(120))
    phone_number: Mapped[str | None] = mapped_column(String(20))
    role: Mapped[Role] = mapped_column(string_enum(Role))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # When the owner proved the mailbox (a verification link, or a password reset); NULL:
    # not yet, and the account cannot pay (README "Accounts").
    email_verified_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)

    # Loaded together with the user when a request is authenticated (see AuthService.principal).
    customer: Mapped[Customer | None] = relationship(back_populates="user", lazy="raise", uselist=False)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"


class UserSession(db.Model):
    """One login: the access and refresh tokens it issued (and the access tokens refreshed
    from them) carry its id as the `sid` claim. A token is accepted only while its
    session has not ended, which every request checks in the database (AuthService.principal)."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    # The last instant any token of the session can still be valid (see AuthService.start_session).
    expires_at: Mapped[datetime] = mapped_column(PreciseDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - not a secret


TOKEN_CLASH = "This token exists already."  # noqa: S105 - not a secret


class AccountToken(db.Model):
    """A secret mailed to the owner of an account (email verification, password reset).

    Only its SHA-256 is stored; it is used once (`used_at`, set by a conditional UPDATE
    that exactly one of two racing requests wins) and only until `expires_at`."""

    __tablename__ = "account_tokens"
    __table_args__ = (unique_constraint("token_sha256", field="token", message=TOKEN_CLASH),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(string_enum(TokenPurpose))
    token_sha256: Mapped[str] = mapped_column(HexDigest)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(PreciseDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)


EMAIL_TAKEN = "A customer with this email already exists."
PHONE_TAKEN = "A customer with this phone number already exists."
ALREADY_CUSTOMER = "This account already is a customer."


class Customer(Timestamps, db.Model):
    __tablename__ = "customers"
    __table_args__ = (
        unique_constraint("email", field="email", message=EMAIL_TAKEN),
        unique_constraint("phone_number", field="phone_number", message=PHONE_TAKEN),
        unique_constraint("user_id", field=None, message=ALREADY_CUSTOMER),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(EmailString)
    phone_number: Mapped[str] = mapped_column(String(20))

    user: Mapped[User] = relationship(back_populates="customer", lazy="raise")
    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="customer", lazy="raise", order_by="Subscription.id"
    )


class Plan(enum.StrEnum):
    BASIC = "basic"
    PREMIUM = "premium"


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Subscription(db.Model):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    plan: Mapped[Plan] = mapped_column(string_enum(Plan))
    status: Mapped[SubscriptionStatus] = mapped_column(string_enum(SubscriptionStatus))
    started_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)

    customer: Mapped[Customer] = relationship(back_populates="subscriptions", lazy="raise")
