"""Helpers the models use to declare constraints together with their client message."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Enum, String, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import DateTime

# Keys of `Constraint.info` read by the IntegrityError translator in shared.errors.
PROBLEM_FIELD = "problem_field"
PROBLEM_MESSAGE = "problem_message"

# Emails are lower-cased before they are stored; a binary collation keeps MySQL from
# also folding accents (utf8mb4_unicode_ci holds "ädmin@x" equal to "admin@x"), so the
# database compares exactly what the application compares.
EmailString = String(255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb")

# A lower-case hex SHA-256, compared byte for byte (ascii_bin; 64 characters, no spaces
# for PAD SPACE to ignore).
HexDigest = String(64).with_variant(mysql.VARCHAR(64, charset="ascii", collation="ascii_bin"), "mysql", "mariadb")

# DATETIME(6) on MySQL/MariaDB: sub-second precision, as CTFd learned the hard way.
PreciseDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def utcnow() -> datetime:
    """Naive UTC now: DATETIME columns carry no zone, and every value we store is UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def unique_constraint(*columns: str, field: str | None, message: str, name: str | None = None) -> UniqueConstraint:
    """A unique constraint that a violation reports to the client as `errors[field] = [message]`.

    Leave `name` empty to get the naming convention's name; give it only for names
    that deployed databases already carry.
    """
    return UniqueConstraint(*columns, name=name, info={PROBLEM_FIELD: field, PROBLEM_MESSAGE: message})


def string_enum(enum_class: type[enum.Enum], length: int = 16) -> Enum:
    """A Python enum stored as its values in a VARCHAR (no native ENUM to migrate)."""
    return Enum(
        enum_class,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class Timestamps:
    """created_at and updated_at, in UTC with sub-second precision."""

    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow, onupdate=utcnow)
