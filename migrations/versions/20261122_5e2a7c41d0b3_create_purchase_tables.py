"""create purchases, purchase items and mock test attempts

This is the schema deployed databases got first: mock_test_attempts is unique on
(purchase_id, test_number) under the name unique_test_per_purchase, which breaks
purchases of several subjects. The next revision fixes it.

Revision ID: 5e2a7c41d0b3
Revises: 3b8f1d2c9a70
Create Date: 2026-11-22 00:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "5e2a7c41d0b3"
down_revision = "3b8f1d2c9a70"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
money = sa.Numeric(precision=10, scale=2)


def upgrade():
    op.create_table(
        "purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "purchase_type",
            sa.Enum(
                "single_subject",
                "multiple_subjects",
                "bundle",
                name="purchasetype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("bundle_id", sa.Integer(), nullable=True),
        sa.Column("total_cost", money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_purchases_customer_id_customers")),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name=op.f("fk_purchases_course_id_courses")),
        sa.ForeignKeyConstraint(["bundle_id"], ["bundles.id"], name=op.f("fk_purchases_bundle_id_bundles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        **mysql_table,
    )
    op.create_index(op.f("ix_purchases_customer_id"), "purchases", ["customer_id"])
    op.create_index(op.f("ix_purchases_course_id"), "purchases", ["course_id"])
    op.create_index(op.f("ix_purchases_bundle_id"), "purchases", ["bundle_id"])

    op.create_table(
        "purchase_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("price", money, nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_purchase_items_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_purchase_items_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_purchase_items_subject_id_subjects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_items")),
        sa.UniqueConstraint("customer_id", "subject_id", name=op.f("uq_purchase_items_customer_id_subject_id")),
        **mysql_table,
    )
    op.create_index(op.f("ix_purchase_items_purchase_id"), "purchase_items", ["purchase_id"])
    op.create_index(op.f("ix_purchase_items_subject_id"), "purchase_items", ["subject_id"])

    op.create_table(
        "mock_test_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("test_number", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "available",
                "in_progress",
                "completed",
                "expired",
                name="cardstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("question_ids", sa.JSON(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=True),
        sa.Column("correct_count", sa.Integer(), nullable=True),
        sa.Column("score", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("started_at", precise_datetime, nullable=True),
        sa.Column("deadline_at", precise_datetime, nullable=True),
        sa.Column("submitted_at", precise_datetime, nullable=True),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("updated_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_mock_test_attempts_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_mock_test_attempts_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mock_test_attempts")),
        # The historical, wrong constraint: one card number per purchase, whatever the subject.
        sa.UniqueConstraint("purchase_id", "test_number", name="unique_test_per_purchase"),
        **mysql_table,
    )
    op.create_index(op.f("ix_mock_test_attempts_subject_id"), "mock_test_attempts", ["subject_id"])


def downgrade():
    op.drop_table("mock_test_attempts")
    op.drop_table("purchase_items")
    op.drop_table("purchases")
