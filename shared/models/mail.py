"""Mail: the outbox of messages written together with the change that caused them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.base import PreciseDateTime, string_enum, utcnow


class MailKind(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - not a secret


class MailStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for `flask send-mail`, or for its next attempt
    SENT = "sent"
    FAILED = "failed"  # gave up after MAIL_MAX_ATTEMPTS


class OutboxMessage(db.Model):
    """One message to send. Written in the transaction of the change that caused it, sent
    later by `flask send-mail` (MailService.send_due): a worker claims a batch by setting
    `claim` and pushing `next_attempt_at` past its lease, commits, sends outside any
    transaction, then marks each message sent, or due again after a backoff, only while
    its claim is still the one it set."""

    __tablename__ = "outbox_messages"
    # What `flask send-mail` looks for: pending messages that are due.
    __table_args__ = (Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[MailKind] = mapped_column(string_enum(MailKind, length=24))
    recipient: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[MailStatus] = mapped_column(string_enum(MailStatus), default=MailStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Pending: when it is due. Claimed: when the claim's lease ends (then it is due again).
    next_attempt_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    claim: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
