"""Catalog rows for tests, inserted directly (the catalog API has its own tests)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

from shared.extensions import db
from shared.models import Bundle, Course, Subject

_sequence = itertools.count(1)


@dataclass(frozen=True)
class CourseFixture:
    id: int
    subject_ids: list[int]
    bundle_id: int
    prices: dict[int, Decimal]
    bundle_price: Decimal


def make_course(subjects: int = 3, price: str = "100.00", bundle_price: str | None = None) -> CourseFixture:
    n = next(_sequence)
    course = Course(slug=f"course-{n}", title=f"Course {n}", description="", is_active=True)
    db.session.add(course)
    db.session.flush()
    rows = [
        Subject(course_id=course.id, name=f"Subject {i}", description="", price=Decimal(price), is_active=True)
        for i in range(1, subjects + 1)
    ]
    db.session.add_all(rows)
    db.session.flush()
    total = Decimal(price) * subjects
    bundle = Bundle(
        slug=f"bundle-{n}",
        title=f"Bundle {n}",
        description="",
        course_id=course.id,
        price=Decimal(bundle_price) if bundle_price else total - Decimal("1.00"),
        is_active=True,
    )
    bundle.subjects = rows
    db.session.add(bundle)
    db.session.commit()
    return CourseFixture(
        id=course.id,
        subject_ids=[s.id for s in rows],
        bundle_id=bundle.id,
        prices={s.id: s.price for s in rows},
        bundle_price=bundle.price,
    )
