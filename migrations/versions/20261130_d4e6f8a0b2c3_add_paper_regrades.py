"""add paper_regrades: the audit of regrades of frozen papers

An admin corrects the key of a question of one paper version, or drops it (full marks to
all); each such regrade is recorded with the old and the new key, the admin, when, and how
many submitted cards it rescored and how many scores it changed. The key itself lives on
`paper_questions` already (key_mask, key_answer, key_tolerance, dropped).

Upgrade creates the table; downgrade drops it (the regraded keys stay on paper_questions).

Revision ID: d4e6f8a0b2c3
Revises: b3d5f7a9c1e2
Create Date: 2026-11-30 08:00:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "d4e6f8a0b2c3"
down_revision = "b3d5f7a9c1e2"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
regrade_action = sa.Enum("correct_key", "drop", name="regradeaction", native_enum=False, length=16)


def upgrade():
    op.create_table(
        "paper_regrades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("action", regrade_action, nullable=False),
        sa.Column("old_key", sa.JSON(), nullable=False),
        sa.Column("new_key", sa.JSON(), nullable=True),
        sa.Column("admin_id", sa.Integer(), nullable=True),
        sa.Column("attempts_rescored", sa.Integer(), nullable=False),
        sa.Column("scores_changed", sa.Integer(), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_regrades_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_paper_regrades_question_id_questions")
        ),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["users.id"], name=op.f("fk_paper_regrades_admin_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_regrades")),
        **mysql_table,
    )
    op.create_index(op.f("ix_paper_regrades_paper_id"), "paper_regrades", ["paper_id"])
    op.create_index(op.f("ix_paper_regrades_question_id"), "paper_regrades", ["question_id"])
    op.create_index(op.f("ix_paper_regrades_admin_id"), "paper_regrades", ["admin_id"])


def downgrade():
    op.drop_table("paper_regrades")
