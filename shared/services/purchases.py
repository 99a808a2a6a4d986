"""Buying subjects and bundles: server-side prices, each subject bought once, race-free.

A purchase, its items and all their test cards are written in one transaction. The
unique constraint on purchase_items (customer_id, subject_id) is what makes a subject
impossible to buy twice, also when identical requests race: the loser's transaction
fails on it, rolls back, and is answered from the winner's committed purchase.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import joinedload

from shared.errors import Conflict, NotFound, ValidationFailed
from shared.extensions import db
from shared.models import (
    Bundle,
    Course,
    ItemState,
    MockTestAttempt,
    Provider,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
    PurchaseType,
    Subject,
    User,
)
from shared.models.base import utcnow
from shared.services.accounts import CustomerService
from shared.services.base import Page, paginate, retry_on_lock_conflict, settle_race, transactional
from shared.services.cards import MockTestService
from shared.services.catalog import bundle_for_sale, course_for_sale, subject_for_sale
from shared.services.idempotency import Claim, record, run_idempotently

log = logging.getLogger(__name__)

CREATED, ALREADY_OWNED = "created", "already_owned"


@dataclass(frozen=True)
class PurchasedSubject:
    subject_id: int
    name: str
    price: Decimal
    cards: int


@dataclass(frozen=True)
class PurchaseView:
    id: int
    customer_id: int
    purchase_type: PurchaseType
    course_id: int | None
    bundle_id: int | None
    total_cost: Decimal
    currency: str
    created_at: datetime
    subjects: list[PurchasedSubject]

    @property
    def cards_total(self) -> int:
        return sum(subject.cards for subject in self.subjects)


@dataclass(frozen=True)
class PurchaseResult:
    """`created` (one new purchase) or `already_owned` (the purchases that own the subjects)."""

    status: str
    purchases: list[PurchaseView]
    cards_created: int
    replayed: bool = False

    @property
    def purchase(self) -> PurchaseView | None:
        return self.purchases[0] if self.status == CREATED else None

    def outcome(self) -> dict[str, Any]:
        """What an Idempotency-Key stores to replay this result."""
        return {
            "status": self.status,
            "purchase_ids": [view.id for view in self.purchases],
            "cards_created": self.cards_created,
        }


@dataclass
class _Order:
    """A validated request: what would be bought, and at which price."""

    purchase_type: PurchaseType
    subjects: list[Subject]
    price: Decimal
    course_id: int | None
    bundle_id: int | None
    subject_field: str = "subject_ids"
    subject_ids: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.subject_ids = sorted(subject.id for subject in self.subjects)


class PurchaseService:
    @staticmethod
    def purchase(user: User, data: dict[str, Any], idempotency_key: str | None = None) -> PurchaseResult:
        customer_id = CustomerService.customer_id_of(user)
        return run_idempotently(
            customer_id,
            idempotency_key,
            data,
            run=lambda claim: settle_race(
                # A concurrent request bought (some of) these subjects first: decide again on
                # what is now committed, already owned (200) or partly owned (409).
                lambda: PurchaseService._purchase_once(customer_id, data, claim),
                lambda _: PurchaseService._purchase_once(customer_id, data, claim),
                lost_on=[PurchaseItem.one_owner_per_subject],
            ),
            replay=PurchaseService._replay,
        )

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _purchase_once(customer_id: int, data: dict[str, Any], claim: Claim | None) -> PurchaseResult:
        order = PurchaseService._order(data)
        owned = set(
            db.session.execute(
                select(PurchaseItem.subject_id).where(
                    PurchaseItem.active_customer_id == customer_id, PurchaseItem.subject_id.in_(order.subject_ids)
                )
            ).scalars()
        )
        if owned == set(order.subject_ids):
            result = PurchaseService._already_owned(customer_id, order.subject_ids)
        elif owned:
            raise Conflict(
                "Some of these subjects are already owned; buy only the others. Nothing was bought.",
                errors={order.subject_field: [f"Already owned: {', '.join(map(str, sorted(owned)))}."]},
                extra={"owned_subject_ids": sorted(owned)},
                slug="subjects-already-owned",
            )
        else:
            PurchaseService._check_cost(data.get("cost"), order.price)
            result = PurchaseService._create(customer_id, order)
        record(claim, result.outcome())
        return result

    @staticmethod
    def _create(customer_id: int, order: _Order) -> PurchaseResult:
        purchase = Purchase(
            customer_id=customer_id,
            purchase_type=order.purchase_type,
            course_id=order.course_id,
            bundle_id=order.bundle_id,
            total_cost=order.price,
            currency=current_app.config["CURRENCY"],
            created_at=utcnow(),
            status=PurchaseStatus.PAID,
            provider=Provider.NONE,
            refund_due=Decimal("0.00"),
        )
        purchase.paid_at = purchase.created_at
        db.session.add(purchase)
        db.session.flush()
        db.session.execute(
            insert(PurchaseItem.__table__),
            [
                {
                    "purchase_id": purchase.id,
                    "customer_id": customer_id,
                    "subject_id": subject.id,
                    "price": subject.price,
                    "created_at": purchase.created_at,
                    "state": ItemState.ACTIVE.value,
                    "active_customer_id": customer_id,
                }
                for subject in sorted(order.subjects, key=lambda s: s.id)
            ],
        )
        cards = MockTestService.create_test_cards_for_purchase(purchase)
        # Everything the answer shows was just written: no need to read it back.
        per_subject = current_app.config["MOCK_TESTS_PER_SUBJECT"]
        subjects = [
            PurchasedSubject(subject.id, subject.name, subject.price, per_subject)
            for subject in sorted(order.subjects, key=lambda s: s.id)
        ]
        return PurchaseResult(
            status=CREATED, purchases=[PurchaseService._view(purchase, subjects)], cards_created=cards.created
        )

    @staticmethod
    def _already_owned(customer_id: int, subject_ids: list[int]) -> PurchaseResult:
        purchase_ids = select(PurchaseItem.purchase_id).where(
            PurchaseItem.active_customer_id == customer_id, PurchaseItem.subject_id.in_(subject_ids)
        )
        views = PurchaseService._views(select(Purchase).where(Purchase.id.in_(purchase_ids)).order_by(Purchase.id))
        return PurchaseResult(status=ALREADY_OWNED, purchases=views, cards_created=0)

    @staticmethod
    def _replay(outcome: dict[str, Any]) -> PurchaseResult:
        views = PurchaseService._views(
            select(Purchase).where(Purchase.id.in_(outcome["purchase_ids"])).order_by(Purchase.id)
        )
        return PurchaseResult(
            status=outcome["status"], purchases=views, cards_created=outcome["cards_created"], replayed=True
        )

    # ------------------------------------------------------------------ the order

    @staticmethod
    def _order(data: dict[str, Any]) -> _Order:
        """What the request buys; 422 on each field naming what is not for sale."""
        purchase_type: PurchaseType = data["purchase_type"]
        course_id = data.get("course_id")
        errors: dict[str, list[str]] = {}
        if (
            course_id is not None
            and not db.session.execute(select(Course.id).where(Course.id == course_id, course_for_sale())).first()
        ):
            errors["course_id"] = ["There is no course for sale with this id."]
        if purchase_type is PurchaseType.BUNDLE:
            order, subject_field, problems = PurchaseService._bundle_order(data["bundle_id"], course_id)
        else:
            order, subject_field, problems = PurchaseService._subjects_order(data, course_id)
        if problems:
            errors[subject_field] = problems
        if errors or order is None:
            raise ValidationFailed(
                " ".join(message for messages in errors.values() for message in messages), errors=errors
            )
        return order

    @staticmethod
    def _subjects_order(data: dict[str, Any], course_id: int | None) -> tuple[_Order | None, str, list[str]]:
        if data["purchase_type"] is PurchaseType.SINGLE_SUBJECT:
            ids, subject_field = [data["subject_id"]], "subject_id"
        else:
            ids, subject_field = data["subject_ids"], "subject_ids"
        subjects = list(db.session.execute(select(Subject).where(Subject.id.in_(ids), subject_for_sale())).scalars())
        problems = PurchaseService._subject_problems(ids, subjects, course_id)
        if problems:
            return None, subject_field, problems
        courses = {subject.course_id for subject in subjects}
        order = _Order(
            purchase_type=data["purchase_type"],
            subjects=subjects,
            price=sum((subject.price for subject in subjects), Decimal("0.00")),
            course_id=course_id if course_id is not None else (courses.pop() if len(courses) == 1 else None),
            bundle_id=None,
            subject_field=subject_field,
        )
        return order, subject_field, []

    @staticmethod
    def _bundle_order(bundle_id: int, course_id: int | None) -> tuple[_Order | None, str, list[str]]:
        bundle = (
            db.session.execute(
                select(Bundle).where(Bundle.id == bundle_id, bundle_for_sale()).options(joinedload(Bundle.subjects))
            )
            .unique()
            .scalar_one_or_none()
        )
        if bundle is None:
            return None, "bundle_id", ["There is no bundle for sale with this id."]
        if course_id is not None and bundle.course_id != course_id:
            return None, "bundle_id", ["This bundle belongs to another course."]
        order = _Order(
            purchase_type=PurchaseType.BUNDLE,
            subjects=list(bundle.subjects),
            price=bundle.price,
            course_id=bundle.course_id,
            bundle_id=bundle.id,
        )
        return order, "bundle_id", []

    @staticmethod
    def _subject_problems(ids: list[int], subjects: list[Subject], course_id: int | None) -> list[str]:
        """`subjects` are those of `ids` that are for sale."""
        found = {subject.id for subject in subjects}
        unknown = [sid for sid in ids if sid not in found]
        elsewhere = [s.id for s in subjects if course_id is not None and s.course_id != course_id]
        problems = []
        if unknown:
            problems.append(f"No subject for sale with id {', '.join(map(str, unknown))}.")
        if elsewhere:
            problems.append(f"Not in course {course_id}: {', '.join(map(str, elsewhere))}.")
        return problems

    @staticmethod
    def _check_cost(sent: Decimal | None, price: Decimal) -> None:
        if sent is None or sent == price:
            return
        currency = current_app.config["CURRENCY"]
        message = f"The price is {price} {currency}, not {sent}. Nothing was bought."
        raise Conflict(
            message,
            errors={"cost": [message]},
            extra={"current_price": str(price), "currency": currency},
            slug="price-changed",
        )

    # ------------------------------------------------------------------ reads

    @staticmethod
    def list_purchases(user: User, page: int, per_page: int, customer_id: int | None) -> Page[PurchaseView]:
        statement = select(Purchase).order_by(Purchase.id.desc())
        if user.is_admin:
            if customer_id is not None:
                statement = statement.where(Purchase.customer_id == customer_id)
        else:
            statement = statement.where(Purchase.customer_id == CustomerService.customer_id_of(user))
        purchases = paginate(statement, page, per_page)
        views = PurchaseService._views_of(purchases.items)
        return Page(items=views, page=purchases.page, per_page=purchases.per_page, total=purchases.total)

    @staticmethod
    def get_purchase(user: User, purchase_id: int) -> PurchaseView:
        statement = select(Purchase).where(Purchase.id == purchase_id)
        if not user.is_admin:
            statement = statement.where(Purchase.customer_id == CustomerService.customer_id_of(user))
        views = PurchaseService._views(statement)
        if not views:
            raise NotFound("There is no purchase of yours with this id.")
        return views[0]

    @staticmethod
    def _views(statement: Select[tuple[Purchase]]) -> list[PurchaseView]:
        return PurchaseService._views_of(list(db.session.execute(statement).scalars()))

    @staticmethod
    def _views_of(purchases: list[Purchase]) -> list[PurchaseView]:
        """Items, subject names and card counts of these purchases in three statements."""
        if not purchases:
            return []
        ids = [purchase.id for purchase in purchases]
        items = db.session.execute(
            select(PurchaseItem.purchase_id, PurchaseItem.subject_id, PurchaseItem.price, Subject.name)
            .join(Subject, Subject.id == PurchaseItem.subject_id)
            .where(PurchaseItem.purchase_id.in_(ids))
            .order_by(PurchaseItem.purchase_id, PurchaseItem.subject_id)
        ).all()
        cards = {
            (purchase_id, subject_id): count
            for purchase_id, subject_id, count in db.session.execute(
                select(MockTestAttempt.purchase_id, MockTestAttempt.subject_id, func.count())
                .where(MockTestAttempt.purchase_id.in_(ids))
                .group_by(MockTestAttempt.purchase_id, MockTestAttempt.subject_id)
            )
        }
        subjects: dict[int, list[PurchasedSubject]] = {purchase_id: [] for purchase_id in ids}
        for purchase_id, subject_id, price, name in items:
            subjects[purchase_id].append(
                PurchasedSubject(subject_id, name, price, cards.get((purchase_id, subject_id), 0))
            )
        return [PurchaseService._view(p, subjects[p.id]) for p in purchases]

    @staticmethod
    def _view(purchase: Purchase, subjects: list[PurchasedSubject]) -> PurchaseView:
        return PurchaseView(
            id=purchase.id,
            customer_id=purchase.customer_id,
            purchase_type=purchase.purchase_type,
            course_id=purchase.course_id,
            bundle_id=purchase.bundle_id,
            total_cost=purchase.total_cost,
            currency=purchase.currency,
            created_at=purchase.created_at,
            subjects=subjects,
        )
