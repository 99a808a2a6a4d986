"""Test cards: creating them for purchases, composing the frozen papers, taking the tests."""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, Protocol

from flask import current_app
from sqlalchemy import (
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    column,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    true,
    type_coerce,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert, Update

from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed, violated_constraint
from shared.extensions import db, frozen_papers
from shared.models import (
    AttemptAnswer,
    CardStatus,
    Customer,
    ExamPattern,
    ItemState,
    MockTestAttempt,
    Outcome,
    Paper,
    PaperQuestion,
    PaperRegrade,
    Purchase,
    PurchaseItem,
    Question,
    QuestionType,
    QuestionVersion,
    RegradeAction,
    Role,
    Subject,
    User,
)
from shared.models.base import PreciseDateTime, utcnow
from shared.models.purchases import GRANTED
from shared.models.questions import answer_key_problems, tolerance_of_places
from shared.services.accounts import CustomerService, Principal
from shared.services.base import Page, RowPager, json_rows, retry_on_lock_conflict, settle_race, transactional
from shared.services.catalog import SUBJECT_NOT_FOUND
from shared.services.questions import QUESTION_VERSION_UNIQUE, freeze_versions


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
class SheetQuestion:
    """A question as the student sees it while taking the test: no key, no explanation."""

    id: int
    position: int
    type: QuestionType
    text: str
    options: list[str]
    marks_correct: Decimal
    marks_wrong: Decimal
    marks_unanswered: Decimal


class Taking(Protocol):
    """What taking a test needs of its card: a `MockTestAttempt`, or the row `_locked_taking` reads."""

    id: int
    status: CardStatus
    paper_id: int | None
    started_at: datetime | None
    deadline_at: datetime | None


class Rule(NamedTuple):
    position: int
    question_id: int
    type: QuestionType
    option_count: int


class LockedTaking(NamedTuple):
    id: int
    status: CardStatus
    paper_id: int | None
    started_at: datetime | None
    deadline_at: datetime | None
    rules: list[Rule]


class AnswerRule(Protocol):
    """What checking and storing an answer needs of its question."""

    position: int
    question_id: int
    type: QuestionType
    option_count: int


@dataclass(frozen=True)
class Sheet:
    """A started card with its paper's questions and what the student saved so far: the card
    and the paper as rows of the columns `CardSchema` and `PaperInfoSchema` name."""

    card: Row[Any]
    paper: Row[Any]
    questions: list[SheetQuestion]
    answers: dict[str, Any]
    marked_for_review: list[int]
    time_spent_seconds: dict[str, int]
    seconds_left: int


@dataclass(frozen=True)
class ReviewedQuestion:
    id: int
    position: int
    type: QuestionType
    text: str
    options: list[str]
    your_answer: Any
    correct_option: int | None
    correct_options: list[int] | None
    answer: Decimal | None
    tolerance: Decimal | None
    outcome: Outcome
    marks: Decimal
    explanation: str
    dropped: bool
    regrade_note: str | None
    marked_for_review: bool
    time_spent_seconds: int

    @property
    def is_correct(self) -> bool:
        return self.outcome is Outcome.CORRECT


@dataclass(frozen=True)
class RegradeNote:
    """A regrade as the students of its paper see it in their review: no admin, no old key."""

    position: int
    question_id: int
    action: RegradeAction
    regraded_at: datetime
    note: str


@dataclass(frozen=True)
class Review:
    card: MockTestAttempt
    paper: Paper
    questions: list[ReviewedQuestion]
    regrades: list[RegradeNote]


@dataclass(frozen=True)
class SubjectProgress:
    subject_id: int
    subject_name: str
    course_id: int
    cards: int
    completed: int
    average_score: Decimal | None
    best_score: Decimal | None
    average_marks: Decimal | None
    best_marks: Decimal | None
    last_activity: datetime | None


SUBMITTED = (CardStatus.COMPLETED, CardStatus.EXPIRED)
CARD_NOT_FOUND = "There is no test card of yours with this id."
PAPER_NOT_FOUND = "There is no paper with this id."
KEY_FIELDS = {
    QuestionType.SINGLE: ("correct_option",),
    QuestionType.MULTIPLE: ("correct_options",),
    QuestionType.NUMERICAL: ("answer", "tolerance", "decimal_places"),
}
ALL_KEY_FIELDS = tuple(name for names in KEY_FIELDS.values() for name in names)
TWO_PLACES = Decimal("0.01")
MAX_OPTIONS = 6
# Numerical answers are DECIMAL(20, 6): a distance below a millionth is no distance (on
# SQLite, where they are floats, it may be rounding).
EPSILON = Decimal("0.0000001")
# A purchased subject's cards (join condition of purchase_items to mock_test_attempts).
CARDS_OF_ITEM = and_(
    MockTestAttempt.purchase_id == PurchaseItem.purchase_id, MockTestAttempt.subject_id == PurchaseItem.subject_id
)
# The answer columns a save writes, in the order `_answers_update` shapes are built in.
ANSWER_COLUMNS = ("choice_mask", "value", "marked_for_review", "time_spent_seconds")
MARK_FIELDS = tuple(f"{kind}_{what}" for kind in QuestionType for what in ("correct", "wrong", "unanswered"))
# Overdue cards a card list or progress read finalises first (the rest on the next read).
OVERDUE_PER_READ = 100
# A card list's rows: the columns of `CardSchema`, and whether the customer has overdue cards.
CARD_COLUMNS = (
    "id",
    "purchase_id",
    "subject_id",
    "test_number",
    "status",
    "paper_id",
    "question_count",
    "correct_count",
    "wrong_count",
    "unanswered_count",
    "marks",
    "score",
    "started_at",
    "deadline_at",
    "submitted_at",
)
OVERDUE = "overdue"


@functools.cache
def _card_pager(by_subject: bool, by_status: bool) -> RowPager:
    """A customer's card list, filtered or not, read in index order (customer_id,
    subject_id, test_number): no sort, no JSON columns; the subject's name joined by its
    primary key; the count without the join; and whether the customer has overdue cards.
    Columns of the tables: the rows are dumped as they come, no entity is built."""
    card = MockTestAttempt.__table__
    mine = [card.c.customer_id == bindparam("customer_id")]
    if by_subject:
        mine.append(card.c.subject_id == bindparam("subject_id"))
    if by_status:
        mine.append(card.c.status == bindparam("status"))
    overdue = (
        select(card.c.id)
        .where(
            card.c.customer_id == bindparam("customer_id"),
            card.c.status == CardStatus.IN_PROGRESS,
            card.c.deadline_at < bindparam("overdue_before"),
        )
        .exists()
        .correlate(None)
    )
    page = (
        _shown_cards()
        .add_columns(overdue.label(OVERDUE))
        .where(*mine)
        .order_by(card.c.subject_id, card.c.test_number, card.c.id)
    )
    return RowPager(page, counting=select(card.c.id).where(*mine))


def _shown_cards() -> Select[Any]:
    """Cards as `CardSchema` shows them: their columns and their subject's name."""
    card, subject = MockTestAttempt.__table__, Subject.__table__
    return select(*[card.c[name] for name in CARD_COLUMNS], subject.c.name.label("subject_name")).join(
        subject, subject.c.id == card.c.subject_id
    )


@functools.cache
def _locked_taking() -> Select[Any]:
    """The statement of `MockTestService._locked_taking`: the card's row, locked, and its
    paper's answer rules as one JSON array. Only the card's row is locked: a locking read
    does not lock the rows a nested subquery reads, and a paper's rules never change."""
    card, question = MockTestAttempt.__table__.c, PaperQuestion.__table__.c
    rules = (
        select(json_rows(question.position, question.question_id, question.type, question.option_count))
        .where(question.paper_id == card.paper_id)
        .scalar_subquery()
    )
    return (
        select(card.id, card.status, card.paper_id, card.started_at, card.deadline_at, rules.label("rules"))
        .where(card.id == bindparam("card_id"), card.customer_id == bindparam("customer_id"))
        .with_for_update()
    )


@functools.cache
def _held_paper_of_card() -> Select[Any]:
    """Share-locks the paper row of the card `card_id` (see `MockTestService._hold_papers`):
    its id and duration."""
    card = MockTestAttempt.__table__.c
    return _held_paper(select(card.paper_id).where(card.id == bindparam("card_id")).scalar_subquery())


def _held_paper(paper_id: Any) -> Select[Any]:
    paper = Paper.__table__.c
    return select(paper.id, paper.duration_minutes).where(paper.id == paper_id).with_for_update(read=True)


@functools.cache
def _paper_sheet() -> Select[Any]:
    """The questions of the paper `paper_id` as its students see them, in `SheetQuestion`'s order."""
    question, version = PaperQuestion.__table__, QuestionVersion.__table__
    return (
        select(
            question.c.question_id,
            question.c.position,
            question.c.type,
            version.c.text,
            version.c.options,
            question.c.marks_correct,
            question.c.marks_wrong,
            question.c.marks_unanswered,
        )
        .join(version, version.c.id == question.c.question_version_id)
        .where(question.c.paper_id == bindparam("paper_id"))
        .order_by(question.c.position)
    )


@functools.cache
def _saved_answers() -> Select[Any]:
    """The answer rows of the card `card_id` that hold something, in paper order."""
    answer = AttemptAnswer.__table__.c
    return (
        select(answer.position, answer.choice_mask, answer.value, answer.marked_for_review, answer.time_spent_seconds)
        .where(
            answer.card_id == bindparam("card_id"),
            or_(
                answer.choice_mask.is_not(None),
                answer.value.is_not(None),
                answer.marked_for_review.is_(True),
                answer.time_spent_seconds > 0,
            ),
        )
        .order_by(answer.position)
    )


def _shown_questions(paper: Row[Any]) -> list[SheetQuestion]:
    """The questions of `paper` as its students see them. A paper version never changes what
    it shows (a regrade changes keys only), so each worker keeps them (`frozen_papers`): a
    start, a resume and a saved sheet read the card, the paper and the card's answers, not
    the questions. The key holds the paper's creation time as well as its id, which SQLite
    may give again once a paper is deleted."""
    key = f"paper:{paper.id}:{paper.created_at.isoformat()}"
    rows = frozen_papers.get(key)
    if rows is None:
        rows = [tuple(row) for row in db.session.execute(_paper_sheet(), {"paper_id": paper.id})]
        if rows:
            frozen_papers.set(key, rows)
    return [SheetQuestion(*row) for row in rows]


@functools.cache
def _answer_rows_of_start() -> Insert:
    """A started card's answer rows, one per question of its paper, built in the database."""
    question = PaperQuestion.__table__.c
    positions = select(bindparam("started_card", type_=Integer), question.position).where(
        question.paper_id == bindparam("started_paper")
    )
    return insert(AttemptAnswer.__table__).from_select(["card_id", "position"], positions)


@functools.cache
def _item_access() -> Select[Any]:
    item = PurchaseItem.__table__.c
    return select(item.state, item.access_until).where(
        item.purchase_id == bindparam("purchase_id"), item.subject_id == bindparam("subject_id")
    )


@functools.cache
def _locked_card() -> Select[Any]:
    """The caller's card `card_id`, as far as starting it needs, its row alone locked."""
    card = MockTestAttempt.__table__.c
    return (
        select(card.id, card.status, card.purchase_id, card.subject_id, card.test_number)
        .where(card.id == bindparam("card_id"), card.customer_id == bindparam("customer_id"))
        .with_for_update()
    )


PAPER_COLUMNS = (
    "id",
    "subject_id",
    "test_number",
    "version",
    "question_count",
    "duration_minutes",
    "max_marks",
    "created_at",
)


@functools.cache
def _latest_paper_held() -> Select[Any]:
    """The latest version of paper k of a subject, share-locked: a start copies its questions (see `_start`)."""
    paper = Paper.__table__.c
    return (
        select(*[paper[name] for name in PAPER_COLUMNS])
        .where(paper.subject_id == bindparam("subject_id"), paper.test_number == bindparam("test_number"))
        .order_by(paper.version.desc())
        .limit(1)
        .with_for_update(read=True)
    )


@functools.cache
def _paper_view() -> Select[Any]:
    paper = Paper.__table__.c
    return select(*[paper[name] for name in PAPER_COLUMNS]).where(paper.id == bindparam("paper_id"))


@functools.cache
def _card_view() -> Select[Any]:
    return _shown_cards().where(MockTestAttempt.__table__.c.id == bindparam("card_id"))


@functools.cache
def _started() -> Update:
    card = MockTestAttempt.__table__.c
    return (
        update(MockTestAttempt.__table__)
        .where(card.id == bindparam("started_card"))
        .values(
            status=CardStatus.IN_PROGRESS,
            paper_id=bindparam("paper", type_=Integer),
            question_count=bindparam("count", type_=Integer),
            started_at=bindparam("at", type_=card.started_at.type),
            deadline_at=bindparam("due", type_=card.deadline_at.type),
        )
    )


@functools.lru_cache(maxsize=512)
def _answers_update(shape: tuple[tuple[str, int], ...]) -> Update:
    """The UPDATE of a card's answer rows that sets, per column of `shape`, that many
    positions (built once per shape, its values bound at each save)."""
    row = AttemptAnswer.__table__.c
    changes = {
        name: case(
            *[
                (bindparam(f"{name}_at_{n}", type_=row.position.type), bindparam(f"{name}_{n}", type_=row[name].type))
                for n in range(count)
            ],
            value=row.position,
            else_=row[name],
        )
        for name, count in shape
    }
    return (
        update(AttemptAnswer.__table__)
        .where(row.card_id == bindparam("of_card"), row.position.in_(bindparam("positions", expanding=True)))
        .values(**changes)
    )


def _answers_update_of(card_id: int, written: dict[str, dict[int, Any]]) -> tuple[Update, dict[str, Any]]:
    """`_answers_update` of the shape of `written` (per column, position -> value), and its values."""
    shape = tuple((name, len(given)) for name, given in written.items() if given)
    values: dict[str, Any] = {
        "of_card": card_id,
        "positions": sorted({position for given in written.values() for position in given}),
    }
    for name, given in written.items():
        for n, (position, value) in enumerate(given.items()):
            values[f"{name}_at_{n}"], values[f"{name}_{n}"] = position, value
    return _answers_update(shape), values


def hot_statements() -> list[tuple[Executable, dict[str, Any]]]:
    """The statements of a start, a save (one or two answers, bare or with their review mark
    and time) and a submit, with values that match no row: `shared.warm_up` runs them."""
    now = utcnow()
    mine, card = {"card_id": 0, "customer_id": 0}, {"card_id": 0}
    saves = [
        _answers_update_of(0, {name: dict.fromkeys(range(count)) for name in columns})
        for count in (1, 2)
        for columns in (ANSWER_COLUMNS[:2], ANSWER_COLUMNS)
    ]
    scored = {"scored_card": 0, "new_status": CardStatus.COMPLETED, "at": now, "taken": 0, "ranked": None}
    return [
        (_locked_card(), mine),
        (_latest_paper_held(), {"subject_id": 0, "test_number": 0}),
        (_item_access(), {"purchase_id": 0, "subject_id": 0}),
        (_started(), {"started_card": 0, "paper": 0, "count": 0, "at": now, "due": now}),
        (_answer_rows_of_start(), {"started_card": 0, "started_paper": 0}),
        (_paper_sheet(), {"paper_id": 0}),
        (_saved_answers(), card),
        (_paper_view(), {"paper_id": 0}),
        (_card_view(), card),
        (_locked_taking(), mine),
        *saves,
        (_held_paper_of_card(), card),
        *[(statement, scored) for statement in _one_card_scoring()],
    ]


NO_QUESTIONS = "This subject has no questions yet, so its tests cannot start. Please try again later."
PAPER_VERSION_UNIQUE = next(
    constraint for constraint in Paper.__table__.constraints if constraint.info.get("problem_message")
)
RANKED_ONCE_INDEX = next(index.name for index in MockTestAttempt.__table__.indexes if index.info.get("problem_message"))


def refused_ranking(exc: IntegrityError) -> bool:
    """Did the unique index (paper_id, customer_id, ranked) refuse a second ranked attempt?"""
    return violated_constraint(exc, db.metadata).constraint == RANKED_ONCE_INDEX


def paper_question_ids(subject_id: int, test_number: int, bank: list[int], count: int, version: int = 1) -> list[int]:
    """Paper k of a subject: the same questions, in the same order, for every student."""
    seed = f"paper:{subject_id}:{test_number}" + (f":v{version}" if version > 1 else "")
    chooser = random.Random(seed)  # noqa: S311 - a shuffle, not a secret
    return chooser.sample(sorted(bank), min(count, len(bank)))


def option_mask(options: list[int]) -> int:
    return sum(1 << option for option in set(options))


def mask_options(mask: int | None) -> list[int]:
    return [option for option in range(MAX_OPTIONS) if mask and mask & (1 << option)]


def decimal_text(value: Decimal) -> str:
    """3.140000 -> "3.14", 100.000000 -> "100"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def paper_key(question: PaperQuestion) -> dict[str, Any]:
    """A paper question's key in its type's shape, as the regrade audit records it."""
    if question.type is QuestionType.NUMERICAL:
        return {
            "answer": decimal_text(question.key_answer or Decimal(0)),
            "tolerance": decimal_text(question.key_tolerance or Decimal(0)),
        }
    options = mask_options(question.key_mask)
    return {"correct_option": options[0]} if question.type is QuestionType.SINGLE else {"correct_options": options}


def regrade_note(regrade: PaperRegrade) -> str:
    day = regrade.created_at.date().isoformat()
    if regrade.action is RegradeAction.DROP:
        return f"Dropped on {day}: full marks to all."
    return f"Key corrected on {day}; your marks were recomputed."


def default_pattern(subject_id: int) -> ExamPattern:
    """Today's behaviour: MOCK_TEST_QUESTION_COUNT questions, MOCK_TEST_DURATION_MINUTES,
    +1 for a right answer and 0 otherwise, so that percent is the share answered right."""
    marks = {name: Decimal(1 if name.endswith("_correct") else 0) for name in MARK_FIELDS}
    return ExamPattern(
        subject_id=subject_id,
        questions_per_paper=current_app.config["MOCK_TEST_QUESTION_COUNT"],
        duration_minutes=current_app.config["MOCK_TEST_DURATION_MINUTES"],
        multiple_partial=Decimal(0),
        **marks,
    )


def shown_answer(kind: QuestionType, row: Any) -> Any:
    """An answer in its type's shape: an option index, a list of them, a value string."""
    if row is None:
        return None
    if kind is QuestionType.NUMERICAL:
        return None if row.value is None else decimal_text(row.value)
    if row.choice_mask is None:
        return None
    chosen = mask_options(row.choice_mask)
    return chosen[0] if kind is QuestionType.SINGLE else chosen


def stored_answer(question: AnswerRule, answer: Any) -> tuple[int | None, Decimal | None]:
    """(choice_mask, value) of an answer in its type's shape; ValueError with the reason."""
    if answer is None:
        return None, None
    top = question.option_count - 1
    if question.type is QuestionType.SINGLE:
        if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer <= top:
            return 1 << answer, None
        raise ValueError(f"Choose one option index from 0 to {top}.")
    if question.type is QuestionType.MULTIPLE:
        if (
            isinstance(answer, list)
            and all(isinstance(o, int) and not isinstance(o, bool) and 0 <= o <= top for o in answer)
            and len(set(answer)) == len(answer)
        ):
            return (option_mask(answer) or None), None
        raise ValueError(f"Choose a list of distinct option indexes from 0 to {top}.")
    if isinstance(answer, str):
        try:
            value = Decimal(answer.strip())
        except InvalidOperation:
            value = None
        if value is not None and value.is_finite() and abs(value) < Decimal(10) ** 14:
            return None, value.quantize(Decimal("0.000001"))
    raise ValueError('Give the value as a decimal string, e.g. "3.14".')


def scoring_expressions() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The outcome and the marks of an answer row (attempt_answers joined to its paper question),
    in SQL: submit, finalisation and regrade score with these, one set-based UPDATE each."""
    answer, question = AttemptAnswer.__table__.c, PaperQuestion.__table__.c
    answered = or_(answer.choice_mask.is_not(None), answer.value.is_not(None))
    numerical = question.type == QuestionType.NUMERICAL.value
    right = or_(
        and_(numerical, func.abs(answer.value - question.key_answer) <= question.key_tolerance + EPSILON),
        and_(~numerical, answer.choice_mask == question.key_mask),
    )
    partial = and_(
        question.type == QuestionType.MULTIPLE.value,
        question.marks_partial != 0,
        answer.choice_mask.op("|")(question.key_mask) == question.key_mask,
    )
    chosen = sum(
        (case((answer.choice_mask.op("&")(1 << option) != 0, 1), else_=0) for option in range(1, MAX_OPTIONS)),
        case((answer.choice_mask.op("&")(1) != 0, 1), else_=0),
    )
    dropped = question.dropped.is_(True)
    outcome = case(
        (dropped, Outcome.CORRECT.value),
        (~answered, Outcome.UNANSWERED.value),
        (right, Outcome.CORRECT.value),
        (partial, Outcome.PARTIAL.value),
        else_=Outcome.WRONG.value,
    )
    marks = case(
        (dropped, question.marks_correct),
        (~answered, question.marks_unanswered),
        (right, question.marks_correct),
        (partial, question.marks_partial * chosen),
        else_=question.marks_wrong,
    )
    return outcome, marks


def score_cards(session: Session, cards: ColumnElement[bool], position: int | None = None) -> None:
    """Score every card matching `cards` from its saved answers and its paper's marking:
    two UPDATEs whatever the number of cards (the answers, then the cards' totals). With
    `position`, only that question's answers are marked again (a regrade changed its key)."""
    for statement in scoring_statements(cards, position):
        session.execute(statement)


@functools.cache
def _one_card_scoring() -> tuple[Update, Update]:
    """The scoring of the card `scored_card` that also marks it submitted (`new_status`, `at`)
    and records what ranking needs (see `record_ranking`): its time taken (`taken` seconds)
    and `ranked` (true, or null for staff's). Built once: each submit runs it."""
    card = MockTestAttempt.__table__.c
    answers, totals = scoring_statements(card.id == bindparam("scored_card"), None)
    submitted = totals.values(
        status=bindparam("new_status", type_=card.status.type),
        submitted_at=bindparam("at", type_=card.submitted_at.type),
        time_taken_seconds=bindparam("taken", type_=Integer),
        ranked=bindparam("ranked", type_=Boolean),
    )
    return answers, submitted


def time_taken(started: datetime | None, submitted: datetime | None, minutes: int) -> int:
    """Seconds from start to submission, at most the paper's duration (all of it when unknown)."""
    limit = minutes * 60
    elapsed = int((submitted - started).total_seconds()) if started and submitted else limit
    return max(0, min(elapsed, limit))


def scoring_statements(cards: ColumnElement[bool], position: int | None) -> tuple[Update, Update]:
    card, answer, question = MockTestAttempt.__table__, AttemptAnswer.__table__, PaperQuestion.__table__
    outcome, marks = scoring_expressions()
    answers = update(answer).where(
        answer.c.card_id == card.c.id,
        question.c.paper_id == card.c.paper_id,
        question.c.position == answer.c.position,
        cards,
    )
    if position is not None:
        answers = answers.where(answer.c.position == position)
    answers = answers.values(outcome=outcome, marks=marks)
    of_card = answer.c.card_id == card.c.id
    total = select(func.coalesce(func.sum(answer.c.marks), 0)).where(of_card).scalar_subquery()

    def count(what: Outcome) -> Any:
        return select(func.count()).where(of_card, answer.c.outcome == what.value).scalar_subquery()

    # Each column from its own subquery: MariaDB's SET sees the values set before it, SQLite's not.
    max_marks = select(Paper.max_marks).where(Paper.id == card.c.paper_id).scalar_subquery()
    total_again = select(func.coalesce(func.sum(answer.c.marks), 0)).where(of_card).scalar_subquery()
    return answers, (
        update(card)
        .where(cards)
        .values(
            marks=total,
            correct_count=count(Outcome.CORRECT),
            wrong_count=count(Outcome.WRONG),
            unanswered_count=count(Outcome.UNANSWERED),
            partial_count=count(Outcome.PARTIAL),
            score=func.round(total_again * 100 / func.nullif(max_marks, 0), 2),
        )
        .execution_options(synchronize_session=False)
    )


def record_ranking(session: Session, card_ids: list[int]) -> None:
    """What rank and percentile need of cards just scored: their time taken (start to
    submission, at most the paper's duration) and `ranked` on each customer's first
    submitted attempt of its paper version, staff's excepted. Two statements whatever the
    number of cards."""
    rows = session.execute(_ranking_facts(), {"card_ids": card_ids}).all()
    if not rows:
        return
    times: dict[int, int] = {}
    first: dict[tuple[int, int], int] = {}
    for card_id, customer_id, paper_id, started, submitted, minutes, staff, taken in rows:
        times[card_id] = time_taken(started, submitted, minutes)
        if not staff and not taken:
            first.setdefault((customer_id, paper_id), card_id)
    chosen = set(first.values())
    if not _record_ranking_columns(session, times, chosen) and chosen:
        # Another card of one of these customers and papers was ranked by a concurrent
        # transaction after this one's snapshot: the unique index refused the statement (it
        # alone is undone, on MariaDB and SQLite). Rare: the times first, then card by card.
        _record_ranking_columns(session, times, set())
        for card_id in sorted(chosen):
            _record_ranking_columns(session, {card_id: times[card_id]}, {card_id})


@functools.cache
def _ranking_facts() -> Select[Any]:
    """Per card of `card_ids`, in submission order: what `record_ranking` decides on."""
    card = MockTestAttempt
    earlier = aliased(MockTestAttempt)
    ranked_before = (
        select(earlier.id)
        .where(earlier.customer_id == card.customer_id, earlier.paper_id == card.paper_id, earlier.ranked == true())
        .exists()
    )
    return (
        select(card.id, card.customer_id, card.paper_id, card.started_at, card.submitted_at, Paper.duration_minutes)
        .add_columns(User.role == Role.ADMIN, ranked_before)
        .join(Paper, Paper.id == card.paper_id)
        .join(Customer, Customer.id == card.customer_id)
        .join(User, User.id == Customer.user_id)
        .where(card.id.in_(bindparam("card_ids", expanding=True)))
        .order_by(card.submitted_at, card.id)
    )


def _record_ranking_columns(session: Session, times: dict[int, int], ranked: set[int]) -> bool:
    """One UPDATE: the cards' times, and `ranked` on those in `ranked`; False when the unique
    index refuses a second ranked card of one customer and paper."""
    table_ = MockTestAttempt.__table__
    values: dict[str, Any] = {"time_taken_seconds": case(times, value=table_.c.id)}
    if ranked:
        values["ranked"] = case(dict.fromkeys(ranked, True), value=table_.c.id, else_=table_.c.ranked)
    try:
        session.execute(update(table_).where(table_.c.id.in_(sorted(times))).values(**values))
    except IntegrityError as exc:
        if not refused_ranking(exc):
            raise
        return False
    return True


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


class PaperService:
    """Exam patterns and the frozen papers of each subject (admins)."""

    @staticmethod
    def pattern(subject_id: int) -> ExamPattern:
        PaperService._require_subject(subject_id)
        return db.session.get(ExamPattern, subject_id) or default_pattern(subject_id)

    @staticmethod
    @transactional
    def set_pattern(subject_id: int, data: dict[str, Any]) -> ExamPattern:
        """Papers composed from now on follow it; composed papers keep their marking."""
        PaperService._require_subject(subject_id)
        pattern = db.session.get(ExamPattern, subject_id, with_for_update=True)
        if pattern is None:
            pattern = default_pattern(subject_id)
            db.session.add(pattern)
        for name, value in data.items():
            setattr(pattern, name, value)
        db.session.flush()
        return pattern

    @staticmethod
    def list_papers(subject_id: int) -> list[Paper]:
        PaperService._require_subject(subject_id)
        return list(
            db.session.execute(
                select(Paper).where(Paper.subject_id == subject_id).order_by(Paper.test_number, Paper.version)
            ).scalars()
        )

    @staticmethod
    def publish_version(paper_id: int) -> Paper:
        """A new version of this paper, composed from today's bank and pattern, for later starts.
        Two admins at once make one new version (the unique constraint decides)."""
        paper = db.session.get(Paper, paper_id)
        if paper is None:
            raise NotFound(PAPER_NOT_FOUND)
        subject_id, number = paper.subject_id, paper.test_number
        latest = PaperService.latest(subject_id, number)
        version = (latest.version if latest else 0) + 1
        settle_race(
            lambda: PaperService.compose(subject_id, number, version),
            lambda _conflict: None,
            lost_on=[PAPER_VERSION_UNIQUE, QUESTION_VERSION_UNIQUE],
        )
        return PaperService.latest(subject_id, number)  # type: ignore[return-value]

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def regrade(
        paper_id: int, position: int, action: RegradeAction, key: dict[str, Any], admin_id: int
    ) -> PaperRegrade:
        """Correct the key of question `position` of this paper version, or drop it (full marks
        to all), and rescore every submitted card of the paper: a fixed number of statements
        whatever the number of cards. The paper's row is locked first; submits and
        finalisations share-lock it before they score, so that each card is scored either
        before the regrade (and rescored by it) or after it, with the new key."""
        session = db.session()
        if session.execute(select(Paper.id).where(Paper.id == paper_id).with_for_update()).first() is None:
            raise NotFound(PAPER_NOT_FOUND)
        question = session.execute(
            select(PaperQuestion)
            .where(PaperQuestion.paper_id == paper_id, PaperQuestion.position == position)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if question is None:
            raise NotFound(f"Paper {paper_id} has no question at position {position}.")
        if question.dropped:
            raise Conflict("This question was dropped already: it gives full marks to all.", slug="question-dropped")
        old_key = paper_key(question)
        changes = {"dropped": True} if action is RegradeAction.DROP else PaperService._new_key(question, key)
        new_key = None if action is RegradeAction.DROP else paper_key(PaperQuestion(type=question.type, **changes))
        if new_key == old_key:
            raise Conflict("The question already has this key: nothing to regrade.", slug="regrade-no-change")
        session.execute(
            update(PaperQuestion)
            .where(PaperQuestion.paper_id == paper_id, PaperQuestion.position == position)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
        rescored, changed = PaperService._changed_scores(session, paper_id, position)
        submitted = and_(MockTestAttempt.paper_id == paper_id, MockTestAttempt.status.in_(SUBMITTED))
        score_cards(session, submitted, position)
        regrade = PaperRegrade(
            paper_id=paper_id,
            position=position,
            question_id=question.question_id,
            action=action,
            old_key=old_key,
            new_key=new_key,
            admin_id=admin_id,
            attempts_rescored=rescored,
            scores_changed=changed,
        )
        session.add(regrade)
        session.flush()
        return regrade

    @staticmethod
    def regrades(paper_id: int) -> list[PaperRegrade]:
        if db.session.get(Paper, paper_id) is None:
            raise NotFound(PAPER_NOT_FOUND)
        return list(
            db.session.execute(
                select(PaperRegrade).where(PaperRegrade.paper_id == paper_id).order_by(PaperRegrade.id)
            ).scalars()
        )

    @staticmethod
    def _new_key(question: PaperQuestion, key: dict[str, Any]) -> dict[str, Any]:
        """The paper question's key columns from a key in its type's shape; 422 on the field
        that does not fit (the question bank's rules)."""
        kind = question.type
        foreign = [name for name in ALL_KEY_FIELDS if name in key and name not in KEY_FIELDS[kind]]
        problems = {name: [f"Not part of the key of a {kind.value} question."] for name in foreign}
        problems.update(answer_key_problems({"type": kind, "options": ["option"] * question.option_count, **key}))
        if problems:
            raise ValidationFailed("This key does not fit the question.", errors=problems)
        if kind is QuestionType.NUMERICAL:
            places = key.get("decimal_places")
            tolerance = tolerance_of_places(places) if places is not None else key.get("tolerance") or Decimal(0)
            return {"key_answer": key["answer"], "key_tolerance": tolerance}
        chosen = [key["correct_option"]] if kind is QuestionType.SINGLE else key["correct_options"]
        return {"key_mask": option_mask(chosen)}

    @staticmethod
    def _changed_scores(session: Session, paper_id: int, position: int) -> tuple[int, int]:
        """How many submitted cards of the paper there are, and how many of them the new key
        (already written) gives other marks for the question: one statement, in SQL."""
        card, answer, question = MockTestAttempt.__table__, AttemptAnswer.__table__, PaperQuestion.__table__
        _outcome, marks = scoring_expressions()
        differs = func.round(answer.c.marks, 2).is_distinct_from(func.round(marks, 2))
        rescored, changed = session.execute(
            select(func.count(), func.coalesce(func.sum(case((differs, 1), else_=0)), 0))
            .select_from(card)
            .join(answer, and_(answer.c.card_id == card.c.id, answer.c.position == position))
            .join(question, and_(question.c.paper_id == card.c.paper_id, question.c.position == position))
            .where(card.c.paper_id == paper_id, card.c.status.in_([status.value for status in SUBMITTED]))
        ).one()
        return int(rescored), int(changed)

    @staticmethod
    def latest(subject_id: int, test_number: int) -> Paper | None:
        return db.session.execute(
            select(Paper)
            .where(Paper.subject_id == subject_id, Paper.test_number == test_number)
            .order_by(Paper.version.desc())
            .limit(1)
        ).scalar_one_or_none()

    @staticmethod
    # On Galera two first starts on two nodes both compose; the second COMMIT loses
    # certification (a deadlock): run again, it then meets the first one's paper.
    @retry_on_lock_conflict
    @transactional
    def compose(subject_id: int, test_number: int, version: int) -> int:
        """Compose and freeze a paper: its question versions, order and marking. A fixed
        number of statements: the pattern, the bank, the versions (2), the paper, its questions."""
        session = db.session()
        pattern = session.get(ExamPattern, subject_id) or default_pattern(subject_id)
        bank = list(
            session.execute(
                select(Question.id).where(Question.subject_id == subject_id, Question.is_active.is_(True))
            ).scalars()
        )
        if not bank:
            raise Conflict(NO_QUESTIONS, slug="no-questions")
        chosen = paper_question_ids(subject_id, test_number, bank, pattern.questions_per_paper, version)
        frozen = freeze_versions(session, chosen)
        versions = {
            v.question_id: v
            for v in session.execute(
                select(QuestionVersion).where(QuestionVersion.id.in_(frozen.values())).with_for_update(read=True)
            ).scalars()
        }
        rows = []
        for position, question_id in enumerate(chosen, 1):
            found = versions[question_id]
            kind = found.type.value
            key = found.correct_options if found.correct_options is not None else [found.correct_option]
            rows.append(
                {
                    "position": position,
                    "question_id": question_id,
                    "question_version_id": found.id,
                    "type": found.type,
                    "option_count": len(found.options),
                    "key_mask": None if found.type is QuestionType.NUMERICAL else option_mask(key),
                    "key_answer": found.answer,
                    "key_tolerance": found.tolerance,
                    "marks_correct": getattr(pattern, f"{kind}_correct"),
                    "marks_wrong": getattr(pattern, f"{kind}_wrong"),
                    "marks_unanswered": getattr(pattern, f"{kind}_unanswered"),
                    "marks_partial": pattern.multiple_partial if found.type is QuestionType.MULTIPLE else 0,
                    "dropped": False,
                }
            )
        paper = Paper(
            subject_id=subject_id,
            test_number=test_number,
            version=version,
            question_count=len(rows),
            duration_minutes=pattern.duration_minutes,
            max_marks=sum((Decimal(row["marks_correct"]) for row in rows), Decimal(0)),
        )
        session.add(paper)
        session.flush()
        session.execute(insert(PaperQuestion), [{**row, "paper_id": paper.id} for row in rows])
        return paper.id

    @staticmethod
    def _require_subject(subject_id: int) -> None:
        if db.session.execute(select(Subject.id).where(Subject.id == subject_id)).first() is None:
            raise NotFound(SUBJECT_NOT_FOUND)


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
        caller: Principal, page: int, per_page: int, subject_id: int | None, status: CardStatus | None
    ) -> Page[Row[Any]]:
        """A page of the caller's cards as rows of the columns `CardSchema` names, with the
        total, in one statement and the token check's transaction. Overdue cards are
        finalised before they are shown, so that none is listed "in progress" after its
        time: each row says whether the customer has any (an empty page cannot say, so it
        asks), and only then does a finalising transaction run and the page is read again."""
        customer_id = CustomerService.customer_id_of(caller)
        pager = _card_pager(subject_id is not None, status is not None)
        values = {"customer_id": customer_id, "subject_id": subject_id, "status": status}

        def read() -> Page[Row[Any]]:
            return pager(page, per_page, **values, overdue_before=MockTestService._overdue_before())

        found = read()
        overdue = getattr(found.items[0], OVERDUE) if found.items else True
        if overdue and MockTestService._finalize(OVERDUE_PER_READ, MockTestAttempt.customer_id == customer_id):
            found = read()
        return found

    @staticmethod
    def get_card(caller: Principal, card_id: int) -> MockTestAttempt:
        return MockTestService._read_card(caller, card_id)

    @staticmethod
    def start(caller: Principal, card_id: int) -> Sheet:
        """Start (or resume) a card. Paper k of the subject is composed by the first start
        anyone makes; concurrent first starts compose it once (the unique constraint decides)."""
        sheet = MockTestService._start(caller, card_id)
        if sheet is None:  # the first start of paper k anywhere: compose it, then start
            settle_race(
                lambda: MockTestService._compose_first(card_id),
                lambda _conflict: None,
                lost_on=[PAPER_VERSION_UNIQUE, QUESTION_VERSION_UNIQUE],
            )
            sheet = MockTestService._start(caller, card_id)
        if sheet is None:
            raise Conflict(NO_QUESTIONS, slug="no-questions")
        return sheet

    @staticmethod
    def _compose_first(card_id: int) -> int:
        card = db.session.execute(
            select(MockTestAttempt.subject_id, MockTestAttempt.test_number).where(MockTestAttempt.id == card_id)
        ).one()
        return PaperService.compose(card.subject_id, card.test_number, 1)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _start(caller: Principal, card_id: int) -> Sheet | None:
        """The sheet of the started (or resumed) card; None when its paper has no version yet."""
        card = db.session.execute(
            _locked_card(), {"card_id": card_id, "customer_id": CustomerService.customer_id_of(caller)}
        ).first()
        if card is None:
            raise NotFound(CARD_NOT_FOUND)
        if card.status in SUBMITTED:
            raise Conflict("This test was submitted already; see its review.", slug="test-submitted")
        if card.status is CardStatus.AVAILABLE:
            # A start copies the paper's questions under a shared lock of its row, as scoring
            # does. Locked before any plain read: the first plain read fixes the snapshot the
            # rest reads (the paper's questions among them), which must hold the paper even
            # when its composer committed while this waited for the lock.
            paper = db.session.execute(
                _latest_paper_held(), {"subject_id": card.subject_id, "test_number": card.test_number}
            ).first()
            if paper is None:
                return None
            MockTestService._require_access(card)
            now = utcnow()
            deadline = now + timedelta(minutes=paper.duration_minutes)
            db.session.execute(
                _started(),
                {"started_card": card_id, "paper": paper.id, "count": paper.question_count, "at": now, "due": deadline},
            )
            db.session.execute(_answer_rows_of_start(), {"started_card": card_id, "started_paper": paper.id})
            return MockTestService._sheet(card_id, paper, blank=True)
        return MockTestService._sheet(card_id)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def save_answers(
        caller: Principal, card_id: int, answers: dict[str, dict[str, Any]], *, minimal: bool = False
    ) -> Sheet | None:
        """Merge the answers into the card; the sheet as now saved, or nothing when `minimal`
        (the client asked `Prefer: return=minimal`: no subject, paper or questions to read)."""
        taken = MockTestService._locked_taking(caller, card_id)
        MockTestService._require_in_time(taken)
        MockTestService._write_answers(taken, taken.rules, answers)
        return None if minimal else MockTestService._sheet(card_id)

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def submit(caller: Principal, card_id: int, last_answers: dict[str, dict[str, Any]]) -> Row[Any]:
        """Score on the server. Concurrent submits queue on the row lock: one scores, the rest get 409.
        Statements built once: every student submits in the last minutes of an exam.

        The card's paper is share-locked first (before the card, the order a regrade takes
        them in): a regrade waits for this submit, or this submit for the regrade."""
        paper = db.session.execute(_held_paper_of_card(), {"card_id": card_id}).first()
        taken = MockTestService._locked_taking(caller, card_id)
        MockTestService._require_in_progress(taken)
        if paper is None or paper.id != taken.paper_id:  # started in between: a rare late lock
            paper = db.session.execute(_held_paper(taken.paper_id)).one()
        late = MockTestService._past_grace(taken)
        if last_answers and not late:
            MockTestService._write_answers(taken, taken.rules, last_answers)
        now = utcnow()
        scored = {
            "scored_card": card_id,
            "new_status": CardStatus.EXPIRED if late else CardStatus.COMPLETED,
            "at": now,
            "taken": time_taken(taken.started_at, now, paper.duration_minutes),
            "ranked": None if caller.is_admin else True,  # staff are never ranked
        }
        answers, totals = _one_card_scoring()
        db.session.execute(answers, scored)
        try:
            db.session.execute(totals, scored)
        except IntegrityError as exc:
            if not refused_ranking(exc):
                raise
            # Another attempt of this customer and paper is ranked (the subject bought again):
            # the unique index refused this statement alone, which now scores it unranked.
            db.session.execute(totals, scored | {"ranked": None})
        return db.session.execute(_card_view(), {"card_id": card_id}).one()

    @staticmethod
    def review(caller: Principal, card_id: int) -> Review:
        card = MockTestService._read_card(caller, card_id)
        if card.status not in SUBMITTED:
            raise Conflict("The review opens once the test is submitted.", slug="test-not-submitted")
        questions = MockTestService._paper_questions(card.paper_id)
        rows = MockTestService._answer_rows(card.id)
        regrades = [
            RegradeNote(r.position, r.question_id, r.action, r.created_at, regrade_note(r))
            for r in db.session.execute(
                select(PaperRegrade).where(PaperRegrade.paper_id == card.paper_id).order_by(PaperRegrade.id)
            ).scalars()
        ]
        latest_note = {note.position: note.note for note in regrades}
        reviewed = []
        for question in questions:
            row = rows.get(question.position)
            version = question.version
            numerical = question.type is QuestionType.NUMERICAL
            key = mask_options(question.key_mask)
            reviewed.append(
                ReviewedQuestion(
                    id=question.question_id,
                    position=question.position,
                    type=question.type,
                    text=version.text,
                    options=version.options,
                    your_answer=shown_answer(question.type, row),
                    correct_option=key[0] if question.type is QuestionType.SINGLE and key else None,
                    correct_options=None if numerical else key,
                    answer=question.key_answer if numerical else None,
                    tolerance=question.key_tolerance if numerical else None,
                    outcome=(row.outcome if row and row.outcome else Outcome.UNANSWERED),
                    marks=(row.marks if row and row.marks is not None else question.marks_unanswered),
                    explanation=version.explanation,
                    dropped=question.dropped,
                    regrade_note=latest_note.get(question.position),
                    marked_for_review=bool(row and row.marked_for_review),
                    time_spent_seconds=row.time_spent_seconds if row else 0,
                )
            )
        return Review(card=card, paper=MockTestService._paper(card.paper_id), questions=reviewed, regrades=regrades)

    @staticmethod
    def progress(caller: Principal) -> list[SubjectProgress]:
        """One statement: every owned subject with its card figures."""
        customer_id = CustomerService.customer_id_of(caller)
        MockTestService._finalize(OVERDUE_PER_READ, MockTestAttempt.customer_id == customer_id)
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
                func.avg(MockTestAttempt.marks),
                func.max(MockTestAttempt.marks),
                func.max(activity),
            )
            .join(Subject, Subject.id == PurchaseItem.subject_id)
            .outerjoin(MockTestAttempt, CARDS_OF_ITEM)
            .where(PurchaseItem.customer_id == customer_id, PurchaseItem.state.in_(GRANTED))
            .group_by(PurchaseItem.subject_id, Subject.name, Subject.course_id)
            .order_by(Subject.course_id, PurchaseItem.subject_id)
        ).all()

        def two_places(value: Any) -> Decimal | None:
            return None if value is None else Decimal(str(value)).quantize(TWO_PLACES)

        return [
            SubjectProgress(
                subject_id=subject_id,
                subject_name=name,
                course_id=course_id,
                cards=cards,
                completed=int(completed),
                average_score=two_places(average),
                best_score=two_places(best),
                average_marks=two_places(average_marks),
                best_marks=two_places(best_marks),
                last_activity=last,
            )
            for subject_id, name, course_id, cards, completed, average, best, average_marks, best_marks, last in rows
        ]

    @staticmethod
    def finalize_overdue(batch: int = 500) -> int:
        """Finalise every card past its deadline plus MOCK_TEST_GRACE_SECONDS, scored from the
        answers saved in time (`flask finalize-overdue`, from cron). Safe to run several at once:
        each batch locks its cards and skips cards another run holds."""
        total = 0
        while True:
            done = MockTestService._finalize(batch)
            total += done
            if done < batch:
                return total

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _finalize(limit: int, among: ColumnElement[bool] | None = None) -> int:
        """Eight statements whatever the number of cards: their papers (read, then share-locked
        as a submit does), lock the cards, mark them expired, score them, record what their
        ranking needs; one when none is due.

        The cron run (`among` None) skips cards another transaction holds; a read of some
        cards (`among`) waits for them, so that it shows them as they end up.
        """
        past = and_(
            MockTestAttempt.status == CardStatus.IN_PROGRESS,
            MockTestAttempt.deadline_at < MockTestService._overdue_before(),
        )
        if among is not None:
            past = and_(past, among)
        # Their papers first, share-locked before the cards as a submit does (see regrade).
        papers = list(db.session.execute(select(MockTestAttempt.paper_id).where(past).distinct()).scalars())
        if not papers:
            return 0
        MockTestService._hold_papers([paper for paper in papers if paper is not None])
        overdue = (
            select(MockTestAttempt.id)
            .where(past)
            .order_by(MockTestAttempt.id)
            .limit(limit)
            .with_for_update(skip_locked=among is None)
        )
        ids = list(db.session.execute(overdue).scalars())
        if not ids:
            return 0
        chosen = MockTestAttempt.id.in_(ids)
        db.session.execute(
            update(MockTestAttempt)
            .where(chosen, MockTestAttempt.status == CardStatus.IN_PROGRESS)
            .values(status=CardStatus.EXPIRED, submitted_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        score_cards(db.session(), chosen)
        record_ranking(db.session(), ids)
        return len(ids)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _overdue_before() -> datetime:
        """Cards in progress whose deadline is before this are overdue (the grace period is over)."""
        return utcnow() - timedelta(seconds=current_app.config["MOCK_TEST_GRACE_SECONDS"])

    @staticmethod
    def _cards_of(customer_id: int) -> Select[tuple[MockTestAttempt]]:
        return select(MockTestAttempt).where(MockTestAttempt.customer_id == customer_id)

    @staticmethod
    def _card(caller: Principal, card_id: int, *, admin_may_read: bool = False) -> MockTestAttempt:
        """The card if it is the caller's (admins may read any); 404 otherwise. (Taking a
        test locks the card's row alone, with no entity: `_locked_taking`, `_locked_card`.)"""
        if admin_may_read and caller.is_admin:
            statement = select(MockTestAttempt)
        else:
            statement = MockTestService._cards_of(CustomerService.customer_id_of(caller))
        statement = (
            statement.where(MockTestAttempt.id == card_id)
            .options(joinedload(MockTestAttempt.subject))
            .execution_options(populate_existing=True)
        )
        card = db.session.execute(statement).scalar_one_or_none()
        if card is None:
            raise NotFound(CARD_NOT_FOUND)
        return card

    @staticmethod
    def _locked_taking(caller: Principal, card_id: int) -> LockedTaking:
        """What saving answers needs of the caller's card, its row locked, with its paper's
        rules: one statement and no entity to build (the hot path of an exam); 404 otherwise."""
        found = db.session.execute(
            _locked_taking(), {"card_id": card_id, "customer_id": CustomerService.customer_id_of(caller)}
        ).first()
        if found is None:
            raise NotFound(CARD_NOT_FOUND)
        rules = [
            Rule(position, question_id, QuestionType(kind), options)
            for position, question_id, kind, options in found.rules or []
        ]
        return LockedTaking(found.id, found.status, found.paper_id, found.started_at, found.deadline_at, rules)

    @staticmethod
    def _read_card(caller: Principal, card_id: int) -> MockTestAttempt:
        """The card, finalised first when it is past its deadline and the grace."""
        card = MockTestService._card(caller, card_id, admin_may_read=True)
        if card.status is CardStatus.IN_PROGRESS and MockTestService._past_grace(card):
            MockTestService._finalize(1, MockTestAttempt.id == card.id)
            card = MockTestService._card(caller, card_id, admin_may_read=True)
        return card

    @staticmethod
    def _require_access(card: Any) -> None:
        """A new test starts only while its subject's entitlement is active and in its period."""
        item = db.session.execute(
            _item_access(), {"purchase_id": card.purchase_id, "subject_id": card.subject_id}
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
    def _require_in_progress(card: Taking) -> None:
        if card.status in SUBMITTED:
            raise Conflict("This test was submitted already.", slug="test-submitted")
        if card.status is CardStatus.AVAILABLE:
            raise Conflict("Start this test first.", slug="test-not-started")

    @staticmethod
    def _require_in_time(card: Taking) -> None:
        MockTestService._require_in_progress(card)
        if MockTestService._past_grace(card):
            raise Conflict("The time for this test is up; submit it to get its score.", slug="time-up")

    @staticmethod
    def _past_grace(card: Taking) -> bool:
        grace = timedelta(seconds=current_app.config["MOCK_TEST_GRACE_SECONDS"])
        return card.deadline_at is not None and utcnow() > card.deadline_at + grace

    @staticmethod
    def _hold_papers(papers: list[int]) -> list[int]:
        """Share-lock the rows of these papers until the transaction ends: scoring reads the
        keys of papers a regrade cannot change meanwhile. Only the papers' rows are locked."""
        chosen = Paper.id.in_(sorted(papers))
        held = select(Paper.id).where(chosen).order_by(Paper.id).with_for_update(read=True)
        return list(db.session.execute(held).scalars())

    @staticmethod
    def _paper(paper_id: int | None) -> Paper:
        return db.session.get(Paper, paper_id)  # type: ignore[arg-type,return-value]

    @staticmethod
    def _paper_questions(paper_id: int | None) -> list[PaperQuestion]:
        """The paper's questions with their frozen versions, in paper order (one statement)."""
        return list(
            db.session.execute(
                select(PaperQuestion)
                .where(PaperQuestion.paper_id == paper_id)
                .options(joinedload(PaperQuestion.version))
                .order_by(PaperQuestion.position)
            ).scalars()
        )

    @staticmethod
    def _answer_rows(card_id: int) -> dict[int, AttemptAnswer]:
        rows = db.session.execute(select(AttemptAnswer).where(AttemptAnswer.card_id == card_id)).scalars()
        return {row.position: row for row in rows}

    @staticmethod
    def _write_answers(
        card: Taking, questions: Sequence[AnswerRule], answers: dict[str, dict[str, Any]]
    ) -> dict[str, dict[int, Any]]:
        """Check every answer against its question, then write them all with one UPDATE.
        What was written, per column and position (under the card's lock, so nothing else wrote them)."""
        by_id = {str(question.question_id): question for question in questions}
        errors: dict[str, list[str]] = {}
        masks: dict[int, int | None] = {}
        values: dict[int, Decimal | None] = {}
        marked: dict[int, bool] = {}
        spent: dict[int, int] = {}
        wall = max(0, int((utcnow() - card.started_at).total_seconds())) if card.started_at else 0
        for question_id, given in answers.items():
            entry = {"answer": None} if given is None else given  # null clears the answer
            question = by_id.get(question_id)
            if question is None:
                errors[f"answers.{question_id}"] = ["Not a question of this test."]
                continue
            if "answer" in entry:
                try:
                    masks[question.position], values[question.position] = stored_answer(question, entry["answer"])
                except ValueError as exc:
                    errors[f"answers.{question_id}"] = [str(exc)]
            if entry.get("marked_for_review") is not None:
                marked[question.position] = entry["marked_for_review"]
            if entry.get("time_spent_seconds") is not None:
                spent[question.position] = min(entry["time_spent_seconds"], wall)
        if errors:
            raise ValidationFailed("Some answers do not fit this test.", errors=errors)
        written = dict(zip(ANSWER_COLUMNS, (masks, values, marked, spent), strict=True))
        if any(written.values()):
            db.session.execute(*_answers_update_of(card.id, written))
        return written

    @staticmethod
    def _sheet(card_id: int, paper: Row[Any] | None = None, *, blank: bool = False) -> Sheet:
        """The card's sheet: its paper's questions and what is saved (nothing when `blank`:
        the card was started by this transaction)."""
        card = db.session.execute(_card_view(), {"card_id": card_id}).one()
        if paper is None:
            paper = db.session.execute(_paper_view(), {"paper_id": card.paper_id}).one()
        questions = _shown_questions(paper)
        at = {question.position: question for question in questions}
        rows = [] if blank else db.session.execute(_saved_answers(), {"card_id": card_id}).all()
        saved = [row for row in rows if row.position in at]  # never a position the paper lacks
        answers: dict[str, Any] = {}
        for row in saved:
            question = at[row.position]
            shown = shown_answer(question.type, row)
            if shown is not None and shown != []:
                answers[str(question.id)] = shown
        left = (card.deadline_at - utcnow()).total_seconds() if card.deadline_at else 0
        return Sheet(
            card=card,
            paper=paper,
            questions=questions,
            answers=answers,
            marked_for_review=[at[row.position].id for row in saved if row.marked_for_review],
            time_spent_seconds={
                str(at[row.position].id): row.time_spent_seconds for row in saved if row.time_spent_seconds
            },
            seconds_left=max(0, int(left)),
        )
