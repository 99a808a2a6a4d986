"""Test cards: creating them for purchases (and, later, taking the tests)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import and_, func, insert, select

from shared.extensions import db
from shared.models import CardStatus, MockTestAttempt, Purchase, PurchaseItem
from shared.models.base import utcnow
from shared.services.base import transactional


@dataclass(frozen=True)
class CardsReport:
    created: int
    existing: int
    per_subject: dict[int, int]

    @property
    def total(self) -> int:
        return self.created + self.existing


class MockTestService:
    @staticmethod
    @transactional
    def create_test_cards_for_purchase(purchase: Purchase) -> CardsReport:
        """Cards 1..MOCK_TESTS_PER_SUBJECT for each subject of the purchase that lacks them.

        Idempotent: for a purchase that has its cards it creates nothing and reports them.
        The rows go in one executemany call, which PyMySQL sends as one multi-row
        `INSERT ... VALUES (...), (...)` (split only past 1 MB); no RETURNING is needed.
        """
        per_subject = current_app.config["MOCK_TESTS_PER_SUBJECT"]
        counts = dict(
            db.session.execute(
                select(PurchaseItem.subject_id, func.count(MockTestAttempt.id))
                .select_from(PurchaseItem)
                .outerjoin(
                    MockTestAttempt,
                    and_(
                        MockTestAttempt.purchase_id == PurchaseItem.purchase_id,
                        MockTestAttempt.subject_id == PurchaseItem.subject_id,
                    ),
                )
                .where(PurchaseItem.purchase_id == purchase.id)
                .group_by(PurchaseItem.subject_id)
            ).all()
        )
        incomplete = sorted(subject_id for subject_id, count in counts.items() if count < per_subject)
        taken: set[tuple[int, int]] = set()
        if any(counts[subject_id] for subject_id in incomplete):
            taken = set(
                db.session.execute(
                    select(MockTestAttempt.subject_id, MockTestAttempt.test_number).where(
                        MockTestAttempt.purchase_id == purchase.id, MockTestAttempt.subject_id.in_(incomplete)
                    )
                ).all()
            )
        now = utcnow()
        rows = [
            {
                "purchase_id": purchase.id,
                "subject_id": subject_id,
                "test_number": number,
                "status": CardStatus.AVAILABLE,
                "created_at": now,
                "updated_at": now,
            }
            for subject_id in incomplete
            for number in range(1, per_subject + 1)
            if (subject_id, number) not in taken
        ]
        if rows:
            db.session.execute(insert(MockTestAttempt.__table__), rows)
        return CardsReport(
            created=len(rows),
            existing=sum(counts.values()),
            per_subject={subject_id: max(count, per_subject) for subject_id, count in counts.items()},
        )
