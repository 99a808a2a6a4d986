"""add question_count to mock test attempts

Card lists show how many questions a started test has; keeping the number in its own
column lets them skip the JSON paper (a LONGTEXT on MariaDB, which forces on-disk
temporary tables when sorted).

Revision ID: e5b2d8f4a913
Revises: c47e9a1d5f60
Create Date: 2026-11-22 01:05:00

"""

import json

import sqlalchemy as sa
from alembic import op

revision = "e5b2d8f4a913"
down_revision = "c47e9a1d5f60"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.add_column(sa.Column("question_count", sa.Integer(), nullable=True))
    connection = op.get_bind()
    started = connection.execute(
        sa.text("SELECT id, question_ids FROM mock_test_attempts WHERE question_ids IS NOT NULL")
    ).fetchall()
    for card_id, question_ids in started:
        ids = json.loads(question_ids) if isinstance(question_ids, str) else question_ids
        connection.execute(
            sa.text("UPDATE mock_test_attempts SET question_count = :count WHERE id = :id"),
            {"count": len(ids or []), "id": card_id},
        )


def downgrade():
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.drop_column("question_count")
