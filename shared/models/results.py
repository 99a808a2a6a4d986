"""Results students compare and keep: bookmarks of questions from their submitted papers.

(Rank and percentile read `mock_test_attempts`: its `ranked` and `time_taken_seconds`
columns and the `ix_mock_test_attempts_ranking` index, in shared/models/cards.py.)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import PreciseDateTime, unique_constraint, utcnow
from shared.models.cards import PaperQuestion

ALREADY_BOOKMARKED = "This question is bookmarked already."


class Bookmark(db.Model):
    """A question a customer keeps for revision, as the paper they submitted showed it
    (`paper_id`, `position`: that paper's question version and key)."""

    __tablename__ = "bookmarks"
    __table_args__ = (
        unique_constraint("customer_id", "question_id", field="question_id", message=ALREADY_BOOKMARKED),
        ForeignKeyConstraint(
            ["paper_id", "position"], ["paper_questions.paper_id", "paper_questions.position"], ondelete="CASCADE"
        ),
        Index("ix_bookmarks_paper_id_position", "paper_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    paper_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(PreciseDateTime, default=utcnow)

    paper_question: Mapped[PaperQuestion] = relationship(lazy="raise")
