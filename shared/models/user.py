"""Login identities and their sessions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db

if TYPE_CHECKING:
    from shared.models.customer import Customer
from shared.models.base import (
    EmailString,
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
