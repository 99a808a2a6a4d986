"""One error format for everything: `application/problem+json` (RFC 9457).

Services raise the `ProblemError` subclasses below; Flask, webargs, JWT and the
database raise their own exceptions. The handlers registered here turn all of them
into the same body: `type`, `title`, `status`, `detail`, `instance`, `request_id` and,
for validation errors and conflicts, `errors` (field -> list of messages). Driver
messages, SQL and stack traces go to the log with the request id, never to a client.
"""

from __future__ import annotations

import enum
import http
import logging
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, json, request
from sqlalchemy import Index, MetaData, UniqueConstraint
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from shared.config import LIMITER_RETRY_AFTER
from shared.extensions import db
from shared.models.base import PROBLEM_FIELD, PROBLEM_MESSAGE
from shared.request_id import current_request_id

log = logging.getLogger(__name__)

FieldErrors = dict[str, list[str]]
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Base of the exceptions services raise; each maps to one problem response."""

    status = 500
    slug = "internal-error"
    title = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: FieldErrors | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        title: str | None = None,
        slug: str | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}
        if title:
            self.title = title
        if slug:
            self.slug = slug

    def to_response(self) -> Response:
        return problem_response(
            self.status,
            title=self.title,
            detail=self.detail,
            errors=self.errors,
            slug=self.slug,
            headers=self.headers,
            extra=self.extra,
        )


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad Request"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not Found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class ConstraintConflict(Conflict):
    """A 409 made from an IntegrityError; `constraint` names what the database refused."""

    def __init__(self, detail: str, *, constraint: str | None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.constraint = constraint


class ValidationFailed(ProblemError):
    status, slug, title = 422, "validation-error", "Validation failed"


class ServiceUnavailable(ProblemError):
    """Always with `Retry-After` (setting RETRY_AFTER_SECONDS)."""

    status, slug, title = 503, "service-unavailable", "Service temporarily unavailable"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])})
        super().__init__(detail, **kwargs)


class UnsupportedMediaType(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


def retry_after_only_when_refused(response: Response) -> Response:
    """The limiter's Retry-After reaches a client on a 429 only. The problems that set their
    own (503, and the 409 of an Idempotency-Key still being worked on) keep theirs."""
    value = response.headers.pop(LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and value is not None:
        response.headers["Retry-After"] = value
    return response


def problem_type(slug: str | None) -> str:
    return f"urn:exam-shop:problem:{slug}" if slug else "about:blank"


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    errors: FieldErrors | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title or http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or title or http.HTTPStatus(status).phrase,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    body["request_id"] = current_request_id()
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# --------------------------------------------------------------------------------------
# IntegrityError translation
# --------------------------------------------------------------------------------------

GENERIC_CONFLICT = "The request conflicts with data that already exists."
FOREIGN_KEY_CONFLICT = "The request refers to, or removes, data that other data depends on."


class DatabaseFailure(enum.Enum):
    """What a database error means to us, read from the driver's error number."""

    DUPLICATE = "duplicate"
    FOREIGN_KEY = "foreign key"
    CHECK = "check"
    LOCK = "lock"
    STATEMENT_TIMEOUT = "statement timeout"
    UNREACHABLE = "unreachable"
    OTHER = "other"


_MYSQL_FAILURES = {
    1062: DatabaseFailure.DUPLICATE,
    1451: DatabaseFailure.FOREIGN_KEY,  # a parent row still referenced
    1452: DatabaseFailure.FOREIGN_KEY,  # a child row without its parent
    3819: DatabaseFailure.CHECK,  # MySQL 8
    4025: DatabaseFailure.CHECK,  # MariaDB
    1205: DatabaseFailure.LOCK,  # lock wait timeout
    1213: DatabaseFailure.LOCK,  # deadlock (also Galera's lost certification)
    1040: DatabaseFailure.UNREACHABLE,  # too many connections
    1053: DatabaseFailure.UNREACHABLE,  # server shutdown in progress
    1927: DatabaseFailure.UNREACHABLE,  # MariaDB: connection killed
    1969: DatabaseFailure.STATEMENT_TIMEOUT,  # MariaDB: max_statement_time (DB_STATEMENT_TIMEOUT)
    3024: DatabaseFailure.STATEMENT_TIMEOUT,  # MySQL: max_execution_time
    4031: DatabaseFailure.UNREACHABLE,  # disconnected by the server for inactivity
}
_MYSQL_CLIENT_ERRORS = range(2002, 2056)  # CR_CONNECTION_ERROR .. CR_SERVER_LOST_EXTENDED
_SQLITE_FAILURES = {
    "SQLITE_CONSTRAINT_UNIQUE": DatabaseFailure.DUPLICATE,
    "SQLITE_CONSTRAINT_PRIMARYKEY": DatabaseFailure.DUPLICATE,
    "SQLITE_CONSTRAINT_FOREIGNKEY": DatabaseFailure.FOREIGN_KEY,
    "SQLITE_CONSTRAINT_CHECK": DatabaseFailure.CHECK,
    "SQLITE_BUSY": DatabaseFailure.UNREACHABLE,
    "SQLITE_LOCKED": DatabaseFailure.UNREACHABLE,
    "SQLITE_CANTOPEN": DatabaseFailure.UNREACHABLE,
    "SQLITE_IOERR": DatabaseFailure.UNREACHABLE,
}


