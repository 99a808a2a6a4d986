"""add unique_test_per_purchase_subject

Replaces unique_test_per_purchase (purchase_id, test_number) by
unique_test_per_purchase_subject (purchase_id, subject_id, test_number), so that one
purchase can hold card 1 of several subjects.

The order is the point: MySQL/MariaDB refuse to drop an index that backs a foreign
key (error 1553, "needed in a foreign key constraint") while no other index starts
with the foreign key's column. unique_test_per_purchase is the index behind the
purchase_id foreign key, so the composite constraint (which starts with purchase_id)
is created first and the old one dropped after. Alembic's autogenerate emits them the
other way round; this file is ordered by hand. FOREIGN_KEY_CHECKS=0 is no way out: it
would leave the foreign key without an index.

Revision ID: 8d4f0b6e2c15
Revises: 5e2a7c41d0b3
Create Date: 2026-11-22 00:41:00

"""

import sqlalchemy as sa
from alembic import op

revision = "8d4f0b6e2c15"
down_revision = "5e2a7c41d0b3"
branch_labels = None
depends_on = None

COMPOSITE = "unique_test_per_purchase_subject"
OLD = "unique_test_per_purchase"


def upgrade():
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.create_unique_constraint(COMPOSITE, ["purchase_id", "subject_id", "test_number"])
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.drop_constraint(OLD, type_="unique")


def downgrade():
    # The old constraint cannot hold two subjects' card N in one purchase: refuse, and
    # change nothing, while such rows exist.
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT purchase_id, test_number, COUNT(*) AS cards FROM mock_test_attempts "
                "GROUP BY purchase_id, test_number HAVING COUNT(*) > 1"
            )
        )
        .fetchall()
    )
    if clashes:
        purchases = sorted({row.purchase_id for row in clashes})
        shown = ", ".join(map(str, purchases[:20])) + (" ..." if len(purchases) > 20 else "")
        raise RuntimeError(
            f"Refusing to downgrade: {len(purchases)} purchase(s) hold cards of several subjects with the "
            f"same test number (purchase ids: {shown}), which {OLD} (purchase_id, test_number) would "
            "reject. Nothing was changed. Remove or move those cards first if you really must downgrade."
        )
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.create_unique_constraint(OLD, ["purchase_id", "test_number"])
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.drop_constraint(COMPOSITE, type_="unique")
