"""Inspect a live database: is the test-card constraint fixed, and is the data sound?

Used by `scripts/check_constraints.py` and `flask check-constraints`. Exit codes: 0 when
every check holds (after the repair, with `--repair`), 1 when something is wrong, 2 when
the database cannot be reached. The repair creates the missing cards of purchased
subjects and changes nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Index, UniqueConstraint, create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from shared.config import PROJECT_ROOT, engine_options
from shared.errors import is_conflict, is_lock_error
from shared.extensions import db
from shared.models import MockTestAttempt, Purchase
from shared.models.cards import COMPOSITE_CARD_CONSTRAINT, OLD_CARD_CONSTRAINT
from shared.services.cards import CardsReport, add_missing_cards

CARDS_TABLE = MockTestAttempt.__tablename__
COMPOSITE_COLUMNS = next(
    [column.name for column in constraint.columns]
    for constraint in MockTestAttempt.__table__.constraints
    if constraint.name == COMPOSITE_CARD_CONSTRAINT
)
OLD_COLUMNS = ["purchase_id", "test_number"]  # what deployed databases carry before the fix
SHOWN_ROWS = 50
CARD_SETS = "card sets"
REPAIR_ATTEMPTS = 3

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE = 0, 1, 2


class DatabaseUnreachable(RuntimeError):
    pass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Repair:
    """What `--repair` did: the cards it created per purchased subject."""

    ran: bool
    detail: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(row["created"] for row in self.rows)


@dataclass
class Report:
    database: str
    checks: list[Check] = field(default_factory=list)
    repair: Repair | None = None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_PROBLEMS

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "database": self.database,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
        }
        if self.repair is not None:
            document["repair"] = {**asdict(self.repair), "created": self.repair.created}
        return json.dumps(document)

    def to_text(self) -> str:
        lines = [f"Constraint check of {self.database}", ""]
        if self.repair is not None:
            lines.append(f"Repair: {self.repair.detail}")
            lines.extend(_shown(self.repair.rows))
            lines.append("")
        for check in self.checks:
            lines.append(f"[{'OK' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
            lines.extend(_shown(check.rows))
        lines += ["", "All checks hold." if self.ok else "Some checks FAILED (see above)."]
        return "\n".join(lines)


def _shown(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"       {row}" for row in rows[:SHOWN_ROWS]]
    if len(rows) > SHOWN_ROWS:
        lines.append(f"       ... and {len(rows) - SHOWN_ROWS} more")
    return lines


def _unique_sets(engine: Engine, table: str) -> dict[str, list[str]]:
    """Unique constraints and unique indexes of a table: name -> columns, in order."""
    inspector = inspect(engine)
    found = {uc["name"]: list(uc["column_names"]) for uc in inspector.get_unique_constraints(table) if uc["name"]}
    for index in inspector.get_indexes(table):
        if index.get("unique") and index["name"]:
            found.setdefault(index["name"], list(index["column_names"]))
    return found


def _composite_check(uniques: dict[str, list[str]]) -> Check:
    name = "composite constraint"
    columns = uniques.get(COMPOSITE_CARD_CONSTRAINT)
    if columns is None:
        return Check(name, False, f"{COMPOSITE_CARD_CONSTRAINT} is missing: run `flask db upgrade`.")
    if columns != COMPOSITE_COLUMNS:
        return Check(name, False, f"{COMPOSITE_CARD_CONSTRAINT} is on {columns}, expected {COMPOSITE_COLUMNS}.")
    return Check(name, True, f"{COMPOSITE_CARD_CONSTRAINT} ({', '.join(columns)}) present.")


def _old_constraint_check(uniques: dict[str, list[str]]) -> Check:
    name = "old constraint"
    offenders = [n for n, cols in uniques.items() if n == OLD_CARD_CONSTRAINT or cols == OLD_COLUMNS]
    if offenders:
        return Check(
            name,
            False,
            f"{', '.join(offenders)} on ({', '.join(OLD_COLUMNS)}) is still present: purchases of several "
            "subjects fail with \"Duplicate entry '<purchase>-1' for key 'unique_test_per_purchase'\". "
            "Run `flask db upgrade` (it adds the composite constraint, then drops this one).",
        )
    return Check(name, True, f"{OLD_CARD_CONSTRAINT} is gone.")


def _duplicates_check(engine: Engine) -> Check:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT purchase_id, subject_id, test_number, COUNT(*) AS copies FROM mock_test_attempts "
                "GROUP BY purchase_id, subject_id, test_number HAVING COUNT(*) > 1 "
                "ORDER BY purchase_id, subject_id, test_number"
            )
        ).mappings()
        duplicates = [dict(row) for row in rows]
    if duplicates:
        return Check("duplicate cards", False, f"{len(duplicates)} (purchase, subject, test) repeated.", duplicates)
    return Check("duplicate cards", True, "no (purchase_id, subject_id, test_number) appears twice.")


def _has_payments(engine: Engine) -> bool:
    """The database carries purchase states (migration b3d5f7a9c1e2 and later)."""
    return "state" in {column["name"] for column in inspect(engine).get_columns("purchase_items")}


CARD_SETS_SQL = (
    "SELECT i.purchase_id, i.subject_id, COUNT(c.id) AS cards FROM purchase_items i "
    "LEFT JOIN mock_test_attempts c ON c.purchase_id = i.purchase_id AND c.subject_id = i.subject_id "
    "{where}GROUP BY i.purchase_id, i.subject_id HAVING COUNT(c.id) <> :expected "
    "ORDER BY i.purchase_id, i.subject_id"
)
# Before payments every item was owned; since, only granted items (active, refunded, expired) have cards.
CARD_SETS_BEFORE_PAYMENTS = CARD_SETS_SQL.format(where="")
CARD_SETS_GRANTED = CARD_SETS_SQL.format(where="WHERE i.state IN ('active', 'refunded', 'expired') ")


def _card_sets_off(engine: Engine, per_subject: int) -> list[dict[str, Any]]:
    """Purchased subjects without exactly `per_subject` cards."""
    sql = CARD_SETS_GRANTED if _has_payments(engine) else CARD_SETS_BEFORE_PAYMENTS
    with engine.connect() as connection:
        rows = connection.execute(text(sql), {"expected": per_subject}).mappings()
        return [dict(row) for row in rows]


# The payment invariants: (name, what holds, SQL of the rows that break it).
PAYMENT_CHECKS = (
    (
        "paid purchases fulfilled",
        "no paid purchase has a subject still waiting for its payment",
        "SELECT p.id AS purchase_id, p.status, i.subject_id FROM purchases p "
        "JOIN purchase_items i ON i.purchase_id = p.id "
        "WHERE p.status IN ('paid', 'partially_refunded', 'refunded') AND i.state = 'pending' "
        "ORDER BY p.id, i.subject_id",
    ),
    (
        "unpaid purchases own nothing",
        "no pending, failed or expired purchase has cards or owned subjects",
        "SELECT p.id AS purchase_id, p.status, i.subject_id, i.state FROM purchases p "
        "JOIN purchase_items i ON i.purchase_id = p.id "
        "WHERE p.status IN ('pending_payment', 'failed', 'expired') AND (i.state <> 'pending' "
        "OR EXISTS (SELECT 1 FROM mock_test_attempts c WHERE c.purchase_id = p.id)) "
        "ORDER BY p.id, i.subject_id",
    ),
    (
        "subjects owned once",
        "no subject is owned twice at once, and only active items hold their owner",
        "SELECT i.customer_id, i.subject_id, COUNT(*) AS active_items FROM purchase_items i "
        "WHERE i.state = 'active' GROUP BY i.customer_id, i.subject_id HAVING COUNT(*) > 1 "
        "UNION ALL "
        "SELECT i.customer_id, i.subject_id, -1 FROM purchase_items i "
        "WHERE (i.state = 'active') <> (i.active_customer_id IS NOT NULL) "
        "OR i.active_customer_id <> i.customer_id",
    ),
)


def _payment_checks(engine: Engine) -> list[Check]:
    if not _has_payments(engine):
        return []
    checks = []
    with engine.connect() as connection:
        for name, holds, sql in PAYMENT_CHECKS:
            rows = [dict(row) for row in connection.execute(text(sql)).mappings()]
            if rows:
                checks.append(Check(name, False, f"{len(rows)} row(s) break it: {holds}.", rows))
            else:
                checks.append(Check(name, True, f"{holds}."))
    return checks


def _card_sets_check(engine: Engine, per_subject: int) -> Check:
    incomplete = _card_sets_off(engine, per_subject)
    if incomplete:
        return Check(
            CARD_SETS,
            False,
            f"{len(incomplete)} purchased subject(s) without exactly {per_subject} cards"
            + ("; `--repair` creates the missing ones." if any(r["cards"] < per_subject for r in incomplete) else "."),
            incomplete,
        )
    return Check(CARD_SETS, True, f"every purchased subject has {per_subject} cards.")


def _declared_uniques_check(engine: Engine) -> Check:
    missing = []
    existing_tables = set(inspect(engine).get_table_names())
    for table in db.metadata.sorted_tables:
        declared = [
            item
            for item in [*table.constraints, *table.indexes]
            if isinstance(item, UniqueConstraint) or (isinstance(item, Index) and item.unique)
        ]
        if not declared:
            continue
        if table.name not in existing_tables:
            missing.append({"table": table.name, "constraint": "(table missing)", "columns": []})
            continue
        present = _unique_sets(engine, table.name)
        for item in declared:
            columns = [column.name for column in item.columns]
            if present.get(str(item.name)) != columns:
                missing.append({"table": table.name, "constraint": str(item.name), "columns": columns})
    if missing:
        return Check("declared unique constraints", False, f"{len(missing)} missing or different.", missing)
    return Check("declared unique constraints", True, "every unique constraint of the models exists.")


def _revision_check(engine: Engine) -> Check:
    config = Config(str(PROJECT_ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    try:
        with engine.connect() as connection:
            current = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:
        current = set()
    if current == heads:
        return Check("migrations", True, f"at head ({', '.join(sorted(heads))}).")
    shown = ", ".join(sorted(current)) or "none (not under migrations: see README, `flask db stamp`)"
    return Check("migrations", False, f"database at {shown}; code head is {', '.join(sorted(heads))}.")


def check_database(database_url: str, per_subject: int = 50) -> Report:
    engine = create_engine(database_url, **_check_engine_options(database_url))
    try:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise DatabaseUnreachable(str(exc.orig)) from exc
        report = Report(database=engine.url.render_as_string(hide_password=True))
        if CARDS_TABLE not in inspect(engine).get_table_names():
            report.checks.append(Check("cards table", False, f"{CARDS_TABLE} does not exist: run `flask db upgrade`."))
            report.checks.append(_revision_check(engine))
            return report
        uniques = _unique_sets(engine, CARDS_TABLE)
        report.checks += [
            _composite_check(uniques),
            _old_constraint_check(uniques),
            _duplicates_check(engine),
            _card_sets_check(engine, per_subject),
            *_payment_checks(engine),
            _declared_uniques_check(engine),
            _revision_check(engine),
        ]
        return report
    finally:
        engine.dispose()


def repair_card_sets(database_url: str, per_subject: int) -> Repair:
    """Create the missing cards of every purchased subject; touch nothing else.

    One short transaction per purchase, through the card creation purchases use.
    """
    engine = create_engine(database_url, **_check_engine_options(database_url))
    try:
        lacking = sorted(
            {row["purchase_id"] for row in _card_sets_off(engine, per_subject) if row["cards"] < per_subject}
        )
        rows = []
        for purchase_id in lacking:
            report = _repair_purchase(engine, purchase_id, per_subject)
            if report is not None:
                rows += [
                    {"purchase_id": purchase_id, "subject_id": subject_id, "created": created}
                    for subject_id, created in sorted(report.created_per_subject.items())
                ]
    finally:
        engine.dispose()
    if not rows:
        return Repair(True, "nothing to repair: no purchased subject lacks cards.")
    return Repair(True, f"created {sum(r['created'] for r in rows)} cards for {len(rows)} purchased subject(s).", rows)


def _repair_purchase(engine: Engine, purchase_id: int, per_subject: int) -> CardsReport | None:
    for attempt in range(1, REPAIR_ATTEMPTS + 1):
        try:
            with Session(engine) as session, session.begin():
                # Concurrent repairs of one purchase take turns on its row. The lock is the
                # transaction's first read, so under REPEATABLE READ the counts that follow
                # see the cards another repair committed while this one waited.
                customer_id = session.execute(
                    select(Purchase.customer_id).where(Purchase.id == purchase_id).with_for_update()
                ).scalar_one_or_none()
                if customer_id is None:
                    return None
                return add_missing_cards(session, purchase_id, customer_id, per_subject)
        except (IntegrityError, OperationalError) as exc:
            # A writer that does not take the lock (or SQLite) may have won the race:
            # count again in a new transaction.
            retry = is_lock_error(exc) or (isinstance(exc, IntegrityError) and is_conflict(exc))
            if not retry or attempt == REPAIR_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def repair_database(database_url: str, per_subject: int, report: Report) -> Report:
    """Repair the card sets of a database whose other checks hold, and check it again."""
    blocking = [check.name for check in report.checks if not check.ok and check.name != CARD_SETS]
    if blocking:
        report.repair = Repair(False, f"not run: fix {', '.join(blocking)} first (see below).")
        return report
    repair = repair_card_sets(database_url, per_subject)
    checked = check_database(database_url, per_subject)
    checked.repair = repair
    return checked


def _check_engine_options(database_url: str) -> dict[str, Any]:
    options = engine_options(database_url, connect_timeout=5, read_timeout=60)
    return {key: value for key, value in options.items() if key in {"connect_args"}}


def run(database_url: str, per_subject: int, as_json: bool, echo: Any = print, repair: bool = False) -> int:
    """Check (and repair, if asked), print the report, and return the exit code."""
    try:
        report = check_database(database_url, per_subject)
        if repair:
            report = repair_database(database_url, per_subject, report)
    except DatabaseUnreachable as exc:
        message = f"Cannot connect to the database: {exc}"
        echo(json.dumps({"ok": False, "error": message}) if as_json else message)
        return EXIT_UNREACHABLE
    echo(report.to_json() if as_json else report.to_text())
    return report.exit_code
