"""Compile, before a worker takes its first request, the statements of an exam's hot paths."""

from __future__ import annotations

import contextlib

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from shared.extensions import db
from shared.services import accounts, cards


def warm_up(app: Flask) -> None:
    """Run the statements of a start, a save and a submit (`hot_statements`) once, matching
    no row, then roll back: SQLAlchemy compiles a statement at its first execution in a
    process. Unwarmed, the first submit of each gunicorn worker compiled six statements (some
    15 ms of CPU, 60 to 70 ms at an exam's peak: the p99 of `scripts/bench_exam.py`). A
    database that does not answer (or is not migrated) is logged and left to the requests;
    an app without ours (the benchmarks' floor, served with the same gunicorn.conf.py) has
    nothing to warm."""
    if "sqlalchemy" not in app.extensions:
        return
    with app.app_context():
        try:
            for statement, values in (*accounts.hot_statements(), *cards.hot_statements()):
                db.session.execute(statement, values)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            app.logger.warning(
                "Warm-up skipped (%s): requests compile their statements. %s", type(exc).__name__, reason
            )
        finally:
            with contextlib.suppress(SQLAlchemyError):  # the database may be gone by now
                db.session.rollback()
            db.session.remove()
