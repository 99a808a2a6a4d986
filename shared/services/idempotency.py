"""Idempotency-Key for POSTs, after the IETF httpapi draft and Stripe's API.

A key is claimed in a short transaction of its own, so that concurrent requests with the
same key see it at once. The operation then runs, and its outcome is recorded on the key
in the operation's own transaction: a purchase and the record of it commit together.
A retry with the same key and body replays that outcome; the same key with another body
is a 422; a retry while the first is still running is a 409. Keys live 24 hours.

Keys are compared byte for byte, by the SHA-256 of their UTF-8 bytes. A claim without an
outcome is taken over by a retry once IDEMPOTENCY_CLAIM_TIMEOUT has passed (its request
died, or is stuck past every database timeout); `Retry-After` says when that will be. The
claim's `created_at` is its fencing token: an outcome is recorded only while the claim
is still the one this request made, so a request that was taken over rolls back instead
of committing a second outcome. Row locks could tell a live claim from a dead one at
once, but not across Galera nodes (locks are local to a node), and not in the gap
between the claim's commit and the operation's first lock, so the window stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import delete, select, update

from shared.errors import Conflict, ProblemError, ValidationFailed
from shared.extensions import db
from shared.models import IdempotencyKey
from shared.models.base import utcnow
from shared.services.base import retry_on_lock_conflict, settle_race, transactional

log = logging.getLogger(__name__)
R = TypeVar("R")

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
HEADER = "Idempotency-Key"
_MALFORMED = f"The {HEADER} header must hold 1 to {MAX_KEY_LENGTH} printable characters, bare or as a quoted string."


def claim_timeout() -> timedelta:
    return timedelta(seconds=current_app.config["IDEMPOTENCY_CLAIM_TIMEOUT"])


def _in_flight(retry_after: timedelta) -> Conflict:
    seconds = max(1, math.ceil(retry_after.total_seconds()))
    return Conflict(
        f"A request with this {HEADER} is still being processed; retry in a moment.",
        slug="idempotency-key-in-flight",
        headers={"Retry-After": str(seconds)},
    )


def parse_key(raw: str | None) -> str | None:
    r"""The header's key: a bare value (`abc`, as Stripe's clients send it) or an sf-string
    (`"abc"`, the IETF draft's form: RFC 8941 3.3.3, also taking non-ASCII printables).

    Whitespace around the value is not part of it (HTTP trims it, and so does the
    structured-field parser); inside the quotes every character counts, and `"` and
    `\` are the only escapes. What this returns is compared byte for byte.
    """
    if raw is None:
        return None
    key = raw.strip(" \t")
    if key.startswith('"'):
        key = _sf_string(key)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(_MALFORMED, errors={HEADER: [_MALFORMED]})
    return key


def _sf_string(quoted: str) -> str:
    chars: list[str] = []
    position = 1
    while position < len(quoted):
        char = quoted[position]
        if char == "\\" and position + 1 < len(quoted) and quoted[position + 1] in '"\\':
            chars.append(quoted[position + 1])
            position += 2
        elif char == '"' and position == len(quoted) - 1:
            return "".join(chars)
        elif char in '"\\':
            break
        else:
            chars.append(char)
            position += 1
    raise ValidationFailed(_MALFORMED, errors={HEADER: [_MALFORMED]})


def key_digest(key: str) -> str:
    """What keys are compared by: the SHA-256 of the key's UTF-8 bytes, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """A key this request holds since `claimed_at`; `replay` is set when the outcome already exists."""

    key_id: int
    claimed_at: datetime
    replay: dict[str, Any] | None = None


class IdempotencyService:
    @staticmethod
    def claim(customer_id: int, key: str, request_fingerprint: str) -> Claim:
        return settle_race(
            lambda: IdempotencyService._insert_claim(customer_id, key, request_fingerprint),
            lambda _: IdempotencyService._existing_claim(customer_id, key, request_fingerprint),
            lost_on=[IdempotencyKey.one_use_per_key],
        )

    @staticmethod
    # On Galera the loser of two claims made on two nodes fails certification at COMMIT
    # (a deadlock, not a duplicate key): run again, it then meets the winner's row.
    @retry_on_lock_conflict
    @transactional
    def _insert_claim(customer_id: int, key: str, request_fingerprint: str) -> Claim:
        row = IdempotencyKey(
            customer_id=customer_id,
            key=key,
            key_sha256=key_digest(key),
            request_fingerprint=request_fingerprint,
            created_at=utcnow(),
        )
        db.session.add(row)
        db.session.flush()
        return Claim(key_id=row.id, claimed_at=row.created_at)

    @staticmethod
    @transactional
    def _existing_claim(customer_id: int, key: str, request_fingerprint: str) -> Claim:
        row = db.session.execute(
            select(IdempotencyKey).where(
                IdempotencyKey.customer_id == customer_id, IdempotencyKey.key_sha256 == key_digest(key)
            )
        ).scalar_one()
        now = utcnow()
        if row.created_at < now - KEY_LIFETIME:
            # Expired but not purged yet: the key starts a new life.
            return IdempotencyService._take_over(row, request_fingerprint, now)
        if row.request_fingerprint != request_fingerprint:
            message = f"This {HEADER} was used with a different request; use a new key for a new request."
            raise ValidationFailed(message, errors={HEADER: [message]}, slug="idempotency-key-reused")
        if row.completed_at is not None:
            return Claim(key_id=row.id, claimed_at=row.created_at, replay=row.response_body)
        abandoned_at = row.created_at + claim_timeout()
        if abandoned_at <= now:
            return IdempotencyService._take_over(row, request_fingerprint, now)
        raise _in_flight(abandoned_at - now)

    @staticmethod
    def _take_over(row: IdempotencyKey, request_fingerprint: str, now: datetime) -> Claim:
        """Compare-and-set, so that of two retries taking over one key only one wins."""
        unchanged = [IdempotencyKey.id == row.id, IdempotencyKey.created_at == row.created_at]
        if row.completed_at is None:
            unchanged.append(IdempotencyKey.completed_at.is_(None))
        taken = db.session.execute(
            update(IdempotencyKey)
            .where(*unchanged)
            .values(
                request_fingerprint=request_fingerprint,
                created_at=now,
                response_status=None,
                response_body=None,
                completed_at=None,
            )
        )
        if taken.rowcount != 1:
            # Another retry took it over a moment ago (or the first just finished).
            raise _in_flight(claim_timeout())
        return Claim(key_id=row.id, claimed_at=now)

    @staticmethod
    def record_if_held(claim: Claim, status: int | None, outcome: dict[str, Any]) -> bool:
        recorded = db.session.execute(
            update(IdempotencyKey)
            .where(*IdempotencyService._held(claim))
            .values(response_status=status, response_body=outcome, completed_at=utcnow())
        )
        return recorded.rowcount == 1

    @staticmethod
    def _held(claim: Claim) -> tuple[Any, ...]:
        """The claim's row, as long as no retry has taken it over (the fencing token)."""
        return (
            IdempotencyKey.id == claim.key_id,
            IdempotencyKey.created_at == claim.claimed_at,
            IdempotencyKey.completed_at.is_(None),
        )

    @staticmethod
    @transactional
    def record_problem(claim: Claim, problem: ProblemError) -> None:
        """A refused request is an outcome too: the retry gets the same refusal."""
        IdempotencyService.record_if_held(
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
        db.session.execute(delete(IdempotencyKey).where(*IdempotencyService._held(claim)))

    @staticmethod
    def release_quietly(claim: Claim) -> None:
        try:
            IdempotencyService.release(claim)
        except Exception:
            log.warning("could not release idempotency key %s", claim.key_id, exc_info=True)

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


def record(claim: Claim | None, outcome: dict[str, Any]) -> None:
    """Store the operation's outcome on its key, inside the operation's transaction (which
    it fails if a retry took the key over). Without a key, nothing to store."""
    if claim is not None and not IdempotencyService.record_if_held(claim, None, outcome):
        raise _in_flight(claim_timeout())


def run_idempotently(
    customer_id: int,
    key: str | None,
    request: dict[str, Any],
    *,
    run: Callable[[Claim | None], R],
    replay: Callable[[dict[str, Any]], R],
) -> R:
    """Claim the key, run the operation, and record its refusal or release the key.

    `run(claim)` is the operation: it stores its outcome with `record(claim, ...)` in its
    own transaction. A key whose outcome exists is answered by `replay(outcome)` (or the
    refusal it recorded) without running anything. Without a key, `run(None)` alone.
    """
    if key is None:
        return run(None)
    claim = IdempotencyService.claim(customer_id, key, fingerprint(request))
    if claim.replay is not None:
        refusal = IdempotencyService.replayed_problem(claim.replay)
        if refusal is not None:
            raise refusal
        return replay(claim.replay)
    try:
        return run(claim)
    except ProblemError as problem:
        if problem.status < 500:
            IdempotencyService.record_problem(claim, problem)
        else:
            IdempotencyService.release_quietly(claim)
        raise
    except Exception:
        IdempotencyService.release_quietly(claim)
        raise
