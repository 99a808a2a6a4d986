"""The buying profile of a user, and its subscription."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import (
    EmailString,
    PreciseDateTime,
    Timestamps,
    string_enum,
    unique_constraint,
    utcnow,
)
from shared.models.user import User

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