def database_failure(exc: BaseException | None) -> DatabaseFailure:
    """Classify by number: PyMySQL's `args[0]`, sqlite3's `sqlite_errorname`."""
    orig = getattr(exc, "orig", exc)
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):  # exact extended name, else its primary (SQLITE_IOERR_READ -> SQLITE_IOERR)
        primary = "_".join(name.split("_")[:2])
        return _SQLITE_FAILURES.get(name) or _SQLITE_FAILURES.get(primary, DatabaseFailure.OTHER)
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _MYSQL_CLIENT_ERRORS:
        return DatabaseFailure.UNREACHABLE
    return _MYSQL_FAILURES.get(code, DatabaseFailure.OTHER) if code is not None else DatabaseFailure.OTHER


# The errors carry the constraint's name only in their text; the number said what kind it is.
_CONSTRAINT_NAME_PATTERNS = (
    # MySQL 8 "for key 'table.name'", MariaDB "for key 'name'" (1062 duplicate entry)
    re.compile(r"for key '(?:[^'.]+\.)?([^'.]+)'"),
    # foreign keys (1451/1452): "... CONSTRAINT `name` FOREIGN KEY ...", MariaDB check (4025)
    re.compile(r"CONSTRAINT `([^`]+)`"),
    # MySQL 8 check (3819): "Check constraint 'name' is violated."
    re.compile(r"Check constraint '([^']+)'"),
    # SQLite >= 3.37 names check constraints: "CHECK constraint failed: name"
    re.compile(r"CHECK constraint failed: (\w+)$"),
)
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")


@dataclass(frozen=True)
class ConstraintViolation:
    """What a client is told about a violated constraint."""

    constraint: str | None
    field: str | None
    message: str

    def to_conflict(self) -> ConstraintConflict:
        errors = {self.field: [self.message]} if self.field else None
        return ConstraintConflict(self.message, errors=errors, constraint=self.constraint)


def driver_message(exc: DBAPIError) -> str:
    """The driver's own text (PyMySQL keeps it as the second argument)."""
    orig = exc.orig
    args = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    return str(orig)


def violated_constraint(exc: IntegrityError, metadata: MetaData) -> ConstraintViolation:
    """Name the violated constraint and the field/message its model declared for it."""
    message = driver_message(exc)
    name = _constraint_name(message)
    constraint = _constraints(metadata).get(name) if name else _find_sqlite_unique(message, metadata)
    if constraint is not None and PROBLEM_MESSAGE in constraint.info:
        return ConstraintViolation(
            constraint=str(constraint.name),
            field=constraint.info.get(PROBLEM_FIELD),
            message=constraint.info[PROBLEM_MESSAGE],
        )
    if database_failure(exc) is DatabaseFailure.FOREIGN_KEY:
        return ConstraintViolation(name, None, FOREIGN_KEY_CONFLICT)
    return ConstraintViolation(name, None, GENERIC_CONFLICT)


def is_conflict(exc: IntegrityError) -> bool:
    """Does this IntegrityError mean "clashes with existing data"? NOT NULL, CHECK and
    data-too-long violations are bugs of ours and stay a 500."""
    return database_failure(exc) in {DatabaseFailure.DUPLICATE, DatabaseFailure.FOREIGN_KEY}


def translate_integrity_error(exc: IntegrityError, metadata: MetaData | None = None) -> ConstraintConflict:
    """The 409 a service raises when the database rejected its write."""
    if metadata is None:
        metadata = db.metadata
    violation = violated_constraint(exc, metadata)
    log.info("integrity error on constraint %s: %s", violation.constraint, driver_message(exc))
    return violation.to_conflict()


def _constraints(metadata: MetaData) -> dict[str, UniqueConstraint | Index | Any]:
    """Every named constraint and index of the models, by name (names are unique in a schema)."""
    return {
        str(item.name): item
        for table in metadata.tables.values()
        for item in [*table.constraints, *table.indexes]
        if item.name
    }


def _constraint_name(message: str) -> str | None:
    """The constraint a MySQL, MariaDB or SQLite error message names."""
    return next((match.group(1) for p in _CONSTRAINT_NAME_PATTERNS if (match := p.search(message))), None)


