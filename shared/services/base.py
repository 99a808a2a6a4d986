"""The unit of work every public service call runs in."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.errors import NotFound, is_conflict, is_lock_error, translate_integrity_error
from shared.extensions import db

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

MAX_ATTEMPTS = 3
_DEPTH_KEY = "unit_of_work_depth"


def transactional(method: Callable[P, R]) -> Callable[P, R]:
    """One call, one transaction: commit on success, roll back on any error.

    An IntegrityError nobody handled inside becomes the 409 its constraint declares;
    a deadlock or lock wait timeout re-runs the whole call (bounded). A transactional
    method called from inside another one joins the outer transaction.
    """

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        session = db.session()
        if session.info.get(_DEPTH_KEY):
            return method(*args, **kwargs)
        if session.new or session.dirty or session.deleted:
            raise RuntimeError(f"{method.__qualname__} called with uncommitted changes in the session")
        if session.in_transaction():
            # End the read-only transaction of authentication, so that this call reads a
            # fresh snapshot (REPEATABLE READ) and owns its whole transaction.
            session.commit()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            session.info[_DEPTH_KEY] = 1
            try:
                result = method(*args, **kwargs)
                session.commit()
                return result
            except IntegrityError as exc:
                session.rollback()
                if not is_conflict(exc):
                    raise
                raise translate_integrity_error(exc) from exc
            except OperationalError as exc:
                session.rollback()
                if attempt < MAX_ATTEMPTS and is_lock_error(exc):  # the whole transaction may run again
                    log.warning("retrying %s after %s (attempt %d)", method.__qualname__, exc.orig, attempt)
                    time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not crypto
                    continue
                raise
            except BaseException:
                session.rollback()
                raise
            finally:
                session.info[_DEPTH_KEY] = 0
        raise AssertionError("unreachable")  # pragma: no cover

    return run


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


def paginate(statement: Select[tuple[T]], page: int, per_page: int) -> Page[T]:
    """Two statements whatever the page size: the count, then the page.

    (A window COUNT(*) OVER () would make it one, but forces the database to read every
    matching row before the LIMIT: slower than an index-only count on MariaDB.)
    """
    counting = statement.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    total = db.session.execute(counting).scalar_one()
    items = list(db.session.execute(statement.limit(per_page).offset((page - 1) * per_page)).unique().scalars())
    return Page(items=items, page=page, per_page=per_page, total=total)
