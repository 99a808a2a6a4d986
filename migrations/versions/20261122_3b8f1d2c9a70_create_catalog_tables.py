"""create courses, subjects, bundles and bundle_subjects

Revision ID: 3b8f1d2c9a70
Revises: 904e7cb649a1
Create Date: 2026-11-22 00:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "3b8f1d2c9a70"
down_revision = "904e7cb649a1"
branch_labels = None
depends_on = None

precise_datetime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
mysql_table = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def timestamps():
    return [
        sa.Column("created_at", precise_datetime, nullable=False),
        sa.Column("updated_at", precise_datetime, nullable=False),
    ]


def upgrade():
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
        sa.UniqueConstraint("slug", name=op.f("uq_courses_slug")),
        **mysql_table,
    )
    op.create_index(op.f("ix_courses_title"), "courses", ["title"])
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *timestamps(),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_subjects_course_id_courses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
        sa.UniqueConstraint("course_id", "name", name=op.f("uq_subjects_course_id_name")),
        **mysql_table,
    )
    op.create_table(
        "bundles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *timestamps(),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_bundles_course_id_courses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
        sa.UniqueConstraint("slug", name=op.f("uq_bundles_slug")),
        **mysql_table,
    )
    op.create_index(op.f("ix_bundles_course_id"), "bundles", ["course_id"])
    op.create_table(
        "bundle_subjects",
        sa.Column("bundle_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_id"],
            ["bundles.id"],
            name=op.f("fk_bundle_subjects_bundle_id_bundles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_bundle_subjects_subject_id_subjects"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("bundle_id", "subject_id", name=op.f("pk_bundle_subjects")),
        **mysql_table,
    )
    op.create_index(op.f("ix_bundle_subjects_subject_id"), "bundle_subjects", ["subject_id"])


def downgrade():
    op.drop_table("bundle_subjects")
    op.drop_table("bundles")
    op.drop_table("subjects")
    op.drop_table("courses")
