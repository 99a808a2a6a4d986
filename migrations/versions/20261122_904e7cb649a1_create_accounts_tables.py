"""create users, customers, subscriptions and token blocklist

Revision ID: 904e7cb649a1
Revises:
Create Date: 2026-11-22 00:17:06.692031

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "904e7cb649a1"
down_revision = None
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# Exact comparison of (lower-cased) emails on MySQL, as the application compares them.
email_string = sa.String(length=255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", email_string, nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("role", sa.Enum("student", "admin", name="role", native_enum=False, length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("updated_at", precise_datetime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        **mysql_table,
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", email_string, nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("updated_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_customers_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
        sa.UniqueConstraint("phone_number", name=op.f("uq_customers_phone_number")),
        sa.UniqueConstraint("user_id", name=op.f("uq_customers_user_id")),
        **mysql_table,
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.Enum("basic", "premium", name="plan", native_enum=False, length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "cancelled", "expired", name="subscriptionstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("started_at", precise_datetime, nullable=False),
        sa.Column("expires_at", precise_datetime, nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_subscriptions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        **mysql_table,
    )
    op.create_index(op.f("ix_subscriptions_customer_id"), "subscriptions", ["customer_id"])
    op.create_table(
        "token_blocklist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("token_type", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", precise_datetime, nullable=False),
        sa.Column("revoked_at", precise_datetime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_blocklist")),
        sa.UniqueConstraint("jti", name=op.f("uq_token_blocklist_jti")),
        **mysql_table,
    )
    op.create_index(op.f("ix_token_blocklist_expires_at"), "token_blocklist", ["expires_at"])
    op.create_index(op.f("ix_token_blocklist_user_id"), "token_blocklist", ["user_id"])


def downgrade():
    op.drop_table("token_blocklist")
    op.drop_table("subscriptions")
    op.drop_table("customers")
    op.drop_table("users")
