"""question types and versions

Questions get a type (`single`, `multiple`, `numerical`), the key of each type
(`correct_options` for multiple, `answer` with `tolerance` or `decimal_places` for
numerical) and a version number; `question_versions` keeps each version a paper used,
frozen. Existing questions are single-choice questions at version 1 (`correct_options`
is their one correct option).

Downgrade: refuses, changing nothing, while a multiple or numerical question exists (the
older schema cannot hold it); otherwise the versions are forgotten.

Revision ID: 5b1e7d93c2a4
Revises: 46343628adeb
Create Date: 2026-11-30 05:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "5b1e7d93c2a4"
down_revision = "46343628adeb"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
question_type = sa.Enum("single", "multiple", "numerical", name="questiontype", native_enum=False, length=16)
difficulty = sa.Enum("easy", "medium", "hard", name="difficulty", native_enum=False, length=16)
numeric_answer = sa.Numeric(20, 6)


def upgrade():
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("type", question_type, nullable=False, server_default="single"))
        batch.add_column(sa.Column("correct_options", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("answer", numeric_answer, nullable=True))
        batch.add_column(sa.Column("tolerance", numeric_answer, nullable=True))
        batch.add_column(sa.Column("decimal_places", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.alter_column("correct_option", existing_type=sa.Integer(), nullable=True)
    op.execute("UPDATE questions SET correct_options = json_array(correct_option)")
    op.create_table(
        "question_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", question_type, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("correct_option", sa.Integer(), nullable=True),
        sa.Column("correct_options", sa.JSON(), nullable=True),
        sa.Column("answer", numeric_answer, nullable=True),
        sa.Column("tolerance", numeric_answer, nullable=True),
        sa.Column("decimal_places", sa.Integer(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("difficulty", difficulty, nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_question_versions_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_question_versions")),
        sa.UniqueConstraint("question_id", "version", name=op.f("uq_question_versions_question_id_version")),
        **mysql_table,
    )


def downgrade():
    other = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM questions WHERE type <> 'single'")).scalar_one()
    if other:
        raise RuntimeError(
            f"Cannot downgrade: {other} multiple-choice or numerical question(s) exist, which the older "
            "schema cannot hold. Deactivate and delete them first."
        )
    op.drop_table("question_versions")
    with op.batch_alter_table("questions") as batch:
        batch.alter_column("correct_option", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("version")
        batch.drop_column("decimal_places")
        batch.drop_column("tolerance")
        batch.drop_column("answer")
        batch.drop_column("correct_options")
        batch.drop_column("type")
