"""The catalog: courses, their subjects, and bundles of subjects."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Integer, Numeric, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.base import Timestamps, unique_constraint

# DECIMAL(10, 2) on every database; Decimal in Python.
Money = Numeric(10, 2, asdecimal=True)
# A server default, not a Python one: inserts written for older schemas (the migration
# tests') must not name the column.
DEFAULT_ACCESS_DAYS = 365

bundle_subjects = Table(
    "bundle_subjects",
    db.metadata,
    Column("bundle_id", ForeignKey("bundles.id", ondelete="CASCADE"), primary_key=True),
    Column("subject_id", ForeignKey("subjects.id", ondelete="RESTRICT"), primary_key=True, index=True),
)


class Course(Timestamps, db.Model):
    __tablename__ = "courses"
    __table_args__ = (unique_constraint("slug", field="slug", message="A course with this slug already exists."),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    subjects: Mapped[list[Subject]] = relationship(
        back_populates="course", lazy="raise", order_by="Subject.id", passive_deletes=True
    )
    bundles: Mapped[list[Bundle]] = relationship(
        back_populates="course", lazy="raise", order_by="Bundle.id", passive_deletes=True
    )


class Subject(Timestamps, db.Model):
    __tablename__ = "subjects"
    __table_args__ = (
        unique_constraint(
            "course_id", "name", field="name", message="This course already has a subject with this name."
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(Money)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # How long a purchase of it gives access, counted from the payment.
    access_days: Mapped[int] = mapped_column(Integer, server_default=str(DEFAULT_ACCESS_DAYS))

    course: Mapped[Course] = relationship(back_populates="subjects", lazy="raise")


class Bundle(Timestamps, db.Model):
    __tablename__ = "bundles"
    __table_args__ = (unique_constraint("slug", field="slug", message="A bundle with this slug already exists."),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    price: Mapped[Decimal] = mapped_column(Money)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    access_days: Mapped[int] = mapped_column(Integer, server_default=str(DEFAULT_ACCESS_DAYS))

    course: Mapped[Course] = relationship(back_populates="bundles", lazy="raise")
    subjects: Mapped[list[Subject]] = relationship(secondary=bundle_subjects, lazy="raise", order_by="Subject.id")

    @property
    def subjects_total(self) -> Decimal:
        return sum((subject.price for subject in self.subjects), Decimal("0.00"))

    @property
    def saving(self) -> Decimal:
        return max(self.subjects_total - self.price, Decimal("0.00"))


class CatalogVersion(db.Model):
    """One row whose number moves with every catalog change: the ETag of every catalog read."""

    __tablename__ = "catalog_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
