"""rank first attempts and bookmarks

Rank and percentile count the better rows of one paper version over an index, instead of
reading every attempt. `mock_test_attempts` gets `time_taken_seconds` (start to submission,
at most the paper's duration) and `ranked`: TRUE on a customer's first submitted attempt of
a paper version, NULL on later attempts and on staff's (admins who became customers).
`ix_mock_test_attempts_ranking (paper_id, ranked, marks DESC, wrong_count,
time_taken_seconds)` holds the ranking's order; the unique index
`uq_mock_test_attempts_paper_id_customer_id_ranked` lets one attempt per customer and paper
be ranked (NULLs never collide). Both are plain indexes: SQLite adds them without rebuilding
the table, which the tables referring to it forbid. `bookmarks` keeps the questions of
submitted papers a customer marked for revision.

Upgrade backfills every submitted card that has a paper: its time taken, and `ranked` on
each non-staff customer's earliest submitted card of each paper version.

Revision ID: d4e6a8c0b2f1
Revises: d4e6f8a0b2c3
Create Date: 2026-11-30 08:00:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "d4e6a8c0b2f1"
down_revision = "d4e6f8a0b2c3"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
RANKING = "ix_mock_test_attempts_ranking"
RANKED_ONCE = "uq_mock_test_attempts_paper_id_customer_id_ranked"
SUBMITTED = "c.status IN ('completed', 'expired') AND c.paper_id IS NOT NULL AND c.marks IS NOT NULL"


def upgrade():
    op.add_column("mock_test_attempts", sa.Column("time_taken_seconds", sa.Integer(), nullable=True))
    op.add_column("mock_test_attempts", sa.Column("ranked", sa.Boolean(), nullable=True))
    _backfill()
    op.create_index(
        RANKING,
        "mock_test_attempts",
        ["paper_id", "ranked", sa.text("marks DESC"), "wrong_count", "time_taken_seconds"],
    )
    op.create_index(RANKED_ONCE, "mock_test_attempts", ["paper_id", "customer_id", "ranked"], unique=True)
    op.create_table(
        "bookmarks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_bookmarks_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_bookmarks_question_id_questions"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["paper_id", "position"],
            ["paper_questions.paper_id", "paper_questions.position"],
            name=op.f("fk_bookmarks_paper_id_paper_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookmarks")),
        sa.UniqueConstraint("customer_id", "question_id", name=op.f("uq_bookmarks_customer_id_question_id")),
        **mysql_table,
    )
    op.create_index(op.f("ix_bookmarks_question_id"), "bookmarks", ["question_id"])
    op.create_index(op.f("ix_bookmarks_paper_id_position"), "bookmarks", ["paper_id", "position"])


def _backfill():
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        elapsed = "CAST((julianday(t.submitted_at) - julianday(t.started_at)) * 86400 AS INTEGER)"
        least = "MIN"
    else:
        elapsed = "TIMESTAMPDIFF(SECOND, t.started_at, t.submitted_at)"
        least = "LEAST"
    # A card without a start time counts the whole duration.
    connection.execute(
        sa.text(
            f"UPDATE mock_test_attempts AS t SET time_taken_seconds = ("  # noqa: S608 - no input, two spellings
            f"SELECT {least}(COALESCE({elapsed}, p.duration_minutes * 60), p.duration_minutes * 60) "
            "FROM papers p WHERE p.id = t.paper_id) "
            "WHERE t.status IN ('completed', 'expired') AND t.paper_id IS NOT NULL"
        )
    )
    # Each non-staff customer's earliest submitted card of each paper version. The window
    # runs in a derived table, which MariaDB materialises (it may not read the updated table).
    connection.execute(
        sa.text(
            "UPDATE mock_test_attempts SET ranked = 1 WHERE id IN (SELECT id FROM ("  # noqa: S608
            "SELECT c.id, ROW_NUMBER() OVER (PARTITION BY c.customer_id, c.paper_id "
            "ORDER BY c.submitted_at, c.id) AS n FROM mock_test_attempts c "
            "JOIN customers k ON k.id = c.customer_id JOIN users u ON u.id = k.user_id "
            f"WHERE {SUBMITTED} AND u.role <> 'admin') AS firsts WHERE n = 1)"
        )
    )


def downgrade():
    op.drop_table("bookmarks")  # with its indexes
    op.drop_index(RANKED_ONCE, table_name="mock_test_attempts")
    op.drop_index(RANKING, table_name="mock_test_attempts")
    with op.batch_alter_table("mock_test_attempts", recreate="never") as batch:
        batch.drop_column("ranked")
        batch.drop_column("time_taken_seconds")
