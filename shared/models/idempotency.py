"""The stored outcome of a POST sent with an Idempotency-Key header."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.base import HexDigest, PreciseDateTime, unique_constraint, utcnow


class IdempotencyKey(db.Model):
    """The stored outcome of a POST sent with an Idempotency-Key header."""

    __tablename__ = "idempotency_keys"
    # Keys are unique by the SHA-256 of their UTF-8 bytes: no collation (not even
    # utf8mb4_bin, which is PAD SPACE) then folds case, accents or trailing spaces.
    one_use_per_key = unique_constraint(
        "customer_id", "key_sha256", field="Idempotency-Key", message="This Idempotency-Key is already in use."
    )
    __table_args__ = (one_use_per_key,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    key_sha256: Mapped[str] = mapped_column(HexDigest)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(PreciseDateTime)
