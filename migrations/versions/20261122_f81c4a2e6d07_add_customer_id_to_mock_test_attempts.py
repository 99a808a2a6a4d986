"""add customer_id to mock test attempts

The card list of a customer (GET /api/mock-tests, by subject then test number) is the
busiest query of the product. With the customer on the card and an index on
(customer_id, subject_id, test_number) it is an index range read in list order; through
purchases it was a join, a temporary table and a sort of every card on every request.

Deploy it together with the code that writes customer_id: the column is NOT NULL, so a
worker still running older code would fail to create cards (its purchases roll back).

Revision ID: f81c4a2e6d07
Revises: e5b2d8f4a913
Create Date: 2026-11-22 01:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "f81c4a2e6d07"
down_revision = "e5b2d8f4a913"
branch_labels = None
depends_on = None

INDEX = "ix_mock_test_attempts_customer_id_subject_id_test_number"


def upgrade():
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE mock_test_attempts SET customer_id = "
        "(SELECT purchases.customer_id FROM purchases WHERE purchases.id = mock_test_attempts.purchase_id)"
    )
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.alter_column("customer_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_mock_test_attempts_customer_id_customers"), "customers", ["customer_id"], ["id"]
        )
        batch.create_index(INDEX, ["customer_id", "subject_id", "test_number"])


def downgrade():
    with op.batch_alter_table("mock_test_attempts") as batch:
        batch.drop_constraint(op.f("fk_mock_test_attempts_customer_id_customers"), type_="foreignkey")
        batch.drop_index(INDEX)
        batch.drop_column("customer_id")
