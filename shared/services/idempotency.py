"""Idempotency-Key for POSTs, after the IETF httpapi draft and Stripe's API.

A key is claimed in a short transaction of its own, so that concurrent requests with the
same key see it at once. The operation then runs, and its outcome is recorded on the key
in the operation's own transaction: a purchase and the record of it commit together.
A retry with the same key and body replays that outcome; the same key with another body
is a 422; a retry while the first is still running is a 409. Keys live 24 hours.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from shared.errors import Conflict, ConstraintConflict, ProblemError, ValidationFailed
from shared.extensions import db
from shared.models import IdempotencyKey
from shared.models.base import utcnow
from shared.services.base import transactional

log = logging.getLogger(__name__)

KEY_LIFETIME = timedelta(hours=24)
# A claim older than this without an outcome belongs to a request that died (every
# request ends far sooner: database read timeout, gunicorn timeout); a retry may take over.
ABANDONED_AFTER = timedelta(seconds=120)
MAX_KEY_LENGTH = 255
HEADER = "Idempotency-Key"


def _in_flight() -> Conflict:
    return Conflict(
        f"A request with this {HEADER} is still being processed; retry in a moment.",
        slug="idempotency-key-in-flight",
        headers={"Retry-After": "1"},
    )


def parse_key(raw: str | None) -> str | None:
    """The header's key: an sf-string (`"abc"`) or a bare token, 1..255 characters."""
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        message = f"The {HEADER} header must hold 1 to {MAX_KEY_LENGTH} printable characters."
        raise ValidationFailed(message, errors={HEADER: [message]})
    return key


def fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """A key this request holds; `replay` is set when the outcome already exists."""

    key_id: int
    replay: dict[str, Any] | None = None


class IdempotencyService:
    @staticmethod
    def claim(customer_id: int, key: str, request_fingerprint: str) -> Claim:
        try:
            return IdempotencyService._insert_claim(customer_id, key, request_fingerprint)
        except ConstraintConflict as exc:
            if exc.constraint != IdempotencyKey.one_use_per_key.name:
                raise
        return IdempotencyService._existing_claim(customer_id, key, request_fingerprint)

    @staticmethod
    @transactional
    def _insert_claim(customer_id: int, key: str, request_fingerprint: str) -> Claim:
        row = IdempotencyKey(customer_id=customer_id, key=key, request_fingerprint=request_fingerprint)
        db.session.add(row)
        db.session.flush()
        return Claim(key_id=row.id)

    @staticmethod
    @transactional
    def _existing_claim(customer_id: int, key: str, request_fingerprint: str) -> Claim:
        row = db.session.execute(
            select(IdempotencyKey).where(IdempotencyKey.customer_id == customer_id, IdempotencyKey.key == key)
        ).scalar_one()
        now = utcnow()
        if row.created_at < now - KEY_LIFETIME:
            # Expired but not purged yet: the key starts a new life.
            return IdempotencyService._take_over(row, request_fingerprint, now)
        if row.request_fingerprint != request_fingerprint:
            message = f"This {HEADER} was used with a different request; use a new key for a new request."
            raise ValidationFailed(message, errors={HEADER: [message]}, slug="idempotency-key-reused")
        if row.response_body is not None:
            return Claim(key_id=row.id, replay=row.response_body)
        if row.created_at < now - ABANDONED_AFTER:
            return IdempotencyService._take_over(row, request_fingerprint, now)
        raise _in_flight()

    @staticmethod
    def _take_over(row: IdempotencyKey, request_fingerprint: str, now: Any) -> Claim:
        """Compare-and-set, so that of two retries taking over one key only one wins."""
        taken = db.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row.id, IdempotencyKey.created_at == row.created_at)
            .values(
                request_fingerprint=request_fingerprint,
                created_at=now,
                response_status=None,
                response_body=None,
                completed_at=None,
            )
        )
        if taken.rowcount != 1:
            raise _in_flight()
        return Claim(key_id=row.id)

    @staticmethod
    def record(claim: Claim, status: int, outcome: dict[str, Any]) -> None:
        """Store the outcome; call inside the operation's transaction."""
        db.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == claim.key_id)
            .values(response_status=status, response_body=outcome, completed_at=utcnow())
        )

    @staticmethod
    @transactional
    def record_problem(claim: Claim, problem: ProblemError) -> None:
        """A refused request is an outcome too: the retry gets the same refusal."""
        IdempotencyService.record(
            claim,
            problem.status,
            {
                "problem": {
                    "status": problem.status,
                    "slug": problem.slug,
                    "title": problem.title,
                    "detail": problem.detail,
                    "errors": problem.errors,
                    "extra": problem.extra,
                }
            },
        )

    @staticmethod
    @transactional
    def release(claim: Claim) -> None:
        """The operation failed unexpectedly and wrote nothing: free the key for a retry."""
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim.key_id))

    @staticmethod
    def replayed_problem(outcome: dict[str, Any]) -> ProblemError | None:
        stored = outcome.get("problem")
        if stored is None:
            return None
        problem = ProblemError(
            stored["detail"],
            errors=stored["errors"],
            extra=stored["extra"],
            title=stored["title"],
            slug=stored["slug"],
        )
        problem.status = stored["status"]
        return problem

    @staticmethod
    @transactional
    def purge_expired() -> int:
        result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEY_LIFETIME))
        return result.rowcount or 0
