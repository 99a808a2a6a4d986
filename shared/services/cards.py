"""Test cards: creating them for purchases (and, later, taking the tests)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import FromClause, Select, and_, case, column, func, insert, literal, select, table, true, type_coerce
from sqlalchemy.orm import Session, defer, joinedload, selectinload

from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.extensions import db
from shared.models import CardStatus, ItemState, MockTestAttempt, Purchase, PurchaseItem, Question, Subject, User
from shared.models.base import PreciseDateTime, utcnow
from shared.models.purchases import GRANTED
from shared.services.accounts import CustomerService
from shared.services.base import Page, paginate, retry_on_lock_conflict, transactional


def card_numbers(session: Session, count: int) -> FromClause:
    """The numbers 1..count as a table `seq`: MariaDB's SEQUENCE engine, elsewhere a
    recursive CTE (SQLite, MySQL 8)."""
    if getattr(session.get_bind().dialect, "is_mariadb", False):
        return table(f"seq_1_to_{int(count)}", column("seq"))
    # Nested in a subquery, so that the statement still starts with INSERT (sqlite3 reports
    # the rowcount of DML statements only).
    seq = select(literal(1).label("seq")).cte("numbers", recursive=True, nesting=True)
    seq = seq.union_all(select(seq.c.seq + 1).where(seq.c.seq < count))
    return select(seq.c.seq).subquery("card_numbers")


@dataclass(frozen=True)
class CardsReport:
    created: int
    existing: int
    created_per_subject: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Paper:
    """A started card with its questions (without answers) and the answers saved so far."""

    card: MockTestAttempt
    questions: list[Question]
    answers: dict[str, int]
    seconds_left: int


@dataclass(frozen=True)
class ReviewedQuestion:
    id: int
    text: str
    options: list[str]
    your_answer: int | None
    correct_option: int
    explanation: str

    @property
    def is_correct(self) -> bool:
        return self.your_answer == self.correct_option


@dataclass(frozen=True)
class Review:
    card: MockTestAttempt
    questions: list[ReviewedQuestion]


@dataclass(frozen=True)
class SubjectProgress:
    subject_id: int
    subject_name: str
    course_id: int
    cards: int
    completed: int
    average_score: Decimal | None
    best_score: Decimal | None
    last_activity: datetime | None


SUBMITTED = (CardStatus.COMPLETED, CardStatus.EXPIRED)
CARD_NOT_FOUND = "There is no test card of yours with this id."
TWO_PLACES = Decimal("0.01")
# A purchased subject's cards (join condition of purchase_items to mock_test_attempts).
CARDS_OF_ITEM = and_(
    MockTestAttempt.purchase_id == PurchaseItem.purchase_id, MockTestAttempt.subject_id == PurchaseItem.subject_id
)


def paper_question_ids(subject_id: int, test_number: int, bank: list[int], count: int) -> list[int]:
    """Paper k of a subject: the same questions, in the same order, for every student."""
    chooser = random.Random(f"paper:{subject_id}:{test_number}")  # noqa: S311 - a shuffle, not a secret
    return chooser.sample(sorted(bank), min(count, len(bank)))


def add_missing_cards(session: Session, purchase_id: int, customer_id: int, per_subject: int) -> CardsReport:
    """Insert, in the caller's transaction, the cards 1..per_subject that each subject of
    the purchase lacks; what it created per subject is in the report.

    The cards are built in the database: one `INSERT ... SELECT` of the purchase's items
    crossed with the numbers 1..per_subject, whatever the number of subjects.
    """
    counts = dict(
        session.execute(
            select(PurchaseItem.subject_id, func.count(MockTestAttempt.id))
            .select_from(PurchaseItem)
            .outerjoin(MockTestAttempt, CARDS_OF_ITEM)
            .where(PurchaseItem.purchase_id == purchase_id, PurchaseItem.state.in_(GRANTED))
            .group_by(PurchaseItem.subject_id)
        ).all()
    )
    missing = {subject_id: per_subject - count for subject_id, count in counts.items() if count < per_subject}
    if not missing:
        return CardsReport(created=0, existing=sum(counts.values()))
    numbers = card_numbers(session, per_subject)
    now = utcnow()
    card = MockTestAttempt.__table__
    rows = (
        select(
            PurchaseItem.purchase_id,
            literal(customer_id),
            PurchaseItem.subject_id,
            numbers.c.seq,
            literal(CardStatus.AVAILABLE.value),
            literal(now, PreciseDateTime),
            literal(now, PreciseDateTime),
        )
        .join(numbers, true())
        .where(PurchaseItem.purchase_id == purchase_id, PurchaseItem.subject_id.in_(sorted(missing)))
    )
    if any(counts[subject_id] for subject_id in missing):
        rows = rows.where(
            ~select(card.c.id)
            .where(
                card.c.purchase_id == PurchaseItem.purchase_id,
                card.c.subject_id == PurchaseItem.subject_id,
                card.c.test_number == numbers.c.seq,
            )
            .exists()
        )
    columns = ["purchase_id", "customer_id", "subject_id", "test_number", "status", "created_at", "updated_at"]
    created = session.execute(insert(card).from_select(columns, rows)).rowcount
    return CardsReport(created=created, existing=sum(counts.values()), created_per_subject=missing)


class MockTestService:
    """Test cards: creating them for purchases, and taking the tests (each call one transaction)."""

    @staticmethod
    @transactional(join=True)
    def create_test_cards_for_purchase(purchase: Purchase) -> CardsReport:
        """Cards 1..MOCK_TESTS_PER_SUBJECT for each subject of the purchase that lacks them.

        Idempotent: for a purchase that has its cards it creates nothing and reports them.
        """
        return add_missing_cards(
            db.session(), purchase.id, purchase.customer_id, current_app.config["MOCK_TESTS_PER_SUBJECT"]
        )

    @staticmethod
    def list_cards(
        user: User, page: int, per_page: int, subject_id: int | None, status: CardStatus | None
    ) -> Page[MockTestAttempt]:
        # Read in index order (customer_id, subject_id, test_number): no sort, no JSON columns;
        # the subject names come in a second small statement.
        statement = (
            MockTestService._cards_of(CustomerService.customer_id_of(user))
            .options(
                defer(MockTestAttempt.question_ids),
                defer(MockTestAttempt.answers),
                selectinload(MockTestAttempt.subject).load_only(Subject.name),
            )
            .order_by(MockTestAttempt.subject_id, MockTestAttempt.test_number, MockTestAttempt.id)
        )
        if subject_id is not None:
            statement = statement.where(MockTestAttempt.subject_id == subject_id)
        if status is not None:
            statement = statement.where(MockTestAttempt.status == status)
        return paginate(statement, page, per_page)

    @staticmethod
    def get_card(user: User, card_id: int) -> MockTestAttempt:
        return MockTestService._card(user, card_id, admin_may_read=True)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def start(user: User, card_id: int) -> Paper:
        card = MockTestService._card(user, card_id, lock=True)
        if card.status in SUBMITTED:
            raise Conflict("This test was submitted already; see its review.", slug="test-submitted")
        if card.status is CardStatus.AVAILABLE:
            MockTestService._require_access(card)
            bank = list(
                db.session.execute(
                    select(Question.id).where(Question.subject_id == card.subject_id, Question.is_active.is_(True))
                ).scalars()
            )
            if not bank:
                raise Conflict(
                    "This subject has no questions yet, so its tests cannot start. Please try again later.",
                    slug="no-questions",
                )
            count = current_app.config["MOCK_TEST_QUESTION_COUNT"]
            now = utcnow()
            card.question_ids = paper_question_ids(card.subject_id, card.test_number, bank, count)
            card.question_count = len(card.question_ids)
            card.answers = {}
            card.status = CardStatus.IN_PROGRESS
            card.started_at = now
            card.deadline_at = now + timedelta(minutes=current_app.config["MOCK_TEST_DURATION_MINUTES"])
            db.session.flush()
        return MockTestService._paper(card)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def save_answers(user: User, card_id: int, answers: dict[str, int | None]) -> Paper:
        card = MockTestService._card(user, card_id, lock=True)
        MockTestService._require_in_progress(card)
        if MockTestService._past_grace(card):
            raise Conflict("The time for this test is up; submit it to get its score.", slug="time-up")
        questions = MockTestService._questions(card)
        card.answers = MockTestService._merged_answers(card, questions, answers)
        db.session.flush()
        return MockTestService._paper(card, questions)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def submit(user: User, card_id: int, last_answers: dict[str, int | None]) -> MockTestAttempt:
        """Score on the server. Concurrent submits queue on the row lock: one scores, the rest get 409."""
        card = MockTestService._card(user, card_id, lock=True)
        MockTestService._require_in_progress(card)
        questions = MockTestService._questions(card)
        late = MockTestService._past_grace(card)
        if last_answers and not late:
            card.answers = MockTestService._merged_answers(card, questions, last_answers)
        saved = card.answers or {}
        correct = sum(1 for q in questions if saved.get(str(q.id)) == q.correct_option)
        card.correct_count = correct
        card.score = (Decimal(100 * correct) / Decimal(len(questions) or 1)).quantize(TWO_PLACES)
        card.status = CardStatus.EXPIRED if late else CardStatus.COMPLETED
        card.submitted_at = utcnow()
        db.session.flush()
        return card

    @staticmethod
    def review(user: User, card_id: int) -> Review:
        card = MockTestService._card(user, card_id, admin_may_read=True)
        if card.status not in SUBMITTED:
            raise Conflict("The review opens once the test is submitted.", slug="test-not-submitted")
        saved = card.answers or {}
        return Review(
            card=card,
            questions=[
                ReviewedQuestion(q.id, q.text, q.options, saved.get(str(q.id)), q.correct_option, q.explanation)
                for q in MockTestService._questions(card)
            ],
        )

    @staticmethod
    def progress(user: User) -> list[SubjectProgress]:
        """One statement: every owned subject with its card figures."""
        customer_id = CustomerService.customer_id_of(user)
        submitted = case((MockTestAttempt.status.in_(SUBMITTED), 1), else_=0)
        activity = type_coerce(func.coalesce(MockTestAttempt.submitted_at, MockTestAttempt.started_at), PreciseDateTime)
        rows = db.session.execute(
            select(
                PurchaseItem.subject_id,
                Subject.name,
                Subject.course_id,
                func.count(MockTestAttempt.id),
                func.coalesce(func.sum(submitted), 0),
                func.avg(MockTestAttempt.score),
                func.max(MockTestAttempt.score),
                func.max(activity),
            )
            .join(Subject, Subject.id == PurchaseItem.subject_id)
            .outerjoin(MockTestAttempt, CARDS_OF_ITEM)
            .where(PurchaseItem.customer_id == customer_id, PurchaseItem.state.in_(GRANTED))
            .group_by(PurchaseItem.subject_id, Subject.name, Subject.course_id)
            .order_by(Subject.course_id, PurchaseItem.subject_id)
        ).all()
        return [
            SubjectProgress(
                subject_id=subject_id,
                subject_name=name,
                course_id=course_id,
                cards=cards,
                completed=int(completed),
                average_score=None if average is None else Decimal(str(average)).quantize(TWO_PLACES),
                best_score=None if best is None else Decimal(str(best)).quantize(TWO_PLACES),
                last_activity=last,
            )
            for subject_id, name, course_id, cards, completed, average, best, last in rows
        ]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _cards_of(customer_id: int) -> Select[tuple[MockTestAttempt]]:
        return select(MockTestAttempt).where(MockTestAttempt.customer_id == customer_id)

    @staticmethod
    def _card(user: User, card_id: int, *, admin_may_read: bool = False, lock: bool = False) -> MockTestAttempt:
        """The card if it is the caller's (admins may read any); 404 otherwise."""
        if admin_may_read and user.is_admin:
            statement = select(MockTestAttempt)
        else:
            statement = MockTestService._cards_of(CustomerService.customer_id_of(user))
        statement = statement.where(MockTestAttempt.id == card_id)
        if lock:
            # MariaDB has no FOR UPDATE OF: a joined subject would be locked too, queueing
            # every test of that subject (and its admin edits). Lock the card alone.
            statement = statement.with_for_update().options(selectinload(MockTestAttempt.subject))
        else:
            statement = statement.options(joinedload(MockTestAttempt.subject))
        card = db.session.execute(statement).scalar_one_or_none()
        if card is None:
            raise NotFound(CARD_NOT_FOUND)
        return card

    @staticmethod
    def _require_access(card: MockTestAttempt) -> None:
        """A new test starts only while its subject's entitlement is active and in its period."""
        item = db.session.execute(
            select(PurchaseItem.state, PurchaseItem.access_until).where(
                PurchaseItem.purchase_id == card.purchase_id, PurchaseItem.subject_id == card.subject_id
            )
        ).one_or_none()
        if item is None or item.state is not ItemState.ACTIVE:
            raise Forbidden(
                "Access to this subject was withdrawn (refunded); finished tests stay readable.",
                slug="access-revoked",
            )
        if item.access_until is not None and item.access_until <= utcnow():
            raise Forbidden(
                "Access to this subject has ended; buy it again to take new tests. Finished tests stay readable.",
                slug="access-expired",
                extra={"access_until": item.access_until.isoformat() + "Z"},
            )

    @staticmethod
    def _require_in_progress(card: MockTestAttempt) -> None:
        if card.status in SUBMITTED:
            raise Conflict("This test was submitted already.", slug="test-submitted")
        if card.status is CardStatus.AVAILABLE:
            raise Conflict("Start this test first.", slug="test-not-started")

    @staticmethod
    def _past_grace(card: MockTestAttempt) -> bool:
        grace = timedelta(seconds=current_app.config["MOCK_TEST_GRACE_SECONDS"])
        return card.deadline_at is not None and utcnow() > card.deadline_at + grace

    @staticmethod
    def _questions(card: MockTestAttempt) -> list[Question]:
        """The card's paper, in paper order (one statement)."""
        ids = card.question_ids or []
        by_id = {q.id: q for q in db.session.execute(select(Question).where(Question.id.in_(ids))).scalars()}
        return [by_id[question_id] for question_id in ids if question_id in by_id]

    @staticmethod
    def _merged_answers(
        card: MockTestAttempt, questions: list[Question], answers: dict[str, int | None]
    ) -> dict[str, int]:
        options = {str(q.id): len(q.options) for q in questions}
        errors: dict[str, list[str]] = {}
        for question_id, choice in answers.items():
            if question_id not in options:
                errors[f"answers.{question_id}"] = ["Not a question of this test."]
            elif choice is not None and choice >= options[question_id]:
                errors[f"answers.{question_id}"] = [f"Choose an option from 0 to {options[question_id] - 1}."]
        if errors:
            raise ValidationFailed("Some answers do not fit this test.", errors=errors)
        merged = dict(card.answers or {})
        for question_id, choice in answers.items():
            if choice is None:
                merged.pop(question_id, None)
            else:
                merged[question_id] = choice
        return merged

    @staticmethod
    def _paper(card: MockTestAttempt, questions: list[Question] | None = None) -> Paper:
        left = (card.deadline_at - utcnow()).total_seconds() if card.deadline_at else 0
        return Paper(
            card=card,
            questions=questions if questions is not None else MockTestService._questions(card),
            answers=dict(card.answers or {}),
            seconds_left=max(0, int(left)),
        )
