"""The unit of work: what `transactional` commits, joins and refuses, and race settling."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from shared.errors import ConstraintConflict
from shared.extensions import db
from shared.models import Course
from shared.services.base import settle_race, transactional
from tests.support.catalog import make_course


def title_of(course_id: int) -> str:
    db.session.remove()
    return db.session.execute(select(Course.title).where(Course.id == course_id)).scalar_one()


@transactional
def rename(course_id: int, title: str) -> None:
    db.session.execute(update(Course).where(Course.id == course_id).values(title=title))


@transactional(join=True)
def rename_joining(course_id: int, title: str) -> None:
    db.session.execute(update(Course).where(Course.id == course_id).values(title=title))


@transactional
def rename_twice(course_id: int, nested: object) -> None:
    rename_joining(course_id, "first")
    nested(course_id, "second")  # type: ignore[operator]


def test_a_caller_s_uncommitted_write_is_never_committed(app: Flask) -> None:
    course = make_course().id
    db.session.commit()
    original = title_of(course)
    db.session.execute(update(Course).where(Course.id == course).values(title="left open by the caller"))
    with pytest.raises(RuntimeError, match="uncommitted writes"):
        rename(course, "renamed")
    db.session.rollback()
    assert title_of(course) == original  # neither title was committed


def test_a_read_left_open_is_ended_and_the_call_commits(app: Flask) -> None:
    course = make_course().id
    db.session.commit()
    assert db.session.get(Course, course) is not None  # a read, as the token check leaves one
    rename(course, "renamed")
    assert title_of(course) == "renamed"


def test_joining_is_declared_and_one_commit_covers_both(app: Flask) -> None:
    course = make_course().id
    db.session.commit()
    rename_twice(course, rename_joining)
    assert title_of(course) == "second"
    with pytest.raises(RuntimeError, match="cannot join"):
        rename_twice(course, rename)
    assert title_of(course) == "second"  # the failed call rolled back "first" too


def test_settle_race_decides_again_only_on_the_named_constraints(app: Flask) -> None:
    lost = ConstraintConflict("taken", constraint="uq_courses_slug")

    def attempt() -> str:
        raise lost

    assert settle_race(attempt, lambda conflict: f"again after {conflict.constraint}") == "again after uq_courses_slug"
    named = Course.__table__.constraints
    slug = next(c for c in named if c.name == "uq_courses_slug")
    assert settle_race(attempt, lambda _: "again", lost_on=[slug]) == "again"
    other = next(c for c in named if c.name == "pk_courses")
    with pytest.raises(ConstraintConflict):
        settle_race(attempt, lambda _: "again", lost_on=[other])


def test_a_connection_whose_commit_failed_is_never_handed_out_inside_its_transaction(mariadb: Flask) -> None:
    """A connection goes back to the pool without a ROLLBACK once its COMMIT went through
    (shared/extensions.py); one whose COMMIT failed is rolled back, or discarded when even
    that fails: the next request never runs inside what is left of its transaction."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("XA START 'left-open'")  # COMMIT now fails and leaves it open
        connection.execute(update(Course).values(title="uncommitted"))
        with pytest.raises(DBAPIError, match="XAER_RMFAIL"):
            connection.commit()
        driver_connection = connection.connection.dbapi_connection
    if driver_connection.open:  # rolled back on its way back to the pool
        with driver_connection.cursor() as cursor:
            cursor.execute("SELECT @@in_transaction")
            assert cursor.fetchone() == (0,)
