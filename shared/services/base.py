"""The unit of work every public service call runs in."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from flask import current_app, has_app_context
from sqlalchemy import Constraint, Select, bindparam, event, func
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import JSON

from shared.errors import ConstraintConflict, NotFound, is_conflict, is_lock_error, translate_integrity_error
from shared.extensions import db

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

MAX_ATTEMPTS = 3
_IN_UNIT = "in_unit_of_work"
_WROTE = "transaction_wrote"
# The column of a page of rows that carries the total (see `paginate`).
PAGE_TOTAL = "page_total"


# What the caller's open transaction did decides what `transactional` may do with it.
@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def in_unit_of_work() -> bool:
    return bool(db.session.info.get(_IN_UNIT))


@overload
def transactional(method: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def transactional(*, join: bool) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def transactional(method: Callable[P, R] | None = None, /, *, join: bool = False) -> Any:
    """One call, one transaction: commit on success, roll back on any error.

    An IntegrityError nobody handled inside becomes the 409 its constraint declares.
    Inside another unit of work a call is refused, unless declared with `join=True`: then
    it is part of the caller's transaction, which commits or rolls back for both. A read
    the caller left open (the token check's) is ended first, so that the call reads a
    fresh snapshot; a caller's transaction that wrote is never committed here.
    """
    if method is None:
        return functools.partial(transactional, join=join)

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        session = db.session()
        if session.info.get(_IN_UNIT):
            if not join:
                raise RuntimeError(f"{method.__qualname__} runs its own unit of work; it cannot join the caller's")
            return method(*args, **kwargs)
        if session.in_transaction():
            if session.new or session.dirty or session.deleted or session.info.get(_WROTE):
                raise RuntimeError(f"{method.__qualname__} called with uncommitted writes in the session")
            session.commit()  # a read: ending it commits nothing
        session.info[_IN_UNIT] = True
        try:
            result = method(*args, **kwargs)
            session.commit()
            return result
        except IntegrityError as exc:
            session.rollback()
            if not is_conflict(exc):
                raise
            raise translate_integrity_error(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.info[_IN_UNIT] = False

    return run


def lock_attempts() -> int:
    """DB_LOCK_ATTEMPTS: on a Galera cluster, where row locks do not reach the other nodes,
    concurrent writers of one row lose certification in turn and need more attempts."""
    return int(current_app.config.get("DB_LOCK_ATTEMPTS", MAX_ATTEMPTS)) if has_app_context() else MAX_ATTEMPTS


def retry_on_lock_conflict(method: Callable[P, R]) -> Callable[P, R]:
    """Run a whole unit of work again after a deadlock or a lock wait timeout (also
    Galera's lost certification, a deadlock raised by COMMIT), up to DB_LOCK_ATTEMPTS
    times with jitter. Stack it above `@transactional`: only a whole transaction may run
    again."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        attempts = lock_attempts()
        for attempt in range(1, attempts + 1):
            try:
                return method(*args, **kwargs)
            except OperationalError as exc:
                if attempt == attempts or not is_lock_error(exc) or in_unit_of_work():
                    raise
                log.warning("retrying %s after %s (attempt %d)", method.__qualname__, exc.orig, attempt)
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not crypto
        raise AssertionError("unreachable")  # pragma: no cover

    return run


def settle_race(
    attempt: Callable[[], R], then: Callable[[ConstraintConflict], R], *, lost_on: Sequence[Constraint] = ()
) -> R:
    """Run `attempt` (a unit of work). When it loses a race on one of the unique
    constraints `lost_on` (any, when empty), a concurrent request committed first:
    decide again on what is now committed with `then(conflict)`."""
    try:
        return attempt()
    except ConstraintConflict as conflict:
        if lost_on and conflict.constraint not in {constraint.name for constraint in lost_on}:
            raise
        log.info("lost a race on %s; deciding again on the committed state", conflict.constraint)
        return then(conflict)


def require(model: type[T], object_id: int, message: str) -> T:
    """The row with this primary key, or a 404 with `message`."""
    found = db.session.get(model, object_id)
    if found is None:
        raise NotFound(message)
    return found


def apply_changes(item: T, changes: dict[str, Any]) -> T:
    """Set the validated fields of a PATCH and flush, so that a clash surfaces here."""
    for name, value in changes.items():
        setattr(item, name, value)
    db.session.flush()
    return item


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return (self.total + self.per_page - 1) // self.per_page if self.total else 0


def paginate(
    statement: Select[Any], page: int, per_page: int, *, counting: Select[Any] | None = None, rows: bool = False
) -> Page[Any]:
    """A page of entities (or of `rows`), and the total: two statements whatever the page
    size. `counting` is the statement whose rows are counted, when the page's own (a join
    with eager loads) is not it. Lists dumped leanly use `RowPager` instead."""
    counted = statement if counting is None else counting
    total = db.session.execute(
        counted.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    ).scalar_one()
    result = db.session.execute(statement.limit(per_page).offset((page - 1) * per_page))
    items = list(result.all()) if rows else list(result.unique().scalars())
    return Page(items=items, page=page, per_page=per_page, total=total)


class RowPager:
    """Pages of rows (for a lean dump) with the total, in one statement.

    Built once per statement shape, with `bindparam`s for the values of a request, so that
    neither the statement nor its cache key is made again per request. The total rides
    along as an uncorrelated scalar subquery that the database evaluates once; a page past
    the end, which has no row to carry it, counts on its own. (A window COUNT(*) OVER ()
    would make it one statement too, but forces the database to read every matching row
    before the LIMIT: slower than an index-only count on MariaDB.) `counting` is the
    statement whose rows are counted, when the page's own (a join, a GROUP BY) is not it.
    """

    def __init__(self, statement: Select[Any], counting: Select[Any]) -> None:
        self.count = counting.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
        total = self.count.scalar_subquery().correlate(None).label(PAGE_TOTAL)
        self.page = statement.add_columns(total).offset(bindparam("page_offset")).limit(bindparam("page_limit"))

    def __call__(self, page: int, per_page: int, **values: Any) -> Page[Row[Any]]:
        found = db.session.execute(
            self.page, {**values, "page_offset": (page - 1) * per_page, "page_limit": per_page}
        ).all()
        total = getattr(found[0], PAGE_TOTAL) if found else db.session.execute(self.count, values).scalar_one()
        return Page(items=list(found), page=page, per_page=per_page, total=total)


class json_rows(GenericFunction[Any]):
    """`json_rows(a, b, ...)`: the group's rows as one JSON array of arrays, aggregated by the
    database (JSON_ARRAYAGG on MariaDB and MySQL, json_group_array on SQLite). MariaDB's
    JSON_ARRAYAGG is cut at `group_concat_max_len` (1 MB by default since 10.2; keep it so:
    a paper's rules take about 30 bytes a question)."""

    type = JSON()
    inherit_cache = True


@compiles(json_rows, "mysql", "mariadb")
def _json_rows_mysql(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"JSON_ARRAYAGG(JSON_ARRAY({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"
