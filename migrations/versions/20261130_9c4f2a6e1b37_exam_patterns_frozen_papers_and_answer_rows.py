"""exam patterns, frozen papers and answer rows

Each subject may have an exam pattern (`exam_patterns`); paper k of a subject is composed
at its first start and frozen (`papers`, unique on subject, test number and version, with
its `paper_questions`: question versions, order, key and marking); a card keeps the paper
version it started with (`mock_test_attempts.paper_id`) and its answers, one row per
question (`attempt_answers`), which SQL scores set-based.

Upgrade brings existing data along: the questions of every started or finished card are
frozen as versions as they are now; cards that saw the same questions in the same order
share a paper (versions 1, 2 ... of paper k in order of their first start), marked +1/0/0
with the duration the cards had; their saved answers become answer rows. Finished cards
keep their recorded `score` and `correct_count`; `marks` is `correct_count` and the wrong
and unanswered counts come from the saved answers.

Downgrade writes every card's paper and answers back into `question_ids` and `answers`
(the revision before refuses while multiple or numerical questions exist), then drops the
new tables and columns.

Revision ID: 9c4f2a6e1b37
Revises: 5b1e7d93c2a4
Create Date: 2026-11-30 06:10:00

"""

import json
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "9c4f2a6e1b37"
down_revision = "5b1e7d93c2a4"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
question_type = sa.Enum("single", "multiple", "numerical", name="questiontype", native_enum=False, length=16)
outcome = sa.Enum("correct", "partial", "wrong", "unanswered", name="outcome", native_enum=False, length=16)
marks = sa.Numeric(6, 2)
numeric_answer = sa.Numeric(20, 6)
MARK_COLUMNS = [
    f"{kind}_{what}" for kind in ("single", "multiple", "numerical") for what in ("correct", "wrong", "unanswered")
]


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _datetime(value):
    """A DATETIME read with text(): a datetime on MariaDB, a string on SQLite."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def upgrade():
    op.create_table(
        "exam_patterns",
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("questions_per_paper", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        *(sa.Column(name, marks, nullable=False) for name in MARK_COLUMNS[:6]),
        sa.Column("multiple_partial", marks, nullable=False),
        *(sa.Column(name, marks, nullable=False) for name in MARK_COLUMNS[6:]),
        sa.Column("updated_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_exam_patterns_subject_id_subjects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_exam_patterns")),
        **mysql_table,
    )
    op.create_table(
        "papers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("test_number", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("question_count", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("max_marks", sa.Numeric(8, 2), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_papers")),
        sa.UniqueConstraint(
            "subject_id", "test_number", "version", name=op.f("uq_papers_subject_id_test_number_version")
        ),
        **mysql_table,
    )
    op.create_table(
        "paper_questions",
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("question_version_id", sa.Integer(), nullable=False),
        sa.Column("type", question_type, nullable=False),
        sa.Column("option_count", sa.Integer(), nullable=False),
        sa.Column("key_mask", sa.Integer(), nullable=True),
        sa.Column("key_answer", numeric_answer, nullable=True),
        sa.Column("key_tolerance", numeric_answer, nullable=True),
        sa.Column("marks_correct", marks, nullable=False),
        sa.Column("marks_wrong", marks, nullable=False),
        sa.Column("marks_unanswered", marks, nullable=False),
        sa.Column("marks_partial", marks, nullable=False),
        sa.Column("dropped", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_questions_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_paper_questions_question_id_questions")
        ),
        sa.ForeignKeyConstraint(
            ["question_version_id"],
            ["question_versions.id"],
            name=op.f("fk_paper_questions_question_version_id_question_versions"),
        ),
        sa.PrimaryKeyConstraint("paper_id", "position", name=op.f("pk_paper_questions")),
        **mysql_table,
    )
    op.create_index(op.f("ix_paper_questions_question_id"), "paper_questions", ["question_id"])
    op.create_index(op.f("ix_paper_questions_question_version_id"), "paper_questions", ["question_version_id"])
    op.create_table(
        "attempt_answers",
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("choice_mask", sa.Integer(), nullable=True),
        sa.Column("value", numeric_answer, nullable=True),
        sa.Column("marked_for_review", sa.Boolean(), nullable=False),
        sa.Column("time_spent_seconds", sa.Integer(), nullable=False),
        sa.Column("outcome", outcome, nullable=True),
        sa.Column("marks", marks, nullable=True),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["mock_test_attempts.id"],
            name=op.f("fk_attempt_answers_card_id_mock_test_attempts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("card_id", "position", name=op.f("pk_attempt_answers")),
        **mysql_table,
    )
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.add_column(sa.Column("paper_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("wrong_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("unanswered_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("partial_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("marks", sa.Numeric(8, 2), nullable=True))
        batch.create_index(batch.f("ix_mock_test_attempts_paper_id"), ["paper_id"])
        batch.create_foreign_key(batch.f("fk_mock_test_attempts_paper_id_papers"), "papers", ["paper_id"], ["id"])
    _bring_started_cards_along()


def _bring_started_cards_along():
    connection = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None)
    cards = connection.execute(
        sa.text(
            "SELECT id, subject_id, test_number, status, question_ids, answers, correct_count, "
            "started_at, deadline_at FROM mock_test_attempts WHERE question_ids IS NOT NULL "
            "ORDER BY started_at, id"
        )
    ).fetchall()
    if not cards:
        return
    used = sorted({qid for card in cards for qid in _json(card.question_ids) or []})
    questions = {
        row.id: row
        for row in connection.execute(
            sa.text("SELECT id, version, options, correct_option FROM questions WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": used},
        )
    }
    connection.execute(
        sa.text(
            "INSERT INTO question_versions (question_id, version, type, text, options, correct_option, "
            "correct_options, answer, tolerance, decimal_places, explanation, difficulty, created_at) "
            "SELECT id, version, type, text, options, correct_option, correct_options, answer, tolerance, "
            "decimal_places, explanation, difficulty, :now FROM questions WHERE id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True)),
        {"ids": list(questions), "now": now},
    )
    version_ids = dict(
        connection.execute(
            sa.text("SELECT question_id, id FROM question_versions WHERE question_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": list(questions)},
        ).fetchall()
    )
    papers = {}  # (subject, number, question ids) -> (paper id, questions)
    versions = defaultdict(int)
    answer_rows = []
    for card in cards:
        ids = tuple(qid for qid in _json(card.question_ids) or [] if qid in questions)
        key = (card.subject_id, card.test_number, ids)
        if key not in papers:
            versions[key[:2]] += 1
            minutes = 30
            started, deadline = _datetime(card.started_at), _datetime(card.deadline_at)
            if started and deadline:
                minutes = max(1, round((deadline - started).total_seconds() / 60))
            paper_id = connection.execute(
                sa.text(
                    "INSERT INTO papers (subject_id, test_number, version, question_count, duration_minutes, "
                    "max_marks, created_at) VALUES (:subject, :number, :version, :count, :minutes, :count, :now)"
                ),
                {
                    "subject": card.subject_id,
                    "number": card.test_number,
                    "version": versions[key[:2]],
                    "count": len(ids),
                    "minutes": minutes,
                    "now": _datetime(card.started_at) or now,
                },
            ).lastrowid
            if ids:
                connection.execute(
                    sa.text(
                        "INSERT INTO paper_questions (paper_id, position, question_id, question_version_id, type, "
                        "option_count, key_mask, marks_correct, marks_wrong, marks_unanswered, marks_partial, "
                        "dropped) VALUES (:paper, :position, :question, :version, 'single', :options, :mask, "
                        "1, 0, 0, 0, :dropped)"
                    ),
                    [
                        {
                            "paper": paper_id,
                            "position": position,
                            "question": qid,
                            "version": version_ids[qid],
                            "options": len(_json(questions[qid].options)),
                            "mask": 1 << questions[qid].correct_option,
                            "dropped": False,
                        }
                        for position, qid in enumerate(ids, 1)
                    ],
                )
            papers[key] = paper_id
        saved = _json(card.answers) or {}
        finished = card.status in ("completed", "expired")
        answered = 0
        for position, qid in enumerate(ids, 1):
            choice = saved.get(str(qid))
            if choice is not None:
                answered += 1
            right = choice is not None and choice == questions[qid].correct_option
            answer_rows.append(
                {
                    "card": card.id,
                    "position": position,
                    "mask": None if choice is None else 1 << choice,
                    "outcome": None
                    if not finished
                    else ("unanswered" if choice is None else "correct" if right else "wrong"),
                    "marks": None if not finished else (1 if right else 0),
                }
            )
        correct = card.correct_count or 0
        connection.execute(
            sa.text(
                "UPDATE mock_test_attempts SET paper_id = :paper, marks = :marks, wrong_count = :wrong, "
                "unanswered_count = :unanswered, partial_count = :partial WHERE id = :id"
            ),
            {
                "paper": papers[key],
                "id": card.id,
                "marks": correct if finished else None,
                "wrong": max(0, answered - correct) if finished else None,
                "unanswered": len(ids) - answered if finished else None,
                "partial": 0 if finished else None,
            },
        )
    if answer_rows:
        connection.execute(
            sa.text(
                "INSERT INTO attempt_answers (card_id, position, choice_mask, value, marked_for_review, "
                "time_spent_seconds, outcome, marks) VALUES (:card, :position, :mask, NULL, :no, 0, :outcome, :marks)"
            ),
            [{**row, "no": False} for row in answer_rows],
        )


def downgrade():
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT c.id, pq.position, pq.question_id, a.choice_mask FROM mock_test_attempts c "
            "JOIN paper_questions pq ON pq.paper_id = c.paper_id "
            "LEFT JOIN attempt_answers a ON a.card_id = c.id AND a.position = pq.position "
            "ORDER BY c.id, pq.position"
        )
    ).fetchall()
    cards = defaultdict(lambda: ([], {}))
    for card_id, _position, question_id, mask in rows:
        ids, answers = cards[card_id]
        ids.append(question_id)
        if mask:
            answers[str(question_id)] = mask.bit_length() - 1
    for card_id, (ids, answers) in cards.items():
        connection.execute(
            sa.text("UPDATE mock_test_attempts SET question_ids = :ids, answers = :answers WHERE id = :id"),
            {"ids": json.dumps(ids), "answers": json.dumps(answers), "id": card_id},
        )
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.drop_constraint(batch.f("fk_mock_test_attempts_paper_id_papers"), type_="foreignkey")
        batch.drop_index(batch.f("ix_mock_test_attempts_paper_id"))
        batch.drop_column("marks")
        batch.drop_column("partial_count")
        batch.drop_column("unanswered_count")
        batch.drop_column("wrong_count")
        batch.drop_column("paper_id")
    op.drop_table("attempt_answers")
    op.drop_table("paper_questions")
    op.drop_table("papers")
    op.drop_table("exam_patterns")
