"""email verification, account tokens and the mail outbox

`users.email_verified_at`: when the owner proved the mailbox; an unverified account
cannot pay. `account_tokens`: the SHA-256 of each mailed secret (email verification,
password reset), single use and expiring. `outbox_messages`: mail written in the
transaction of the change that caused it, sent by `flask send-mail`.

Upgrade: accounts that exist already registered before verification existed and are
marked verified (at their creation time), so that nobody who could pay yesterday is
refused today.

Downgrade: the tables go with their unsent mail and unused tokens; the column goes.

Revision ID: e7f9b1c3d5a8
Revises: d4e6a8c0b2f1
Create Date: 2026-11-30 08:10:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "e7f9b1c3d5a8"
down_revision = "d4e6a8c0b2f1"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
hex_digest = sa.String(64).with_variant(mysql.VARCHAR(64, charset="ascii", collation="ascii_bin"), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

token_purpose = sa.Enum("verify_email", "reset_password", name="tokenpurpose", native_enum=False, length=16)
mail_kind = sa.Enum("verify_email", "reset_password", "password_changed", name="mailkind", native_enum=False, length=24)
mail_status = sa.Enum("pending", "sent", "failed", name="mailstatus", native_enum=False, length=16)

users = sa.table("users", sa.column("created_at", precise_datetime), sa.column("email_verified_at", precise_datetime))


def upgrade():
    # A plain ADD COLUMN: SQLite cannot rebuild `users` in batch mode while the tables that
    # reference it enforce their foreign keys.
    op.add_column("users", sa.Column("email_verified_at", precise_datetime, nullable=True))
    op.get_bind().execute(users.update().values(email_verified_at=users.c.created_at))

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", token_purpose, nullable=False),
        sa.Column("token_sha256", hex_digest, nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("expires_at", precise_datetime, nullable=False),
        sa.Column("used_at", precise_datetime, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_account_tokens_token_sha256")),
        **mysql_table,
    )
    op.create_index(op.f("ix_account_tokens_user_id"), "account_tokens", ["user_id"])
    op.create_index(op.f("ix_account_tokens_expires_at"), "account_tokens", ["expires_at"])

    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", mail_kind, nullable=False),
        sa.Column("recipient", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", mail_status, nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", precise_datetime, nullable=False),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", precise_datetime, nullable=True),
        sa.Column("sent_at", precise_datetime, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        **mysql_table,
    )
    op.create_index("ix_outbox_messages_status_next_attempt_at", "outbox_messages", ["status", "next_attempt_at"])


def downgrade():
    op.drop_table("outbox_messages")
    # Its indexes go with it (MariaDB refuses to drop the one behind the foreign key alone).
    op.drop_table("account_tokens")
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("email_verified_at")
