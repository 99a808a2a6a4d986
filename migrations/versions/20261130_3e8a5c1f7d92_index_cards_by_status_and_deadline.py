"""index cards by status and deadline

`flask finalize-overdue` looks for the cards still in progress past their deadline; this
index makes that a range read instead of a scan of every card.

Revision ID: 3e8a5c1f7d92
Revises: 9c4f2a6e1b37
Create Date: 2026-11-30 06:20:00

"""

from alembic import op

revision = "3e8a5c1f7d92"
down_revision = "9c4f2a6e1b37"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_mock_test_attempts_status_deadline_at", "mock_test_attempts", ["status", "deadline_at"])


def downgrade():
    op.drop_index("ix_mock_test_attempts_status_deadline_at", table_name="mock_test_attempts")
