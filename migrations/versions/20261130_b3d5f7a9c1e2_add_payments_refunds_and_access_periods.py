"""add payments, refunds, webhook events and access periods

A purchase is now a checkout paid through a provider: it gets a status, its provider and
provider order id, and the money tables `payments`, `refunds` and `payment_events`.
Subjects and bundles get `access_days` (365); each purchase item gets a state, its
`access_until`, and `active_customer_id`: the customer while the entitlement is active,
NULL otherwise. The unique (customer_id, subject_id) becomes unique (active_customer_id,
subject_id), so a subject is still owned once at a time but can be bought again after a
refund or once its access ended.

Upgrade: every existing purchase becomes `paid` (provider `legacy`, paid when it was
made) and every item `active` with no end to its access; items, cards and ownership are
unchanged. The index on purchase_items.customer_id is created before the old unique one
is dropped: the old one backs the foreign key (MariaDB error 1553 otherwise).

Downgrade: checkouts that were never paid (pending, failed, expired) go with their items,
and so do items that were never granted (surplus); refunded and expired
entitlements become plain purchases again (the old schema cannot tell them apart). It
refuses, with nothing changed, while a customer holds a subject in two purchases (bought
again after a refund or after its access ended): the old constraint forbids that.

Revision ID: b3d5f7a9c1e2
Revises: 3e8a5c1f7d92
Create Date: 2026-11-30 06:00:00

"""

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "b3d5f7a9c1e2"
down_revision = "3e8a5c1f7d92"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
money = sa.Numeric(precision=10, scale=2)
OLD_OWNER = "uq_purchase_items_customer_id_subject_id"
NEW_OWNER = "uq_purchase_items_active_customer_id_subject_id"


def _enum(*values: str, name: str, length: int) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=length)


purchase_status = _enum(
    "pending_payment", "paid", "failed", "expired", "partially_refunded", "refunded", name="purchasestatus", length=24
)
provider = _enum("razorpay", "sandbox", "none", "legacy", "comp", name="provider", length=16)
item_state = _enum("pending", "active", "surplus", "refunded", "expired", name="itemstate", length=16)
payment_status = _enum("authorized", "captured", "failed", name="paymentstatus", length=16)
refund_status = _enum("pending", "processed", "failed", name="refundstatus", length=16)

