"""create catalog_version

One row whose number every catalog change moves: catalog reads answer with it as their
ETag, so a conditional GET is a 304 without building the page again.

Revision ID: c7a9e3b1d402
Revises: f81c4a2e6d07
Create Date: 2026-11-30 05:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "c7a9e3b1d402"
down_revision = "f81c4a2e6d07"
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        "catalog_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 1}])


def downgrade():
    op.drop_table("catalog_version")
