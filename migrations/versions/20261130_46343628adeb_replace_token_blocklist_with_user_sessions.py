"""replace token_blocklist with user_sessions

A login is a row of user_sessions; its access and refresh tokens (and the access tokens
refreshed from them) carry the row's id as the `sid` claim, and are accepted only while
the session has not ended. A logout ends the session, so both tokens stop at once;
logging out everywhere is one UPDATE.

Upgrade: tokens issued before it carry no `sid` and are refused from now on (their
owners log in again), so the revocations in token_blocklist protect nothing any more
and the table goes.

Downgrade: token_blocklist comes back empty and the sessions are forgotten. The older
code ignores `sid`, so tokens of sessions that were logged out would be accepted again
until they expire: rotate JWT_SECRET_KEY together with a downgrade (every token ends).

Revision ID: 46343628adeb
Revises: af1f1b6ba39b
Create Date: 2026-11-30 04:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "46343628adeb"
down_revision = "af1f1b6ba39b"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("expires_at", precise_datetime, nullable=False),
        sa.Column("ended_at", precise_datetime, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        **mysql_table,
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_index(op.f("ix_user_sessions_expires_at"), "user_sessions", ["expires_at"])
    op.drop_index(op.f("ix_token_blocklist_user_id"), table_name="token_blocklist")
    op.drop_index(op.f("ix_token_blocklist_expires_at"), table_name="token_blocklist")
    op.drop_table("token_blocklist")


def downgrade():
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
    # Its indexes go with it (MariaDB refuses to drop the one behind the foreign key alone).
    op.drop_table("user_sessions")
