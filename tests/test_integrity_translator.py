"""The IntegrityError translator, fed with the real messages of each database.

MariaDB and SQLite messages are produced live by violating constraints in the test
databases; MySQL 8 messages are recorded from that server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pymysql
import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.errors import (
    GENERIC_CONFLICT,
    DatabaseFailure,
    database_failure,
    is_conflict,
    translate_integrity_error,
    violated_constraint,
)
from shared.extensions import NAMING_CONVENTION
from shared.models.base import unique_constraint
from tests.support.databases import DatabaseUnderTest

EMAIL_TAKEN = "A probe with this email already exists."
SEAT_TAKEN = "This seat is already taken in this room."
HANDLE_TAKEN = "This handle is taken."
SQLITE_CONSTRAINT_UNIQUE = 2067

metadata = MetaData(naming_convention=NAMING_CONVENTION)
rooms = Table("probe_rooms", metadata, Column("id", Integer, primary_key=True))
people = Table(
    "probe_people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(100), nullable=False),
    Column("handle", String(100), nullable=False),
    Column("room_id", Integer, ForeignKey("probe_rooms.id"), nullable=False),
    Column("seat", Integer, nullable=False),
    unique_constraint("email", field="email", message=EMAIL_TAKEN),
    unique_constraint("room_id", "seat", field="seat", message=SEAT_TAKEN),
    unique_constraint("handle", field="handle", message=HANDLE_TAKEN, name="unique_probe_handle"),
)


@pytest.fixture(params=["sqlite", "mariadb"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    database: DatabaseUnderTest = request.getfixturevalue(f"{request.param}_database")
    probe_engine = create_engine(database.url)
    if request.param == "sqlite":
        from sqlalchemy import event

        event.listen(probe_engine, "connect", lambda conn, _: conn.execute("PRAGMA foreign_keys=ON"))
    metadata.drop_all(probe_engine)
    metadata.create_all(probe_engine)
    with probe_engine.begin() as connection:
        connection.execute(rooms.insert(), [{"id": 1}])
        connection.execute(people.insert(), [{"email": "a@x.io", "handle": "ann", "room_id": 1, "seat": 1}])
    yield probe_engine
    metadata.drop_all(probe_engine)
    probe_engine.dispose()


def violation_of(engine: Engine, **row: object) -> IntegrityError:
    values = {"email": "b@x.io", "handle": "bob", "room_id": 1, "seat": 2, **row}
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(people.insert(), [values])
    return caught.value


def test_convention_named_unique_constraint(engine: Engine) -> None:
    violation = violated_constraint(violation_of(engine, email="a@x.io"), metadata)
    assert violation.constraint == "uq_probe_people_email"
    assert (violation.field, violation.message) == ("email", EMAIL_TAKEN)


def test_composite_unique_constraint(engine: Engine) -> None:
    violation = violated_constraint(violation_of(engine, seat=1), metadata)
    assert violation.constraint == "uq_probe_people_room_id_seat"
    assert (violation.field, violation.message) == ("seat", SEAT_TAKEN)


def test_historically_named_constraint(engine: Engine) -> None:
    violation = violated_constraint(violation_of(engine, handle="ann"), metadata)
    assert violation.constraint == "unique_probe_handle"
    assert violation.field == "handle"


def test_foreign_key_violation_is_a_conflict_without_field(engine: Engine) -> None:
    exc = violation_of(engine, room_id=99)
    conflict = translate_integrity_error(exc, metadata)
    assert conflict.status == 409
    assert conflict.errors is None
    assert "depends on" in conflict.detail


def _recorded(message: str, code: int) -> IntegrityError:
    if code == SQLITE_CONSTRAINT_UNIQUE:
        orig: Exception = sqlite3.IntegrityError(message)
        orig.sqlite_errorcode, orig.sqlite_errorname = code, "SQLITE_CONSTRAINT_UNIQUE"  # type: ignore[attr-defined]
    else:
        orig = pymysql.err.IntegrityError(code, message)
    return IntegrityError("INSERT INTO probe_people ...", {}, orig)


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        # MySQL 8.0 prefixes the table name
        ("Duplicate entry 'a@x.io' for key 'probe_people.uq_probe_people_email'", 1062, "email"),
        ("Duplicate entry '1-1' for key 'probe_people.uq_probe_people_room_id_seat'", 1062, "seat"),
        ("Duplicate entry 'ann' for key 'probe_people.unique_probe_handle'", 1062, "handle"),
        # MariaDB 10.x (also captured live above)
        ("Duplicate entry 'a@x.io' for key 'uq_probe_people_email'", 1062, "email"),
        # SQLite names the columns
        ("UNIQUE constraint failed: probe_people.room_id, probe_people.seat", 2067, "seat"),
    ],
)
def test_recorded_messages(message: str, code: int, field: str) -> None:
    assert violated_constraint(_recorded(message, code), metadata).field == field


def test_unknown_constraint_falls_back_to_a_generic_conflict() -> None:
    exc = _recorded("Duplicate entry 'x' for key 'some_other_index'", 1062)
    violation = violated_constraint(exc, metadata)
    assert violation.constraint == "some_other_index"
    assert violation.field is None
    assert violation.message == GENERIC_CONFLICT


def test_conflict_never_carries_the_driver_text(engine: Engine) -> None:
    conflict = translate_integrity_error(violation_of(engine, email="a@x.io"), metadata)
    assert "a@x.io" not in conflict.detail
    assert "Duplicate" not in conflict.detail
    assert conflict.errors == {"email": [EMAIL_TAKEN]}


def test_not_null_violation_is_not_a_conflict(engine: Engine) -> None:
    """A missing value is our bug (a 500), not a clash with existing data (a 409)."""
    assert not is_conflict(violation_of(engine, email=None))
    assert is_conflict(violation_of(engine, email="a@x.io"))
    assert is_conflict(violation_of(engine, room_id=99))


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (1062, DatabaseFailure.DUPLICATE),
        (1451, DatabaseFailure.FOREIGN_KEY),
        (1452, DatabaseFailure.FOREIGN_KEY),
        (4025, DatabaseFailure.CHECK),
        (3819, DatabaseFailure.CHECK),
        (1205, DatabaseFailure.LOCK),
        (1213, DatabaseFailure.LOCK),
        (2003, DatabaseFailure.UNREACHABLE),
        (2013, DatabaseFailure.UNREACHABLE),
        (4031, DatabaseFailure.UNREACHABLE),
        (1048, DatabaseFailure.OTHER),  # NOT NULL: a bug of ours
    ],
)
def test_mysql_errors_are_classified_by_number_not_text(code: int, failure: DatabaseFailure) -> None:
    """The message text is irrelevant (servers localise it: lc_messages)."""
    exc = OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, "Doppelter Eintrag"))
    assert database_failure(exc) is failure


def test_live_errors_are_classified(engine: Engine) -> None:
    """By MariaDB's error number, by SQLite's extended error name."""
    assert database_failure(violation_of(engine, email="a@x.io")) is DatabaseFailure.DUPLICATE
    assert database_failure(violation_of(engine, room_id=99)) is DatabaseFailure.FOREIGN_KEY
    assert database_failure(violation_of(engine, email=None)) is DatabaseFailure.OTHER
