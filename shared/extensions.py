"""Extension objects, created once here and bound to an app in `create_app`."""

from __future__ import annotations

import sqlite3
from typing import Any

from flask_caching import Cache
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

# Every constraint and index gets a predictable name, so migrations never have to
# guess a name the database generated.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Services dump what they committed, so committed objects keep their loaded state.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
cors = CORS()
limiter = Limiter(key_func=get_remote_address)
cache = Cache()
# The catalog version, remembered for a second by each worker (README "Catalog").
worker_cache = Cache()
# Papers' questions as students see them, kept by each worker (a paper version never changes them).
frozen_papers = Cache()


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """SQLite enforces foreign keys only when asked, per connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


_OPEN = "exam_shop.transaction_open"


def roll_back_on_return_only_when_open(engine: Engine) -> None:
    """Return a connection to the pool without a ROLLBACK its transaction no longer needs.

    A Session ends its transaction with a COMMIT or ROLLBACK before it releases the
    connection, and the pool's reset-on-return then sends another ROLLBACK, since it
    cannot tell (a round trip more on every request). With the engine's
    `pool_reset_on_return=None`, the pool's `reset` event rolls back instead, unless the
    connection's last transaction ended: marked by the Connection's own `begin`, `commit`
    and `rollback` events. The `commit` event comes before the COMMIT is sent: a COMMIT
    that fails marks the connection open again (`handle_error`), and so does any failed
    statement. A connection of unknown state (a raw DBAPI checkout) is rolled back.
    """

    def mark(connection: Any, open_: bool) -> None:
        if not connection.invalidated:  # an invalidated connection is discarded, never reset
            connection.info[_OPEN] = open_

    def failed(context: Any) -> None:
        if context.connection is not None:
            mark(context.connection, True)

    event.listen(engine, "begin", lambda connection: mark(connection, True))
    event.listen(engine, "commit", lambda connection: mark(connection, False))
    event.listen(engine, "rollback", lambda connection: mark(connection, False))
    event.listen(engine, "handle_error", failed)

    @event.listens_for(engine.pool, "reset")
    def _reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        if not state.terminate_only and record.info.pop(_OPEN, True):
            dbapi_connection.rollback()