purchases = sa.table(
    "purchases",
    sa.column("id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("provider", sa.String),
    sa.column("created_at", precise_datetime),
    sa.column("paid_at", precise_datetime),
)
items = sa.table(
    "purchase_items",
    sa.column("id", sa.Integer),
    sa.column("purchase_id", sa.Integer),
    sa.column("customer_id", sa.Integer),
    sa.column("subject_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("active_customer_id", sa.Integer),
)


def upgrade():
    for table in ("subjects", "bundles"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("access_days", sa.Integer(), nullable=False, server_default="365"))

    # Plain ALTER TABLE ADD COLUMNs and indexes: SQLite cannot rebuild `purchases` in batch
    # mode while the tables that reference it enforce their foreign keys.
    op.add_column("purchases", sa.Column("status", purchase_status, nullable=False, server_default="paid"))
    op.add_column("purchases", sa.Column("provider", provider, nullable=False, server_default="legacy"))
    op.add_column("purchases", sa.Column("provider_order_id", sa.String(length=64), nullable=True))
    op.add_column("purchases", sa.Column("expires_at", precise_datetime, nullable=True))
    op.add_column("purchases", sa.Column("paid_at", precise_datetime, nullable=True))
    op.add_column("purchases", sa.Column("granted_by_id", sa.Integer(), nullable=True))
    op.add_column("purchases", sa.Column("refund_due", money, nullable=False, server_default="0.00"))
    op.create_index("uq_purchases_provider_order_id", "purchases", ["provider_order_id"], unique=True)
    op.create_index(op.f("ix_purchases_status"), "purchases", ["status"])
    op.get_bind().execute(purchases.update().values(paid_at=purchases.c.created_at))

    with op.batch_alter_table("purchase_items") as batch:
        batch.add_column(sa.Column("state", item_state, nullable=False, server_default="active"))
        batch.add_column(sa.Column("active_customer_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("access_until", precise_datetime, nullable=True))
    op.get_bind().execute(items.update().values(active_customer_id=items.c.customer_id))
    with op.batch_alter_table("purchase_items") as batch:
        # First the index the customer_id foreign key keeps, then the new owner key, then
        # the old one goes (MariaDB refuses to drop the index behind a foreign key alone).
        batch.create_index(op.f("ix_purchase_items_customer_id"), ["customer_id"])
        batch.create_unique_constraint(NEW_OWNER, ["active_customer_id", "subject_id"])
        batch.create_foreign_key(
            op.f("fk_purchase_items_active_customer_id_customers"), "customers", ["active_customer_id"], ["id"]
        )
        batch.drop_constraint(OLD_OWNER, type_="unique")

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("provider", provider, nullable=False),
        sa.Column("provider_payment_id", sa.String(length=64), nullable=False),
        sa.Column("amount_paise", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", payment_status, nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], name=op.f("fk_payments_purchase_id_purchases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("provider_payment_id", name=op.f("uq_payments_provider_payment_id")),
        **mysql_table,
    )
    op.create_index(op.f("ix_payments_purchase_id"), "payments", ["purchase_id"])

    op.create_table(
        "refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=True),
        sa.Column("amount", money, nullable=False),
        sa.Column("subject_ids", sa.JSON(), nullable=False),
        sa.Column("status", refund_status, nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("updated_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], name=op.f("fk_refunds_purchase_id_purchases")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"], name=op.f("fk_refunds_requested_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_refunds_idempotency_key")),
        sa.UniqueConstraint("provider_refund_id", name=op.f("uq_refunds_provider_refund_id")),
        **mysql_table,
    )
    op.create_index(op.f("ix_refunds_purchase_id"), "refunds", ["purchase_id"])
    op.create_index(op.f("ix_refunds_payment_id"), "refunds", ["payment_id"])

    op.create_table(
        "payment_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", provider, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("received_at", precise_datetime, nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_payment_events_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
        sa.UniqueConstraint("provider", "event_id", name=op.f("uq_payment_events_provider_event_id")),
        **mysql_table,
    )
    op.create_index(op.f("ix_payment_events_purchase_id"), "payment_events", ["purchase_id"])


def downgrade():
    bind = op.get_bind()
    kept = items.c.state.in_(["active", "refunded", "expired"])
    twice = bind.execute(
        sa.select(items.c.customer_id, items.c.subject_id)
        .where(kept)
        .group_by(items.c.customer_id, items.c.subject_id)
        .having(sa.func.count() > 1)
    ).fetchall()
    if twice:
        raise RuntimeError(
            f"Refusing to downgrade: {len(twice)} (customer, subject) pair(s) were bought again after a refund "
            f"or after their access ended, which {OLD_OWNER} (customer_id, subject_id) forbids. Nothing was changed."
        )
    op.drop_table("payment_events")
    op.drop_table("refunds")
    op.drop_table("payments")

    unpaid = sa.select(purchases.c.id).where(purchases.c.status.in_(["pending_payment", "failed", "expired"]))
    dropped_items = bind.execute(items.delete().where(~kept)).rowcount
    dropped_purchases = bind.execute(purchases.delete().where(purchases.c.id.in_(unpaid))).rowcount
    if dropped_items or dropped_purchases:
        log.warning(
            "downgrade: removed %d unpaid checkout(s) and %d item(s) that were never granted",
            dropped_purchases,
            dropped_items,
        )
    with op.batch_alter_table("purchase_items") as batch:
        batch.create_unique_constraint(OLD_OWNER, ["customer_id", "subject_id"])
        batch.drop_constraint(op.f("fk_purchase_items_active_customer_id_customers"), type_="foreignkey")
        batch.drop_constraint(NEW_OWNER, type_="unique")
        batch.drop_index(op.f("ix_purchase_items_customer_id"))
        batch.drop_column("access_until")
        batch.drop_column("active_customer_id")
        batch.drop_column("state")

    op.drop_index(op.f("ix_purchases_status"), table_name="purchases")
    op.drop_index("uq_purchases_provider_order_id", table_name="purchases")
    with op.batch_alter_table("purchases", recreate="never") as batch:
        for column in ("refund_due", "granted_by_id", "paid_at", "expires_at", "provider_order_id", "provider"):
            batch.drop_column(column)
        batch.drop_column("status")

    for table in ("bundles", "subjects"):
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("access_days")
