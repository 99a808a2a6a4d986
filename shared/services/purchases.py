"""Buying subjects and bundles: server-side prices, each subject owned once, race-free.

With a payment provider a purchase is a checkout: `POST /api/purchases` fixes the price and
opens the provider's order (`pending_payment`, nothing owned); the money is confirmed by the
SPA (`confirm_payment`, signature checked and the payment asked of the provider), by the
provider's webhook, or by `reconcile`, and whichever comes first fulfils the purchase:
`paid`, its items active with their access period, and their test cards, in one
transaction (`_fulfil`: the purchase's row lock and its state decide, once). Without a
provider (`PAYMENT_PROVIDER=none`) and for an admin's comp grant, the purchase is fulfilled
at once, as before payments existed.

The unique constraint on purchase_items (active_customer_id, subject_id) is what makes a
subject impossible to own twice at once, also when requests race: the loser's transaction
fails on it, rolls back, and decides again on what the winner committed (already owned;
or, for a second paid checkout, the surplus recorded as due for refund).
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import joinedload

from shared.errors import BadRequest, Conflict, NotFound, ValidationFailed
from shared.extensions import db
from shared.models import (
    Bundle,
    Course,
    ItemState,
    MockTestAttempt,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Provider,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
    PurchaseType,
    Refund,
    RefundStatus,
    Subject,
)
from shared.models.base import utcnow
from shared.models.purchases import PAYABLE, SETTLED
from shared.services.accounts import CustomerService, Principal, email_unverified
from shared.services.base import Page, RowPager, retry_on_lock_conflict, settle_race, transactional
from shared.services.cards import MockTestService
from shared.services.catalog import bundle_for_sale, course_for_sale, subject_for_sale
from shared.services.idempotency import Claim, record, run_idempotently
from shared.services.payments import (
    PaymentProvider,
    ProviderPayment,
    ProviderUnavailable,
    SandboxProvider,
    payment_provider,
    provider_named,
    to_paise,
)

log = logging.getLogger(__name__)

CREATED, ALREADY_OWNED, PENDING_PAYMENT, PAID = "created", "already_owned", "pending_payment", "paid"
TWO_PLACES = Decimal("0.01")
NO_PURCHASE = "There is no purchase of yours with this id."
# Webhook events that carry a captured payment, one that failed, and refunds' outcomes.
PAID_EVENTS = ("payment.captured", "order.paid")
FAILED_EVENT = "payment.failed"
REFUND_EVENTS = {"refund.processed": RefundStatus.PROCESSED, "refund.failed": RefundStatus.FAILED}


@dataclass(frozen=True)
class PurchasedSubject:
    subject_id: int
    name: str
    price: Decimal
    cards: int
    state: ItemState = ItemState.ACTIVE
    access_until: datetime | None = None


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
    status: PurchaseStatus = PurchaseStatus.PAID
    provider: Provider = Provider.NONE
    provider_order_id: str | None = None
    expires_at: datetime | None = None
    paid_at: datetime | None = None
    refund_due: Decimal = Decimal("0.00")
    granted_by_id: int | None = None

    @property
    def cards_total(self) -> int:
        return sum(subject.cards for subject in self.subjects)


@dataclass(frozen=True)
class PaymentInstructions:
    """What the SPA hands Razorpay Checkout (`order_id`, `amount` in paise, `key`)."""

    provider: str
    provider_order_id: str
    amount: int
    currency: str
    key_id: str


@dataclass(frozen=True)
class PurchaseResult:
    """`created` (bought at once), `pending_payment` (a checkout waiting for its money),
    `paid` (a confirmed payment) or `already_owned` (the purchases that own the subjects)."""

    status: str
    purchases: list[PurchaseView]
    cards_created: int
    replayed: bool = False
    payment: PaymentInstructions | None = None

    @property
    def purchase(self) -> PurchaseView | None:
        return self.purchases[0] if self.status != ALREADY_OWNED else None

    def outcome(self) -> dict[str, Any]:
        """What an Idempotency-Key stores to replay this result."""
        return {
            "status": self.status,
            "purchase_ids": [view.id for view in self.purchases],
            "cards_created": self.cards_created,
            "payment": None if self.payment is None else self.payment.__dict__,
        }


@dataclass(frozen=True)
class WebhookOutcome:
    status: str  # processed, duplicate, ignored
    event: str
    detail: str = ""


@dataclass(frozen=True)
class SandboxCheckout:
    """What Razorpay Checkout hands the SPA's handler after a payment."""

    provider_order_id: str
    provider_payment_id: str
    signature: str | None
    outcome: str
    webhook: WebhookOutcome | None


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    purchase: PurchaseView


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    fulfilled: int = 0
    expired: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class _Order:
    """A validated request: what would be bought, and at which price."""

    purchase_type: PurchaseType
    subjects: list[Subject]
    price: Decimal
    course_id: int | None
    bundle_id: int | None
    subject_field: str = "subject_ids"
    # A bundle's access period, for all its subjects; else each subject's own.
    access_days: int | None = None
    subject_ids: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.subject_ids = sorted(subject.id for subject in self.subjects)