def _find_sqlite_unique(message: str, metadata: MetaData) -> Any | None:
    """SQLite names the columns, not the constraint: 'UNIQUE constraint failed: t.a, t.b'."""
    match = _SQLITE_UNIQUE.search(message)
    if not match:
        return None
    qualified = [part.strip() for part in match.group(1).split(",")]
    tables = {part.rsplit(".", 1)[0] for part in qualified}
    columns = [part.rsplit(".", 1)[-1] for part in qualified]
    if len(tables) != 1:
        return None
    (table_name,) = tables
    for item in _constraints(metadata).values():
        is_unique = isinstance(item, UniqueConstraint) or (isinstance(item, Index) and item.unique)
        if item.table.name == table_name and is_unique and [c.name for c in item.columns] == columns:
            return item
    return None


# --------------------------------------------------------------------------------------
# Database availability
# --------------------------------------------------------------------------------------


def is_database_unavailable(exc: BaseException) -> bool:
    """The database is not answering (or too busy) right now, as opposed to a bug in our SQL."""
    if isinstance(exc, (DisconnectionError, PoolTimeoutError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, DBAPIError) and database_failure(exc) in {
        DatabaseFailure.UNREACHABLE,
        DatabaseFailure.LOCK,
        DatabaseFailure.STATEMENT_TIMEOUT,
    }


def is_lock_error(exc: BaseException | None) -> bool:
    """A deadlock or lock wait timeout: the whole transaction may run again."""
    return database_failure(exc) is DatabaseFailure.LOCK


def database_unavailable(exc: BaseException | None = None) -> ServiceUnavailable:
    if is_lock_error(exc):
        return ServiceUnavailable("The database is busy with conflicting work. Please retry shortly.")
    if database_failure(exc) is DatabaseFailure.STATEMENT_TIMEOUT:
        return ServiceUnavailable("The database is too busy to answer in time. Please retry shortly.")
    return ServiceUnavailable("The database is not answering. Please retry shortly.")


# --------------------------------------------------------------------------------------
# Flask handlers
# --------------------------------------------------------------------------------------

_HTTP_DETAILS = {
    400: "The request could not be understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept the {method} method.",
    413: "The request body is larger than this API accepts.",
    429: "Too many requests. Please wait before trying again.",
}


def _flatten_webargs_messages(messages: Any) -> FieldErrors:
    """webargs groups messages by location ({'json': {...}}); clients want fields."""
    flat: FieldErrors = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            flat.setdefault(prefix or "_request", []).extend(value)
        else:
            flat.setdefault(prefix or "_request", []).append(str(value))

    if isinstance(messages, dict):
        for location_messages in messages.values():
            walk("", location_messages)
    else:
        walk("", messages)
    return flat


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        log.error("HTTP %s raised: %s", status, exc.description)
        return problem_response(status)
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if status == 422 and messages is not None:
        return ValidationFailed(
            "The request has invalid or missing fields.", errors=_flatten_webargs_messages(messages)
        ).to_response()
    if status == 400 and messages and "json" in messages:
        return BadRequest("The request body is not valid JSON.").to_response()
    detail = _HTTP_DETAILS.get(status, "").format(method=request.method) or None
    headers = {k: v for k, v in exc.get_headers() if k.lower() not in {"content-type", "content-length"}}
    if status == 429:
        detail = f"{_HTTP_DETAILS[429]} Limit: {exc.description}."
    return problem_response(status, detail=detail, headers=headers)


def _rollback_session() -> None:
    try:
        db.session.rollback()
    except Exception:
        log.debug("rollback after a database error failed", exc_info=True)


def handle_integrity_error(exc: IntegrityError) -> Response:
    # Services translate the IntegrityErrors they expect; a duplicate reaching here is
    # a constraint nobody anticipated, still a conflict and not a crash.
    _rollback_session()
    if not is_conflict(exc):
        log.error("integrity error that is not a conflict: %s", driver_message(exc))
        return problem_response(500, detail=UNEXPECTED)
    log.warning("unhandled IntegrityError: %s", driver_message(exc))
    return translate_integrity_error(exc).to_response()


UNEXPECTED = "An unexpected error occurred. It has been logged."


def handle_database_error(exc: SQLAlchemyError) -> Response:
    _rollback_session()
    if is_database_unavailable(exc):
        log.error("database unavailable: %s", getattr(exc, "orig", exc))
        return database_unavailable(exc).to_response()
    log.exception("database error")
    return problem_response(500, detail=UNEXPECTED)


def handle_unexpected_error(exc: Exception) -> Response:
    log.exception("unhandled exception")
    return problem_response(500, detail=UNEXPECTED)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ProblemError, lambda exc: exc.to_response())
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(SQLAlchemyError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected_error)
