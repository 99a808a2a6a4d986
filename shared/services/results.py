"""Results students compare: the analysis of a submitted test, a paper's leaderboard, and
bookmarks of the questions of submitted papers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.orm import joinedload

from shared.errors import Conflict, Forbidden, NotFound
from shared.extensions import db
from shared.models import (
    AttemptAnswer,
    Bookmark,
    Customer,
    Difficulty,
    MockTestAttempt,
    Outcome,
    Paper,
    PaperQuestion,
    QuestionType,
    QuestionVersion,
    User,
)
from shared.services.accounts import CustomerService, Principal
from shared.services.base import Page, paginate, settle_race, transactional
from shared.services.cards import PAPER_NOT_FOUND, SUBMITTED, MockTestService, mask_options

TWO_PLACES = Decimal("0.01")
HUNDRED = Decimal(100)
NOT_IN_YOUR_TESTS = "There is no question with this id in the tests you submitted."
NOT_BOOKMARKED = "This question is not among your bookmarks."
BOOKMARK_UNIQUE = next(
    constraint for constraint in Bookmark.__table__.constraints if constraint.info.get("problem_message")
)


@dataclass(frozen=True)
class Standing:
    """Where marks, wrong answers and time stand among the first attempts of a paper version.

    `rank` is 1 + the participants strictly better (more marks; equal marks and fewer wrong
    answers; equal both and less time): equal results share a rank. `percentile` is the
    JEE-style share of participants whose marks are at most these marks, in percent (the
    best marks have 100.00); None while nobody is ranked.
    """

    rank: int
    percentile: Decimal | None
    participants: int


@dataclass(frozen=True)
class QuestionTime:
    id: int
    position: int
    type: QuestionType
    difficulty: Difficulty
    outcome: Outcome
    marks: Decimal
    max_marks: Decimal
    time_spent_seconds: int
    median_time_seconds: Decimal | None


@dataclass(frozen=True)
class DifficultyMarks:
    difficulty: Difficulty
    questions: int
    marks: Decimal
    max_marks: Decimal
    correct: int
    partial: int
    wrong: int
    unanswered: int


@dataclass(frozen=True)
class Analysis:
    card: MockTestAttempt
    paper: Paper
    marks: Decimal
    max_marks: Decimal
    percent: Decimal
    correct: int
    partial: int
    wrong: int
    unanswered: int
    attempted: int
    accuracy: Decimal | None
    time_taken_seconds: int
    ranked: bool
    rank: int
    percentile: Decimal | None
    participants: int
    by_difficulty: list[DifficultyMarks]
    questions: list[QuestionTime]


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    name: str
    marks: Decimal
    percent: Decimal
    wrong_count: int
    time_taken_seconds: int
    you: bool


@dataclass(frozen=True)
class Leaderboard:
    paper: Paper
    participants: int
    entries: list[LeaderboardEntry]
    you: LeaderboardEntry | None
    percentile: Decimal | None
    ranked: bool


@dataclass(frozen=True)
class BookmarkedQuestion:
    """A bookmark with the question as the submitted paper showed it, and its solution."""

    id: int
    paper_id: int
    position: int
    type: QuestionType
    difficulty: Difficulty
    text: str
    options: list[str]
    correct_option: int | None
    correct_options: list[int] | None
    answer: Decimal | None
    tolerance: Decimal | None
    explanation: str
    dropped: bool
    created_at: Any


def percent_of(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * HUNDRED / Decimal(whole)).quantize(TWO_PLACES)


def masked_name(full_name: str) -> str:
    """A name as others see it on a leaderboard, "Priya Sharma" -> "Pri*** S.": at most three
    letters of the first name (fewer when it is short), the initial of the last."""
    words = full_name.split()
    if not words:
        return "***"
    first = words[0]
    shown = first[: min(3, max(1, len(first) - 2))]
    return f"{shown}***" + (f" {words[-1][0]}." if len(words) > 1 else "")


def ranked_of(paper_id: int) -> ColumnElement[bool]:
    """The ranked rows of a paper version: the prefix of ix_mock_test_attempts_ranking."""
    return and_(MockTestAttempt.paper_id == paper_id, MockTestAttempt.ranked == true())


def standing(paper_id: int, marks: Decimal, wrong: int, seconds: int) -> Standing:
    """One statement of three COUNT(*)s, each a range of ix_mock_test_attempts_ranking: never
    a read of every attempt's row."""
    card = MockTestAttempt
    better = or_(
        card.marks > marks,
        and_(card.marks == marks, card.wrong_count < wrong),
        and_(card.marks == marks, card.wrong_count == wrong, card.time_taken_seconds < seconds),
    )

    def count(*where: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(card).where(ranked_of(paper_id), *where).scalar_subquery()

    participants, ahead, at_most = db.session.execute(select(count(), count(better), count(card.marks <= marks))).one()
    return Standing(rank=ahead + 1, percentile=percent_of(at_most, participants), participants=participants)


class ResultService:
    """The analysis of a submitted test and a paper's leaderboard (reads; an overdue card is
    finalised first, as every read of a card does)."""

    @staticmethod
    def analysis(caller: Principal, card_id: int) -> Analysis:
        """A fixed number of statements whatever the number of participants: the card (finalised
        first when overdue), its paper, its questions with the median times, the counts."""
        card = MockTestService.get_card(caller, card_id)
        if card.status not in SUBMITTED:
            raise Conflict("The analysis opens once the test is submitted.", slug="test-not-submitted")
        paper = db.session.get(Paper, card.paper_id)
        if paper is None:  # pragma: no cover - every submitted card has its paper (migrations)
            raise NotFound(PAPER_NOT_FOUND)
        questions = ResultService._question_times(card)
        marks = card.marks or Decimal(0)
        seconds = card.time_taken_seconds or 0
        wrong = card.wrong_count or 0
        where = standing(paper.id, marks, wrong, seconds)
        correct, partial = card.correct_count or 0, card.partial_count or 0
        attempted = correct + partial + wrong
        return Analysis(
            card=card,
            paper=paper,
            marks=marks,
            max_marks=paper.max_marks,
            percent=card.score or Decimal(0),
            correct=correct,
            partial=partial,
            wrong=wrong,
            unanswered=card.unanswered_count or 0,
            attempted=attempted,
            accuracy=percent_of(correct, attempted),
            time_taken_seconds=seconds,
            ranked=bool(card.ranked),
            rank=where.rank,
            percentile=where.percentile,
            participants=where.participants,
            by_difficulty=ResultService._by_difficulty(questions),
            questions=questions,
        )

    @staticmethod
    def _question_times(card: MockTestAttempt) -> list[QuestionTime]:
        """The card's questions with the median time of the paper's participants, one statement.

        The median of n times per position is the mean of the rows numbered n/2 and n/2 + 1
        (n even) or (n + 1)/2 (n odd) in time order: the rows where 2 * row_number is
        between n and n + 2. Window functions: SQLite and MariaDB alike.
        """
        answer, taker = AttemptAnswer, MockTestAttempt
        numbered = (
            select(
                answer.position,
                answer.time_spent_seconds.label("seconds"),
                func.row_number().over(partition_by=answer.position, order_by=answer.time_spent_seconds).label("n"),
                func.count().over(partition_by=answer.position).label("total"),
            )
            .join(taker, taker.id == answer.card_id)
            .where(ranked_of(card.paper_id))  # type: ignore[arg-type]
            .subquery("numbered")
        )
        medians = (
            select(numbered.c.position, func.avg(numbered.c.seconds).label("median"))
            .where(2 * numbered.c.n >= numbered.c.total, 2 * numbered.c.n <= numbered.c.total + 2)
            .group_by(numbered.c.position)
            .subquery("medians")
        )
        rows = db.session.execute(
            select(
                PaperQuestion.question_id,
                PaperQuestion.position,
                PaperQuestion.type,
                QuestionVersion.difficulty,
                PaperQuestion.marks_correct,
                PaperQuestion.marks_unanswered,
                answer.outcome,
                answer.marks,
                answer.time_spent_seconds,
                medians.c.median,
            )
            .join(QuestionVersion, QuestionVersion.id == PaperQuestion.question_version_id)
            .outerjoin(answer, and_(answer.card_id == card.id, answer.position == PaperQuestion.position))
            .outerjoin(medians, medians.c.position == PaperQuestion.position)
            .where(PaperQuestion.paper_id == card.paper_id)
            .order_by(PaperQuestion.position)
        ).all()
        return [
            QuestionTime(
                id=row.question_id,
                position=row.position,
                type=row.type,
                difficulty=row.difficulty,
                outcome=row.outcome or Outcome.UNANSWERED,
                marks=row.marks if row.marks is not None else row.marks_unanswered,
                max_marks=row.marks_correct,
                time_spent_seconds=row.time_spent_seconds or 0,
                median_time_seconds=None if row.median is None else Decimal(str(row.median)).quantize(Decimal("0.1")),
            )
            for row in rows
        ]

    @staticmethod
    def _by_difficulty(questions: list[QuestionTime]) -> list[DifficultyMarks]:
        """Marks per difficulty of the card's own questions (at most 200 rows, already read)."""
        found = []
        for difficulty in Difficulty:
            these = [q for q in questions if q.difficulty is difficulty]
            if not these:
                continue

            def count(outcome: Outcome, these: list[QuestionTime] = these) -> int:
                return sum(1 for q in these if q.outcome is outcome)

            found.append(
                DifficultyMarks(
                    difficulty=difficulty,
                    questions=len(these),
                    marks=sum((q.marks for q in these), Decimal(0)),
                    max_marks=sum((q.max_marks for q in these), Decimal(0)),
                    correct=count(Outcome.CORRECT),
                    partial=count(Outcome.PARTIAL),
                    wrong=count(Outcome.WRONG),
                    unanswered=count(Outcome.UNANSWERED),
                )
            )
        return found

    @staticmethod
    def leaderboard(caller: Principal, paper_id: int, limit: int) -> Leaderboard:
        """The top `limit` first attempts of a paper version, read in index order, and the
        caller's own. Admins, and customers who submitted a card of this paper version."""
        paper = db.session.get(Paper, paper_id)
        if paper is None:
            raise NotFound(PAPER_NOT_FOUND)
        card = MockTestAttempt
        own: MockTestAttempt | None = None
        if caller.customer_id is not None:
            own = db.session.execute(
                select(card)
                .where(card.customer_id == caller.customer_id, card.paper_id == paper_id, card.status.in_(SUBMITTED))
                .order_by(card.ranked.desc(), card.submitted_at, card.id)
                .limit(1)
            ).scalar_one_or_none()
        if own is None and not caller.is_admin:
            raise Forbidden("The leaderboard of a paper opens once you have submitted it.", slug="paper-not-submitted")
        # The top rows first, read in the ranking index's order and cut at `limit`; then their names.
        order = (card.marks.desc(), card.wrong_count, card.time_taken_seconds, card.id)
        top = (
            select(card.id, card.customer_id, card.marks, card.score, card.wrong_count, card.time_taken_seconds)
            .where(ranked_of(paper_id))
            .order_by(*order)
            .limit(limit)
            .subquery("top")
        )
        rows = db.session.execute(
            select(top, User.full_name)
            .join(Customer, Customer.id == top.c.customer_id)
            .join(User, User.id == Customer.user_id)
            .order_by(top.c.marks.desc(), top.c.wrong_count, top.c.time_taken_seconds, top.c.id)
        ).all()
        entries: list[LeaderboardEntry] = []
        for position, row in enumerate(rows, 1):
            previous = entries[-1] if entries else None
            tied = previous is not None and (previous.marks, previous.wrong_count, previous.time_taken_seconds) == (
                row.marks,
                row.wrong_count,
                row.time_taken_seconds,
            )
            entries.append(
                LeaderboardEntry(
                    rank=previous.rank if tied and previous else position,
                    name=masked_name(row.full_name),
                    marks=row.marks,
                    percent=row.score,
                    wrong_count=row.wrong_count,
                    time_taken_seconds=row.time_taken_seconds,
                    you=own is not None and row.id == own.id,
                )
            )
        if own is None:
            participants = db.session.execute(
                select(func.count()).select_from(card).where(ranked_of(paper_id))
            ).scalar_one()
            return Leaderboard(
                paper=paper, participants=participants, entries=entries, you=None, percentile=None, ranked=False
            )
        where = standing(paper_id, own.marks or Decimal(0), own.wrong_count or 0, own.time_taken_seconds or 0)
        you = LeaderboardEntry(
            rank=where.rank,
            name=db.session.execute(select(User.full_name).where(User.id == caller.id)).scalar_one(),
            marks=own.marks or Decimal(0),
            percent=own.score or Decimal(0),
            wrong_count=own.wrong_count or 0,
            time_taken_seconds=own.time_taken_seconds or 0,
            you=True,
        )
        return Leaderboard(
            paper=paper,
            participants=where.participants,
            entries=entries,
            you=you,
            percentile=where.percentile,
            ranked=bool(own.ranked),
        )


class BookmarkService:
    """Questions of the caller's submitted papers, kept for revision with their solutions."""

    @staticmethod
    def put(caller: Principal, question_id: int) -> tuple[BookmarkedQuestion, bool]:
        """Bookmark a question (idempotent): the bookmark, and whether it was created now.
        Two PUTs at once make one (the unique constraint decides; the loser reads the winner's)."""
        customer_id = CustomerService.customer_id_of(caller)
        created = settle_race(
            lambda: BookmarkService._add(customer_id, question_id),
            lambda _conflict: False,
            lost_on=[BOOKMARK_UNIQUE],
        )
        return BookmarkService.get(caller, question_id), created

    @staticmethod
    @transactional
    def _add(customer_id: int, question_id: int) -> bool:
        if BookmarkService._find(customer_id, question_id) is not None:
            return False
        card = MockTestAttempt
        seen = db.session.execute(
            select(PaperQuestion.paper_id, PaperQuestion.position)
            .join(card, card.paper_id == PaperQuestion.paper_id)
            .where(
                card.customer_id == customer_id,
                card.status.in_(SUBMITTED),
                PaperQuestion.question_id == question_id,
            )
            .order_by(card.submitted_at.desc(), card.id.desc())
            .limit(1)
        ).first()
        if seen is None:
            raise NotFound(NOT_IN_YOUR_TESTS)
        db.session.add(
            Bookmark(customer_id=customer_id, question_id=question_id, paper_id=seen.paper_id, position=seen.position)
        )
        db.session.flush()
        return True

    @staticmethod
    def get(caller: Principal, question_id: int) -> BookmarkedQuestion:
        found = BookmarkService._find(CustomerService.customer_id_of(caller), question_id)
        if found is None:
            raise NotFound(NOT_BOOKMARKED)
        return BookmarkService._shown(found)

    @staticmethod
    @transactional
    def delete(caller: Principal, question_id: int) -> None:
        found = BookmarkService._find(CustomerService.customer_id_of(caller), question_id)
        if found is None:
            raise NotFound(NOT_BOOKMARKED)
        db.session.delete(found)

    @staticmethod
    def list(caller: Principal, page: int, per_page: int) -> Page[BookmarkedQuestion]:
        """By question id, read from the unique index; two statements whatever the page size."""
        customer_id = CustomerService.customer_id_of(caller)
        mine = select(Bookmark).where(Bookmark.customer_id == customer_id)
        found = paginate(
            mine.options(joinedload(Bookmark.paper_question).joinedload(PaperQuestion.version)).order_by(
                Bookmark.question_id
            ),
            page,
            per_page,
            counting=mine,
        )
        return Page(
            items=[BookmarkService._shown(b) for b in found.items],
            page=found.page,
            per_page=found.per_page,
            total=found.total,
        )

    @staticmethod
    def _find(customer_id: int, question_id: int) -> Bookmark | None:
        return db.session.execute(
            select(Bookmark)
            .where(Bookmark.customer_id == customer_id, Bookmark.question_id == question_id)
            .options(joinedload(Bookmark.paper_question).joinedload(PaperQuestion.version))
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()

    @staticmethod
    def _shown(bookmark: Bookmark) -> BookmarkedQuestion:
        """The paper's version of the question and its key (a regrade's correction included)."""
        question = bookmark.paper_question
        version = question.version
        numerical = question.type is QuestionType.NUMERICAL
        key = mask_options(question.key_mask)
        return BookmarkedQuestion(
            id=bookmark.question_id,
            paper_id=bookmark.paper_id,
            position=bookmark.position,
            type=question.type,
            difficulty=version.difficulty,
            text=version.text,
            options=version.options,
            correct_option=key[0] if question.type is QuestionType.SINGLE and key else None,
            correct_options=None if numerical else key,
            answer=question.key_answer if numerical else None,
            tolerance=question.key_tolerance if numerical else None,
            explanation=version.explanation,
            dropped=question.dropped,
            created_at=bookmark.created_at,
        )