def _owned_now(now: datetime) -> Any:
    """An active entitlement whose access has not ended."""
    return or_(PurchaseItem.access_until.is_(None), PurchaseItem.access_until > now)


@functools.cache
def _purchase_pager(of_customer: bool) -> RowPager:
    """Purchases, newest first, as rows of the columns a `PurchaseView` is made of."""
    purchases = select(Purchase.id)
    if of_customer:
        purchases = purchases.where(Purchase.customer_id == bindparam("customer_id"))
    columns = (
        Purchase.id,
        Purchase.customer_id,
        Purchase.purchase_type,
        Purchase.course_id,
        Purchase.bundle_id,
        Purchase.total_cost,
        Purchase.currency,
        Purchase.created_at,
        Purchase.status,
        Purchase.provider,
        Purchase.provider_order_id,
        Purchase.expires_at,
        Purchase.paid_at,
        Purchase.refund_due,
        Purchase.granted_by_id,
    )
    return RowPager(purchases.with_only_columns(*columns).order_by(Purchase.id.desc()), counting=purchases)


class PurchaseService:
    @staticmethod
    def purchase(caller: Principal, data: dict[str, Any], idempotency_key: str | None = None) -> PurchaseResult:
        """Buy for the caller; an admin naming `customer_id` grants a comp purchase to that customer."""
        if caller.is_admin and data.get("customer_id") is not None:
            customer_id = CustomerService.get_customer(data["customer_id"]).id
            return PurchaseService._purchase(customer_id, data, idempotency_key, granted_by=caller.id)
        if data.get("customer_id") is not None:
            message = "Only admins grant purchases to a customer."
            raise ValidationFailed(message, errors={"customer_id": [message]})
        # Paying starts here (the checkout): only with a proven mailbox, where receipts and
        # refunds are told. Without a provider (demos, benchmarks) nobody pays, and an
        # admin's comp grant is the admin's decision.
        if not caller.email_verified and payment_provider().takes_payments:
            raise email_unverified()
        return PurchaseService._purchase(CustomerService.customer_id_of(caller), data, idempotency_key, None)

    @staticmethod
    def _purchase(
        customer_id: int, data: dict[str, Any], idempotency_key: str | None, granted_by: int | None
    ) -> PurchaseResult:
        return run_idempotently(
            customer_id,
            idempotency_key,
            data,
            run=lambda claim: settle_race(
                # A concurrent request bought (some of) these subjects first: decide again on
                # what is now committed, already owned (200) or partly owned (409).
                lambda: PurchaseService._purchase_once(customer_id, data, claim, granted_by),
                lambda _: PurchaseService._purchase_once(customer_id, data, claim, granted_by),
                lost_on=[PurchaseItem.one_owner_per_subject],
            ),
            replay=PurchaseService._replay,
        )

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _purchase_once(
        customer_id: int, data: dict[str, Any], claim: Claim | None, granted_by: int | None = None
    ) -> PurchaseResult:
        order = PurchaseService._order(data)
        now = utcnow()
        held = db.session.execute(
            select(PurchaseItem.id, PurchaseItem.subject_id, PurchaseItem.access_until).where(
                PurchaseItem.active_customer_id == customer_id, PurchaseItem.subject_id.in_(order.subject_ids)
            )
        ).all()
        owned = {row.subject_id for row in held if row.access_until is None or row.access_until > now}
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
            provider = payment_provider()
            if granted_by is None and provider.takes_payments:
                result = PurchaseService._checkout(customer_id, order, provider, now)
            else:
                lapsed = [row.id for row in held]
                result = PurchaseService._create(customer_id, order, now, lapsed, granted_by)
        record(claim, result.outcome())
        return result

    @staticmethod
    def _new_purchase(customer_id: int, order: _Order, now: datetime, **state: Any) -> Purchase:
        purchase = Purchase(
            customer_id=customer_id,
            purchase_type=order.purchase_type,
            course_id=order.course_id,
            bundle_id=order.bundle_id,
            total_cost=order.price,
            currency=current_app.config["CURRENCY"],
            created_at=now,
            refund_due=Decimal("0.00"),
            **state,
        )
        db.session.add(purchase)
        db.session.flush()
        return purchase

    @staticmethod
    def _access_until(order: _Order, subject: Subject, now: datetime) -> datetime:
        return now + timedelta(days=order.access_days if order.access_days is not None else subject.access_days)

    @staticmethod
    def _create(
        customer_id: int, order: _Order, now: datetime, lapsed: list[int], granted_by: int | None
    ) -> PurchaseResult:
        """Fulfilled at once: without a payment provider, or an admin's comp grant."""
        PurchaseService._expire_items(lapsed)
        purchase = PurchaseService._new_purchase(
            customer_id,
            order,
            now,
            status=PurchaseStatus.PAID,
            provider=Provider.COMP if granted_by is not None else Provider.NONE,
            paid_at=now,
            granted_by_id=granted_by,
        )
        subjects = sorted(order.subjects, key=lambda s: s.id)
        access = {subject.id: PurchaseService._access_until(order, subject, now) for subject in subjects}
        PurchaseService._insert_items(purchase, subjects, ItemState.ACTIVE, access)
        cards = MockTestService.create_test_cards_for_purchase(purchase)
        # Everything the answer shows was just written: no need to read it back.
        per_subject = current_app.config["MOCK_TESTS_PER_SUBJECT"]
        bought = [
            PurchasedSubject(s.id, s.name, s.price, per_subject, ItemState.ACTIVE, access[s.id]) for s in subjects
        ]
        return PurchaseResult(
            status=CREATED, purchases=[PurchaseService._view(purchase, bought)], cards_created=cards.created
        )

    @staticmethod
    def _insert_items(
        purchase: Purchase, subjects: list[Subject], state: ItemState, access: dict[int, datetime]
    ) -> None:
        """One multi-row INSERT; active items are owned (`active_customer_id`) until `access`."""
        owner = purchase.customer_id if state is ItemState.ACTIVE else None
        db.session.execute(
            insert(PurchaseItem.__table__),
            [
                {
                    "purchase_id": purchase.id,
                    "customer_id": purchase.customer_id,
                    "subject_id": subject.id,
                    "price": subject.price,
                    "created_at": purchase.created_at,
                    "state": state.value,
                    "active_customer_id": owner,
                    "access_until": access.get(subject.id),
                }
                for subject in subjects
            ],
        )

    @staticmethod
    def _checkout(customer_id: int, order: _Order, provider: PaymentProvider, now: datetime) -> PurchaseResult:
        """The price fixed and the provider's order opened; nothing owned until it is paid."""
        currency = current_app.config["CURRENCY"]
        amount = to_paise(order.price)
        provider_order = provider.create_order(amount, currency, receipt=f"c{customer_id}-{secrets.token_hex(8)}")
        if (provider_order.amount, provider_order.currency) != (amount, currency):
            raise Conflict("The payment provider opened an order for another amount.", slug="payment-order-mismatch")
        purchase = PurchaseService._new_purchase(
            customer_id,
            order,
            now,
            status=PurchaseStatus.PENDING_PAYMENT,
            provider=provider.name,
            provider_order_id=provider_order.id,
            expires_at=now + timedelta(minutes=current_app.config["PAYMENT_PENDING_MINUTES"]),
        )
        subjects = sorted(order.subjects, key=lambda s: s.id)
        PurchaseService._insert_items(purchase, subjects, ItemState.PENDING, {})
        pending = [PurchasedSubject(s.id, s.name, s.price, 0, ItemState.PENDING) for s in subjects]
        return PurchaseResult(
            status=PENDING_PAYMENT,
            purchases=[PurchaseService._view(purchase, pending)],
            cards_created=0,
            payment=PurchaseService._instructions(purchase, provider),
        )

    @staticmethod
    def _instructions(purchase: Purchase, provider: PaymentProvider) -> PaymentInstructions:
        return PaymentInstructions(
            provider=provider.name.value,
            provider_order_id=str(purchase.provider_order_id),
            amount=to_paise(purchase.total_cost),
            currency=purchase.currency,
            key_id=provider.key_id,
        )

    @staticmethod
    def _expire_items(item_ids: list[int]) -> None:
        """Entitlements whose access ended give way to a new purchase of their subject."""
        if item_ids:
            db.session.execute(
                update(PurchaseItem)
                .where(PurchaseItem.id.in_(item_ids))
                .values(state=ItemState.EXPIRED, active_customer_id=None)
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
        payment = outcome.get("payment")
        return PurchaseResult(
            status=outcome["status"],
            purchases=views,
            cards_created=outcome["cards_created"],
            replayed=True,
            payment=PaymentInstructions(**payment) if payment else None,
        )

    # ------------------------------------------------------------------ payments

    @staticmethod
    def confirm_payment(caller: Principal, purchase_id: int, data: dict[str, Any]) -> PurchaseResult:
        """The SPA's confirmation of a payment: checked, then fulfilled (once, whoever comes first)."""
        customer_id = CustomerService.customer_id_of(caller)
        purchase = db.session.execute(
            select(Purchase).where(Purchase.id == purchase_id, Purchase.customer_id == customer_id)
        ).scalar_one_or_none()
        if purchase is None:
            raise NotFound(NO_PURCHASE)
        order_id, payment_id = data["provider_order_id"], data["provider_payment_id"]
        if purchase.provider_order_id is None:
            raise Conflict("This purchase takes no payment.", slug="no-payment-expected")
        if order_id != purchase.provider_order_id:
            message = "This is not the order of this purchase."
            raise ValidationFailed(message, errors={"provider_order_id": [message]})
        provider = provider_named(purchase.provider)
        if not provider.verify_payment(order_id, payment_id, data["signature"]):
            log.warning("payment signature mismatch for purchase %s, payment %s", purchase_id, payment_id)
            raise BadRequest(
                "The payment signature does not match; nothing was changed.",
                errors={"signature": ["Does not match the order and payment ids."]},
                slug="payment-signature-invalid",
            )
        payment = provider.fetch_payment(payment_id)
        if payment is None:
            message = "The payment provider knows no such payment."
            raise ValidationFailed(message, errors={"provider_payment_id": [message]})
        PurchaseService._check_payment(purchase, payment)
        return PurchaseService._fulfil_settled(purchase.id, payment)

    @staticmethod
    def _check_payment(purchase: Purchase, payment: ProviderPayment) -> None:
        """The provider's payment must be this order's, captured, for the exact amount."""
        if payment.order_id != purchase.provider_order_id:
            message = "This payment belongs to another order."
            raise ValidationFailed(message, errors={"provider_payment_id": [message]})
        if not payment.paid:
            raise Conflict(
                f"The payment is {payment.status}, not captured; nothing was bought.",
                slug="payment-not-captured",
                extra={"payment_status": payment.status},
            )
        expected = to_paise(purchase.total_cost)
        if (payment.amount, payment.currency) != (expected, purchase.currency):
            log.error(
                "payment %s of purchase %s is %s %s, expected %s %s",
                payment.id,
                purchase.id,
                payment.amount,
                payment.currency,
                expected,
                purchase.currency,
            )
            raise Conflict(
                "The payment's amount is not this purchase's price; nothing was bought.",
                slug="payment-amount-mismatch",
            )

    @staticmethod
    def _fulfil_settled(purchase_id: int, payment: ProviderPayment) -> PurchaseResult:
        cards = settle_race(
            # Another purchase of this customer activated one of these subjects first: this
            # one runs again and records them as surplus (paid twice, due for refund).
            lambda: PurchaseService._fulfil_once(purchase_id, payment),
            lambda _: PurchaseService._fulfil_once(purchase_id, payment),
            lost_on=[PurchaseItem.one_owner_per_subject, Payment.one_row_per_payment],
        )
        views = PurchaseService._views(select(Purchase).where(Purchase.id == purchase_id))
        db.session.commit()  # end the read: callers (reconcile, webhooks) go on with units of their own
        return PurchaseResult(status=PAID, purchases=views, cards_created=cards)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _fulfil_once(purchase_id: int, payment: ProviderPayment) -> int:
        return PurchaseService._fulfil(purchase_id, payment)

    @staticmethod
    @transactional(join=True)
    def _fulfil(purchase_id: int, payment: ProviderPayment) -> int:
        """Make a paid purchase whole, once: the cards of this purchase afterwards.

        The purchase's row lock queues every confirmation, webhook and reconciliation of it;
        the first finds it payable and fulfils it, the others find it settled.
        """
        purchase = db.session.execute(select(Purchase).where(Purchase.id == purchase_id).with_for_update()).scalar_one()
        recorded = db.session.execute(
            select(Payment.id).where(Payment.provider_payment_id == payment.id)
        ).scalar_one_or_none()
        if purchase.status in SETTLED:
            if recorded is None:
                # A second payment of an order that was paid already: the money is owed back.
                PurchaseService._record_payment(purchase, payment, PaymentStatus.CAPTURED)
                purchase.refund_due += Decimal(payment.amount) / 100
                log.warning("purchase %s paid again by %s: refund due", purchase.id, payment.id)
            return PurchaseService._cards_of(purchase.id)
        now = utcnow()
        items = list(
            db.session.execute(
                select(PurchaseItem)
                .where(PurchaseItem.purchase_id == purchase.id, PurchaseItem.state == ItemState.PENDING)
                .options(joinedload(PurchaseItem.subject))
                .order_by(PurchaseItem.subject_id)
            ).scalars()
        )
        held = db.session.execute(
            select(PurchaseItem.id, PurchaseItem.subject_id, PurchaseItem.access_until).where(
                PurchaseItem.active_customer_id == purchase.customer_id,
                PurchaseItem.subject_id.in_([item.subject_id for item in items]),
            )
        ).all()
        owned = {row.subject_id for row in held if row.access_until is None or row.access_until > now}
        PurchaseService._expire_items([row.id for row in held if row.subject_id not in owned])
        bundle_days = None
        if purchase.bundle_id is not None:
            bundle_days = db.session.execute(
                select(Bundle.access_days).where(Bundle.id == purchase.bundle_id)
            ).scalar_one()
        total = sum((item.price for item in items), Decimal("0.00"))
        for item in items:
            if item.subject_id in owned:
                item.state = ItemState.SURPLUS
                purchase.refund_due += PurchaseService._share(purchase.total_cost, item.price, total)
            else:
                days = bundle_days if bundle_days is not None else item.subject.access_days
                item.state = ItemState.ACTIVE
                item.active_customer_id = purchase.customer_id
                item.access_until = now + timedelta(days=days)
        if owned and len(owned) == len(items):
            purchase.refund_due = purchase.total_cost
        if owned:
            log.warning(
                "purchase %s paid for subjects %s the customer owns already: %s due for refund",
                purchase.id,
                sorted(owned),
                purchase.refund_due,
            )
        purchase.status = PurchaseStatus.PAID
        purchase.paid_at = now
        if recorded is None:
            PurchaseService._record_payment(purchase, payment, PaymentStatus.CAPTURED)
        else:
            db.session.execute(update(Payment).where(Payment.id == recorded).values(status=PaymentStatus.CAPTURED))
        db.session.flush()
        MockTestService.create_test_cards_for_purchase(purchase)
        return PurchaseService._cards_of(purchase.id)

    @staticmethod
    def _share(total_cost: Decimal, price: Decimal, prices: Decimal) -> Decimal:
        """What a subject cost within its purchase (a bundle's price spread by subject prices)."""
        if not prices:
            return Decimal("0.00")
        return (total_cost * price / prices).quantize(TWO_PLACES)

    @staticmethod
    def _record_payment(purchase: Purchase, payment: ProviderPayment, status: PaymentStatus) -> None:
        db.session.add(
            Payment(
                purchase_id=purchase.id,
                provider=purchase.provider,
                provider_payment_id=payment.id,
                amount_paise=payment.amount,
                currency=payment.currency,
                status=status,
                created_at=utcnow(),
            )
        )

    @staticmethod
    def _cards_of(purchase_id: int) -> int:
        return db.session.execute(
            select(func.count()).select_from(MockTestAttempt).where(MockTestAttempt.purchase_id == purchase_id)
        ).scalar_one()

    # ------------------------------------------------------------------ webhooks

    @staticmethod
    def handle_webhook(body: bytes, signature: str | None, event_id: str | None) -> WebhookOutcome:
        """A provider event: signature over the raw body, handled once per event id."""
        provider = payment_provider()
        if not provider.takes_payments:
            raise NotFound("Payments are not enabled.")
        if not provider.verify_webhook(body, signature):
            log.warning("webhook refused: bad signature (event %s, %d bytes)", event_id, len(body))
            raise BadRequest("The webhook signature does not match.", slug="webhook-signature-invalid")
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise BadRequest("The webhook body is not a provider event.", slug="webhook-malformed")
        event_id = (event_id or "").strip()[:64] or "body:" + provider.webhook_signature(body)[:59]
        name = event["event"]

        def again(conflict: Any) -> WebhookOutcome:
            if conflict.constraint == PaymentEvent.one_row_per_event.name:
                return WebhookOutcome("duplicate", name)
            return PurchaseService._handle_event_once(provider, event_id, event)

        return settle_race(
            lambda: PurchaseService._handle_event_once(provider, event_id, event),
            again,
            lost_on=[PaymentEvent.one_row_per_event, PurchaseItem.one_owner_per_subject, Payment.one_row_per_payment],
        )

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _handle_event_once(provider: PaymentProvider, event_id: str, event: dict[str, Any]) -> WebhookOutcome:
        name = event["event"]
        seen = db.session.execute(
            select(PaymentEvent.id).where(PaymentEvent.provider == provider.name, PaymentEvent.event_id == event_id)
        ).scalar_one_or_none()
        if seen is not None:
            return WebhookOutcome("duplicate", name)
        row = PaymentEvent(
            provider=provider.name, event_id=event_id, event_type=name[:64], received_at=utcnow(), outcome=None
        )
        db.session.add(row)
        db.session.flush()  # a concurrent delivery of the same event stops here
        outcome = PurchaseService._apply_event(provider, name, event.get("payload") or {}, row)
        row.outcome = {"status": outcome.status, "detail": outcome.detail}
        return outcome

    @staticmethod
    def _apply_event(
        provider: PaymentProvider, name: str, payload: dict[str, Any], row: PaymentEvent
    ) -> WebhookOutcome:
        if name in REFUND_EVENTS:
            return PurchaseService._apply_refund_event(name, payload, row)
        if name not in (*PAID_EVENTS, FAILED_EVENT):
            return WebhookOutcome("ignored", name, "not an event this shop acts on")
        try:
            payment = ProviderPayment.from_entity(payload["payment"]["entity"])
        except (KeyError, TypeError, ValueError):
            return WebhookOutcome("ignored", name, "no payment entity")
        # Locked before anything refers to it: the event row's foreign key would take a shared
        # lock first, and two deliveries upgrading theirs to the fulfilment's lock deadlock.
        purchase = db.session.execute(
            select(Purchase)
            .where(Purchase.provider_order_id == payment.order_id, Purchase.provider == provider.name)
            .with_for_update()
        ).scalar_one_or_none()
        if purchase is None:
            log.warning("webhook %s for an order we do not know: %s", name, payment.order_id)
            return WebhookOutcome("ignored", name, "unknown order")
        row.purchase_id = purchase.id
        if name == FAILED_EVENT:
            return PurchaseService._payment_failed(purchase.id, payment, name)
        try:
            PurchaseService._check_payment(purchase, payment)
        except (Conflict, ValidationFailed) as refused:
            log.error("webhook %s for purchase %s refused: %s", name, purchase.id, refused.detail)
            return WebhookOutcome("ignored", name, str(refused.detail))
        PurchaseService._fulfil(purchase.id, payment)
        return WebhookOutcome("processed", name, f"purchase {purchase.id} paid")

    @staticmethod
    def _payment_failed(purchase_id: int, payment: ProviderPayment, name: str) -> WebhookOutcome:
        """A failed attempt: a pending checkout becomes `failed` (another attempt may still pay it)."""
        purchase = db.session.execute(select(Purchase).where(Purchase.id == purchase_id).with_for_update()).scalar_one()
        known = db.session.execute(
            select(Payment.id).where(Payment.provider_payment_id == payment.id)
        ).scalar_one_or_none()
        if known is None:
            PurchaseService._record_payment(purchase, payment, PaymentStatus.FAILED)
        if purchase.status in (PurchaseStatus.PENDING_PAYMENT, PurchaseStatus.EXPIRED):
            purchase.status = PurchaseStatus.FAILED
            return WebhookOutcome("processed", name, f"purchase {purchase.id} failed")
        return WebhookOutcome("ignored", name, f"purchase {purchase.id} is {purchase.status.value}")

    @staticmethod
    def _apply_refund_event(name: str, payload: dict[str, Any], row: PaymentEvent) -> WebhookOutcome:
        try:
            refund_id = str(payload["refund"]["entity"]["id"])
        except (KeyError, TypeError):
            return WebhookOutcome("ignored", name, "no refund entity")
        refund = db.session.execute(
            select(Refund).where(Refund.provider_refund_id == refund_id).with_for_update()
        ).scalar_one_or_none()
        if refund is None:
            return WebhookOutcome("ignored", name, "unknown refund")
        row.purchase_id = refund.purchase_id
        if refund.status is RefundStatus.PENDING:
            refund.status = REFUND_EVENTS[name]
        return WebhookOutcome("processed", name, f"refund {refund.id} {refund.status.value}")

    # ------------------------------------------------------------------ sandbox

    @staticmethod
    def sandbox_pay(caller: Principal, provider_order_id: str, outcome: str, deliver_webhook: bool) -> SandboxCheckout:
        """Razorpay Checkout, played: a payment of the order, signed as Razorpay signs it, and
        the signed webhook delivered to `handle_webhook` (its signature is checked there)."""
        provider = payment_provider()
        if not isinstance(provider, SandboxProvider):
            raise NotFound("The sandbox checkout exists only with PAYMENT_PROVIDER=sandbox.")
        customer_id = CustomerService.customer_id_of(caller)
        purchase = db.session.execute(
            select(Purchase).where(Purchase.provider_order_id == provider_order_id, Purchase.customer_id == customer_id)
        ).scalar_one_or_none()
        db.session.commit()  # end the read: the webhook runs its own unit of work
        if purchase is None:
            raise NotFound("There is no sandbox order of yours with this id.")
        if purchase.status not in PAYABLE:
            raise Conflict("This order is paid already.", slug="order-already-paid")
        payment = provider.new_payment(provider_order_id, outcome)
        webhook = None
        if deliver_webhook:
            event = FAILED_EVENT if outcome == "failed" else "payment.captured"
            body = json.dumps(
                {
                    "entity": "event",
                    "event": event,
                    "contains": ["payment"],
                    "payload": {"payment": {"entity": {"entity": "payment", **payment.__dict__}}},
                    "created_at": int(utcnow().timestamp()),
                }
            ).encode()
            webhook = PurchaseService.handle_webhook(
                body, provider.webhook_signature(body), f"evt_sbx_{secrets.token_hex(7)}"
            )
        signature = provider.payment_signature(provider_order_id, payment.id) if payment.paid else None
        return SandboxCheckout(provider_order_id, payment.id, signature, outcome, webhook)

    # ------------------------------------------------------------------ refunds

    @staticmethod
    def refund(admin: Principal, purchase_id: int, subject_ids: list[int] | None) -> RefundResult:
        """Refund a paid purchase, whole or some of its subjects: their access ends at once,
        then the provider is asked (with the refund's idempotency key) to give the money back."""
        refund_id = PurchaseService._open_refund(admin.id, purchase_id, subject_ids)
        PurchaseService.send_refund(refund_id)
        refund = db.session.get(Refund, refund_id)
        views = PurchaseService._views(select(Purchase).where(Purchase.id == purchase_id))
        db.session.commit()
        return RefundResult(refund=refund, purchase=views[0])

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _open_refund(admin_id: int, purchase_id: int, subject_ids: list[int] | None) -> int:
        purchase = db.session.execute(
            select(Purchase).where(Purchase.id == purchase_id).with_for_update()
        ).scalar_one_or_none()
        if purchase is None:
            raise NotFound("There is no purchase with this id.")
        payment = db.session.execute(
            select(Payment)
            .where(Payment.purchase_id == purchase.id, Payment.status == PaymentStatus.CAPTURED)
            .order_by(Payment.id)
            .limit(1)
        ).scalar_one_or_none()
        if purchase.status not in (PurchaseStatus.PAID, PurchaseStatus.PARTIALLY_REFUNDED) or payment is None:
            raise Conflict(
                f"A {purchase.status.value} purchase of provider {purchase.provider.value} has no payment to refund.",
                slug="not-refundable",
            )
        items = list(db.session.execute(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)).scalars())
        open_items = [item for item in items if item.state in (ItemState.ACTIVE, ItemState.SURPLUS)]
        chosen = open_items if subject_ids is None else [i for i in open_items if i.subject_id in set(subject_ids)]
        missing = sorted(set(subject_ids or []) - {item.subject_id for item in chosen})
        if missing:
            message = f"Not refundable in this purchase: {', '.join(map(str, missing))}."
            raise ValidationFailed(message, errors={"subject_ids": [message]})
        refunded_before = db.session.execute(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.purchase_id == purchase.id, Refund.status != RefundStatus.FAILED
            )
        ).scalar_one()
        prices = sum((item.price for item in items), Decimal("0.00"))
        if len(chosen) == len(open_items):  # the rest of the money, whatever the rounding
            amount = purchase.total_cost - Decimal(refunded_before)
        else:
            amount = sum((PurchaseService._share(purchase.total_cost, i.price, prices) for i in chosen), Decimal(0))
        for item in chosen:
            if item.state is ItemState.SURPLUS:
                share = PurchaseService._share(purchase.total_cost, item.price, prices)
                purchase.refund_due = max(Decimal("0.00"), purchase.refund_due - share)
            item.state = ItemState.REFUNDED
            item.active_customer_id = None
        if len(chosen) == len(open_items):
            purchase.refund_due = Decimal("0.00")
        purchase.status = (
            PurchaseStatus.REFUNDED if len(chosen) == len(open_items) else PurchaseStatus.PARTIALLY_REFUNDED
        )
        refund = Refund(
            purchase_id=purchase.id,
            payment_id=payment.id,
            idempotency_key=f"refund-{purchase.id}-{secrets.token_hex(12)}",
            amount=amount,
            subject_ids=sorted(item.subject_id for item in chosen),
            status=RefundStatus.PENDING,
            requested_by_id=admin_id,
        )
        db.session.add(refund)
        db.session.flush()
        return refund.id

    @staticmethod
    def send_refund(refund_id: int) -> None:
        """Ask the provider for a refund not sent yet (again after a failure: the idempotency
        key makes a retry one refund). A provider that does not answer leaves it for
        `reconcile-payments`."""
        row = db.session.execute(
            select(Refund, Payment.provider_payment_id, Purchase.provider)
            .join(Payment, Payment.id == Refund.payment_id)
            .join(Purchase, Purchase.id == Refund.purchase_id)
            .where(Refund.id == refund_id)
        ).one()
        refund, payment_id, provider_name = row
        db.session.commit()
        if refund.provider_refund_id is not None:
            return
        provider = provider_named(provider_name)
        try:
            answer = provider.refund(payment_id, to_paise(refund.amount), refund.idempotency_key)
        except ProviderUnavailable:
            log.warning("refund %s not sent: the provider is not answering; reconcile-payments retries", refund_id)
            return
        PurchaseService._record_refund(refund_id, answer.id, answer.status)
        if isinstance(provider, SandboxProvider) and answer.status == "pending":
            # The sandbox settles its refunds at once, through the signed webhook a provider sends.
            body = json.dumps(
                {
                    "entity": "event",
                    "event": "refund.processed",
                    "contains": ["refund"],
                    "payload": {
                        "refund": {"entity": {"id": answer.id, "payment_id": payment_id, "status": "processed"}}
                    },
                }
            ).encode()
            PurchaseService.handle_webhook(body, provider.webhook_signature(body), f"evt_sbx_{secrets.token_hex(7)}")

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _record_refund(refund_id: int, provider_refund_id: str, status: str) -> None:
        refund = db.session.execute(select(Refund).where(Refund.id == refund_id).with_for_update()).scalar_one()
        refund.provider_refund_id = provider_refund_id
        if status in {s.value for s in RefundStatus} and refund.status is RefundStatus.PENDING:
            refund.status = RefundStatus(status)

    # ------------------------------------------------------------------ reconciliation

    @staticmethod
    def reconcile() -> ReconcileReport:
        """Ask the provider about pending and recently failed checkouts: fulfil those that
        were paid (their webhook never came), expire pending ones past their time. Safe to
        run twice, and concurrently: each purchase is decided under its row lock."""
        provider = payment_provider()
        if not provider.takes_payments:
            return ReconcileReport()
        now = utcnow()
        since = now - timedelta(hours=current_app.config["PAYMENT_RECONCILE_HOURS"])
        candidates = db.session.execute(
            select(Purchase.id, Purchase.provider_order_id).where(
                Purchase.provider == provider.name,
                or_(
                    Purchase.status == PurchaseStatus.PENDING_PAYMENT,
                    (Purchase.status == PurchaseStatus.FAILED) & (Purchase.created_at >= since),
                ),
            )
        ).all()
        db.session.commit()
        fulfilled = expired = 0
        failed: list[str] = []
        for purchase_id, order_id in candidates:
            try:
                paid = [p for p in provider.order_payments(str(order_id)) if p.paid]
                purchase = db.session.get(Purchase, purchase_id)
                db.session.commit()
                good = []
                for payment in paid:
                    try:
                        PurchaseService._check_payment(purchase, payment)
                        good.append(payment)
                    except (Conflict, ValidationFailed) as refused:
                        log.error("reconcile: payment %s refused: %s", payment.id, refused.detail)
                if good:
                    PurchaseService._fulfil_settled(purchase_id, good[0])
                    fulfilled += 1
                elif PurchaseService._expire_if_due(purchase_id):
                    expired += 1
            except Exception as exc:  # noqa: BLE001 - one purchase's trouble must not stop the others
                db.session.rollback()
                log.warning("reconcile: purchase %s: %r", purchase_id, exc)
                failed.append(f"purchase {purchase_id}: {exc}")
        unsent = db.session.execute(
            select(Refund.id)
            .join(Purchase, Purchase.id == Refund.purchase_id)
            .where(Refund.provider_refund_id.is_(None), Purchase.provider == provider.name)
        ).scalars()
        for refund_id in list(unsent):
            PurchaseService.send_refund(refund_id)
        return ReconcileReport(len(candidates), fulfilled, expired, failed)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _expire_if_due(purchase_id: int) -> bool:
        purchase = db.session.execute(select(Purchase).where(Purchase.id == purchase_id).with_for_update()).scalar_one()
        if purchase.status is not PurchaseStatus.PENDING_PAYMENT or purchase.expires_at is None:
            return False
        if purchase.expires_at > utcnow():
            return False
        purchase.status = PurchaseStatus.EXPIRED
        return True

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
    def list_purchases(caller: Principal, page: int, per_page: int, customer_id: int | None) -> Page[PurchaseView]:
        """Three statements: the page of purchases (its columns only) with the total, their
        items with the subjects' names, their card counts."""
        if not caller.is_admin:
            customer_id = CustomerService.customer_id_of(caller)
        found = _purchase_pager(customer_id is not None)(page, per_page, customer_id=customer_id)
        views = PurchaseService._views_of(found.items)
        return Page(items=views, page=found.page, per_page=found.per_page, total=found.total)

    @staticmethod
    def get_purchase(caller: Principal, purchase_id: int) -> PurchaseView:
        statement = select(Purchase).where(Purchase.id == purchase_id)
        if not caller.is_admin:
            statement = statement.where(Purchase.customer_id == CustomerService.customer_id_of(caller))
        views = PurchaseService._views(statement)
        if not views:
            raise NotFound("There is no purchase of yours with this id.")
        return views[0]

    @staticmethod
    def _views(statement: Select[tuple[Purchase]]) -> list[PurchaseView]:
        return PurchaseService._views_of(list(db.session.execute(statement).scalars()))

    @staticmethod
    def _views_of(purchases: Sequence[Purchase | Row[Any]]) -> list[PurchaseView]:
        """Items, subject names and card counts of these purchases in three statements."""
        if not purchases:
            return []
        ids = [purchase.id for purchase in purchases]
        items = db.session.execute(
            select(
                PurchaseItem.purchase_id,
                PurchaseItem.subject_id,
                PurchaseItem.price,
                PurchaseItem.state,
                PurchaseItem.access_until,
                Subject.name,
            )
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
        for purchase_id, subject_id, price, state, access_until, name in items:
            subjects[purchase_id].append(
                PurchasedSubject(subject_id, name, price, cards.get((purchase_id, subject_id), 0), state, access_until)
            )
        return [PurchaseService._view(p, subjects[p.id]) for p in purchases]

    @staticmethod
    def _view(purchase: Purchase | Row[Any], subjects: list[PurchasedSubject]) -> PurchaseView:
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
            status=purchase.status,
            provider=purchase.provider,
            provider_order_id=purchase.provider_order_id,
            expires_at=purchase.expires_at,
            paid_at=purchase.paid_at,
            refund_due=purchase.refund_due,
            granted_by_id=purchase.granted_by_id,
        )
