"""compare idempotency keys byte for byte

Keys were unique on (customer_id, key) in utf8mb4_unicode_ci, which holds "key-ab" and
"KEY-AB", "café" and "cafe", "order " and "order" to be one key (utf8mb4_bin would still
ignore trailing spaces: it is PAD SPACE). Keys are now unique on (customer_id, key_sha256),
the SHA-256 of the key's UTF-8 bytes, computed here for the rows already stored.

The new unique index is created before the old one is dropped: the old one backs the
foreign key on customer_id, and MariaDB refuses to drop it first (error 1553). The
downgrade refuses, with nothing changed, while keys exist that the old collation cannot
tell apart.

Revision ID: af1f1b6ba39b
Revises: c7a9e3b1d402
Create Date: 2026-11-30 00:00:00

"""

import hashlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "af1f1b6ba39b"
down_revision = "c7a9e3b1d402"
branch_labels = None
depends_on = None

TABLE = "idempotency_keys"
OLD = "uq_idempotency_keys_customer_id_key"
NEW = "uq_idempotency_keys_customer_id_key_sha256"
hex_digest = sa.String(64).with_variant(mysql.VARCHAR(64, charset="ascii", collation="ascii_bin"), "mysql", "mariadb")
keys = sa.table(
    TABLE,
    sa.column("id", sa.Integer),
    sa.column("customer_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("key_sha256", sa.String),
)


def upgrade():
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("key_sha256", hex_digest, nullable=True))
    bind = op.get_bind()
    digests = [
        {"row_id": row.id, "digest": hashlib.sha256(row.key.encode("utf-8")).hexdigest()}
        for row in bind.execute(sa.select(keys.c.id, keys.c.key))
    ]
    if digests:
        bind.execute(
            keys.update().where(keys.c.id == sa.bindparam("row_id")).values(key_sha256=sa.bindparam("digest")),
            digests,
        )
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("key_sha256", existing_type=hex_digest, nullable=False)
        batch.create_unique_constraint(NEW, ["customer_id", "key_sha256"])
        batch.drop_constraint(OLD, type_="unique")


def downgrade():
    # GROUP BY compares as the old unique constraint did (the column's own collation).
    clashes = (
        op.get_bind()
        .execute(
            sa.select(sa.func.count())
            .select_from(keys)
            .group_by(keys.c.customer_id, keys.c.key)
            .having(sa.func.count() > 1)
        )
        .fetchall()
    )
    if clashes:
        raise RuntimeError(
            f"Refusing to downgrade: {len(clashes)} Idempotency-Key(s) are stored in several spellings that "
            f"{OLD} (customer_id, key) would hold to be one key (case, accents, trailing spaces). Nothing "
            "was changed. Delete those keys first (or wait: keys expire after 24 hours) if you must downgrade."
        )
    with op.batch_alter_table(TABLE) as batch:
        batch.create_unique_constraint(OLD, ["customer_id", "key"])
        batch.drop_constraint(NEW, type_="unique")
        batch.drop_column("key_sha256")
