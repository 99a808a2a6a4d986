"""The migrations build exactly the schema the models declare, and walk both ways."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import bindparam, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app import create_app
from shared.constraint_check import check_database
from shared.extensions import db
from shared.models import IdempotencyKey, MockTestAttempt, User
from shared.models.base import utcnow
from shared.passwords import hash_password
from shared.services.idempotency import key_digest
from tests.conftest import app_config
from tests.support.accounts import bearer, create_admin
from tests.support.catalog import make_course
from tests.support.databases import DatabaseUnderTest, recreate_mariadb_database, sibling_url
from tests.support.mock_tests import add_questions
from tests.support.purchases import make_purchase, student_with


def assert_schema_matches_the_models() -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_models_match_the_migrated_schema(app: Flask) -> None:
    assert_schema_matches_the_models()


@pytest.fixture(params=["sqlite", "mariadb"])
def scratch_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on an empty database of its own, for walking the migration history."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('scratch')}/scratch.sqlite3"
    else:
        main: DatabaseUnderTest = request.getfixturevalue("mariadb_database")
        url = sibling_url(main.url, "scratch")
        recreate_mariadb_database(url)
    flask_app = create_app(app_config(url))
    with flask_app.app_context():
        yield flask_app
        db.session.remove()
        db.engine.dispose()


def test_upgrade_downgrade_to_base_and_upgrade_again(scratch_app: Flask) -> None:
    upgrade()
    tables = set(inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables
    downgrade(revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade()
    assert set(db.metadata.tables) <= set(inspect(db.engine).get_table_names())
    assert_schema_matches_the_models()


BEFORE_COMPOSITE = "5e2a7c41d0b3"
COMPOSITE = "8d4f0b6e2c15"


def _seed_old_schema_data() -> dict[str, int]:
    """What a deployed database holds before the fix: a one-subject purchase and its 50 cards."""
    tables = db.metadata.tables
    now = utcnow()
    with db.engine.begin() as connection:
        user_id = connection.execute(
            insert(tables["users"]).values(
                email="old@example.com",
                password_hash=hash_password("old-password-1"),
                full_name="Old Customer",
                phone_number="+919811111111",
                role="student",
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        customer_id = connection.execute(
            insert(tables["customers"]).values(
                user_id=user_id,
                email="old@example.com",
                phone_number="+919811111111",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        course_id = connection.execute(
            insert(tables["courses"]).values(
                slug="old", title="Old", description="", is_active=True, created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        subject_ids = [
            connection.execute(
                insert(tables["subjects"]).values(
                    course_id=course_id,
                    name=name,
                    description="",
                    price=Decimal("100.00"),
                    is_active=True,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            for name in ("Physics", "Chemistry", "Biology")
        ]
        purchase_id = connection.execute(
            insert(tables["purchases"]).values(
                customer_id=customer_id,
                purchase_type="single_subject",
                course_id=course_id,
                total_cost=Decimal("100.00"),
                currency="INR",
                created_at=now,
            )
        ).inserted_primary_key[0]
        connection.execute(
            insert(tables["purchase_items"]).values(
                purchase_id=purchase_id,
                customer_id=customer_id,
                subject_id=subject_ids[0],
                price=Decimal("100.00"),
                created_at=now,
            )
        )
        connection.execute(
            insert(tables["mock_test_attempts"]),
            [
                {
                    "purchase_id": purchase_id,
                    "subject_id": subject_ids[0],
                    "test_number": n,
                    "status": "available",
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(1, 51)
            ],
        )
    return {
        "user_id": user_id,
        "customer_id": customer_id,
        "purchase_id": purchase_id,
        "subject_a": subject_ids[1],
        "subject_b": subject_ids[2],
    }


def _card_count() -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM mock_test_attempts")).scalar_one()


def test_the_fix_upgrades_a_database_with_data(scratch_app: Flask) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    seeded = _seed_old_schema_data()
    url = db.engine.url.render_as_string(hide_password=False)

    # The bug, as deployed: card 1 of a second subject in the same purchase is refused.
    refused = pytest.raises(IntegrityError, match=r"unique_test_per_purchase|mock_test_attempts\.purchase_id")
    with refused, db.engine.begin() as connection:
        connection.execute(
            insert(db.metadata.tables["mock_test_attempts"]).values(
                purchase_id=seeded["purchase_id"],
                subject_id=seeded["subject_a"],
                test_number=1,
                status="available",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    before = check_database(url)
    assert before.exit_code == 1
    old = next(check for check in before.checks if check.name == "old constraint")
    assert not old.ok
    assert "unique_test_per_purchase" in old.detail

    upgrade()
    assert _card_count() == 50
    with db.engine.connect() as connection:
        owners = connection.execute(text("SELECT DISTINCT customer_id FROM mock_test_attempts")).scalars().all()
    assert owners == [seeded["customer_id"]]  # backfilled from the purchases
    after = check_database(url)
    assert after.exit_code == 0, after.to_text()

    # Now a two-subject purchase works through the API.
    user = db.session.get(User, seeded["user_id"])
    make_purchase(scratch_app.test_client(), bearer(user), [seeded["subject_a"], seeded["subject_b"]])
    assert _card_count() == 150
    assert check_database(url).exit_code == 0


def test_the_downgrade_refuses_while_multi_subject_cards_exist(
    scratch_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    seeded = _seed_old_schema_data()
    upgrade()
    user = db.session.get(User, seeded["user_id"])
    subjects = [seeded["subject_a"], seeded["subject_b"]]
    clashing = make_purchase(scratch_app.test_client(), bearer(user), subjects)["purchase"]["id"]
    downgrade(revision=COMPOSITE)  # the revision that adds the composite constraint is now the top one
    caplog.clear()
    with pytest.raises(SystemExit):
        downgrade(revision=BEFORE_COMPOSITE)
    refusals = [r.getMessage() for r in caplog.records if r.name == "flask_migrate" and r.levelno == logging.ERROR]
    assert len(refusals) == 1, caplog.text
    assert refusals[0].startswith("Error: Refusing to downgrade: 1 purchase(s) hold cards of several subjects")
    assert f"(purchase ids: {clashing})" in refusals[0]
    assert "Nothing was changed." in refusals[0]
    # nothing changed: still at that revision, composite constraint in place, every card kept
    url = db.engine.url.render_as_string(hide_password=False)
    checks = {check.name: check for check in check_database(url).checks}
    assert checks["composite constraint"].ok
    assert checks["old constraint"].ok
    assert checks["migrations"].detail.startswith(f"database at {COMPOSITE};")
    assert _card_count() == 150

    # once those cards are gone, the downgrade goes through
    with db.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM mock_test_attempts WHERE subject_id <> :keep"), {"keep": seeded["subject_a"]}
        )
    downgrade(revision=BEFORE_COMPOSITE)
    uniques = {uc["name"] for uc in inspect(db.engine).get_unique_constraints("mock_test_attempts")}
    assert "unique_test_per_purchase" in uniques
    assert "unique_test_per_purchase_subject" not in uniques


@pytest.mark.parametrize("scratch_app", ["mariadb"], indirect=True)
def test_mariadb_refuses_to_drop_the_old_index_first(scratch_app: Flask) -> None:
    """Why the revision is ordered by hand: error 1553 when the old index goes first."""
    upgrade(revision=BEFORE_COMPOSITE)
    with pytest.raises(OperationalError) as refused, db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE mock_test_attempts DROP INDEX unique_test_per_purchase"))
    assert refused.value.orig.args[0] == 1553
    upgrade()
    assert check_database(db.engine.url.render_as_string(hide_password=False)).exit_code == 0


def test_check_constraints_cli_exit_codes(scratch_app: Flask) -> None:
    runner = scratch_app.test_cli_runner()
    upgrade(revision=BEFORE_COMPOSITE)
    stale = runner.invoke(args=["check-constraints"])
    assert stale.exit_code == 1
    assert "unique_test_per_purchase" in stale.output
    upgrade()
    fine = runner.invoke(args=["check-constraints", "--json"])
    assert fine.exit_code == 0
    assert json.loads(fine.output)["ok"] is True
    unreachable = runner.invoke(args=["check-constraints", "--database-url", "mysql://root@127.0.0.1:9/none"])
    assert unreachable.exit_code == 2


BEFORE_EXACT_KEYS = "f81c4a2e6d07"


def _insert_key(customer_id: int, key: str, *, digested: bool = False) -> None:
    """A completed key as a purchase leaves it, before (or after) the revision under test."""
    values = {
        "customer_id": customer_id,
        "key": key,
        "request_fingerprint": "f" * 64,
        "response_status": 201,
        "response_body": '{"status": "created"}',
        "created_at": utcnow(),
        "completed_at": utcnow(),
    }
    if digested:
        values["key_sha256"] = key_digest(key)
    columns = ", ".join(f"`{name}`" for name in values)
    with db.engine.begin() as connection:
        connection.execute(
            text(f"INSERT INTO idempotency_keys ({columns}) VALUES ({', '.join(':' + name for name in values)})"),
            values,
        )


def _keys() -> list[tuple[str, str]]:
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT `key`, request_fingerprint FROM idempotency_keys ORDER BY id"))
        return [tuple(row) for row in rows]


def test_exact_idempotency_keys_upgrade_and_downgrade_with_data(
    scratch_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    customer_id = _seed_old_schema_data()["customer_id"]
    upgrade(revision=BEFORE_EXACT_KEYS)
    for key in ("key-ab", "café", "order "):
        _insert_key(customer_id, key)
    kept = _keys()

    upgrade()
    assert _keys() == kept
    assert_schema_matches_the_models()
    # Every stored key is found again by its exact bytes, and only by them.
    with db.engine.connect() as connection:
        for key in ("key-ab", "café", "order "):
            row = connection.execute(
                select(IdempotencyKey.key).where(
                    IdempotencyKey.customer_id == customer_id, IdempotencyKey.key_sha256 == key_digest(key)
                )
            ).scalar_one()
            assert row == key
    for twin in ("KEY-AB", "cafe", "order"):  # one key each under the old collation
        _insert_key(customer_id, twin, digested=True)
    assert check_database(db.engine.url.render_as_string(hide_password=False)).exit_code == 0

    if db.engine.dialect.name == "mysql":
        # utf8mb4_unicode_ci cannot hold those twins apart: refuse, and change nothing.
        caplog.clear()
        with pytest.raises(SystemExit):
            downgrade(revision=BEFORE_EXACT_KEYS)
        refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("Refusing to downgrade: 3 Idempotency-Key(s)" in message for message in refusals), caplog.text
        assert "key_sha256" in {column["name"] for column in inspect(db.engine).get_columns("idempotency_keys")}
        with db.engine.begin() as connection:
            # (not by `key`: that column's collation would match the originals too)
            twins = [key_digest(twin) for twin in ("KEY-AB", "cafe", "order")]
            connection.execute(IdempotencyKey.__table__.delete().where(IdempotencyKey.key_sha256.in_(twins)))
        kept_after = kept
    else:
        kept_after = [*kept, ("KEY-AB", "f" * 64), ("cafe", "f" * 64), ("order", "f" * 64)]
    downgrade(revision=BEFORE_EXACT_KEYS)
    assert "key_sha256" not in {column["name"] for column in inspect(db.engine).get_columns("idempotency_keys")}
    assert _keys() == kept_after
    upgrade()
    assert _keys() == kept_after
    assert_schema_matches_the_models()


BEFORE_PAPERS = "46343628adeb"


def test_started_and_finished_cards_keep_their_papers_through_the_upgrade(scratch_app: Flask) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    seeded = _seed_old_schema_data()
    upgrade(revision=BEFORE_PAPERS)
    now = utcnow()
    with db.engine.connect() as connection:
        subject = connection.execute(text("SELECT subject_id FROM mock_test_attempts LIMIT 1")).scalar_one()
    with db.engine.begin() as connection:
        for n in range(12):
            connection.execute(
                text(
                    "INSERT INTO questions (subject_id, text, options, correct_option, explanation, difficulty, "
                    "is_active, created_at, updated_at) VALUES (:s, :t, :o, :c, :e, 'easy', 1, :now, :now)"
                ),
                {
                    "s": subject,
                    "t": f"Old {n}",
                    "o": json.dumps(["A", "B", "C", "D"]),
                    "c": n % 4,
                    "e": f"E{n}",
                    "now": now,
                },
            )
        ids = connection.execute(text("SELECT id FROM questions ORDER BY id")).scalars().all()[:10]
        key = {qid: n % 4 for n, qid in enumerate(ids)}
        seven_right = {str(q): key[q] for q in ids[:7]} | {str(ids[7]): (key[ids[7]] + 1) % 4}
        cards = (
            connection.execute(
                text("SELECT id FROM mock_test_attempts WHERE test_number IN (1, 2, 3) ORDER BY test_number")
            )
            .scalars()
            .all()
        )
        started = {"ids": json.dumps(ids), "now": now, "deadline": now + timedelta(minutes=30)}
        connection.execute(
            text(
                "UPDATE mock_test_attempts SET status = 'completed', question_ids = :ids, question_count = 10, "
                "answers = :answers, correct_count = 7, score = 70.00, started_at = :now, deadline_at = :deadline, "
                "submitted_at = :now WHERE id = :id"
            ),
            {**started, "answers": json.dumps(seven_right), "id": cards[0]},
        )
        connection.execute(
            text(
                "UPDATE mock_test_attempts SET status = 'in_progress', question_ids = :ids, question_count = 10, "
                "answers = :answers, started_at = :now, deadline_at = :deadline WHERE id = :id"
            ),
            {**started, "answers": json.dumps({str(ids[0]): key[ids[0]]}), "id": cards[1]},
        )

    upgrade()
    user = db.session.get(User, seeded["user_id"])
    client = scratch_app.test_client()
    headers = bearer(user)
    finished = client.get(f"/api/mock-tests/{cards[0]}", headers=headers).get_json()
    assert (finished["status"], finished["score"], finished["correct_count"], finished["marks"]) == (
        "completed",
        "70.00",
        7,
        "7.00",
    )
    assert (finished["wrong_count"], finished["unanswered_count"]) == (1, 2)
    review = client.get(f"/api/mock-tests/{cards[0]}/review", headers=headers).get_json()
    assert [q["id"] for q in review["questions"]] == ids
    assert [q["text"] for q in review["questions"]][:2] == ["Old 0", "Old 1"]
    assert {str(q["id"]): q["your_answer"] for q in review["questions"] if q["your_answer"] is not None} == seven_right
    assert review["paper"]["version"] == 1

    # The bank changes afterwards; the finished review and the started test do not.
    admin = bearer(create_admin())
    client.patch(
        f"/api/subjects/{subject}/questions/{ids[0]}", json={"text": "New", "correct_option": 3}, headers=admin
    )
    assert client.get(f"/api/mock-tests/{cards[0]}/review", headers=headers).get_json() == review
    resumed = client.post(f"/api/mock-tests/{cards[1]}/start", headers=headers).get_json()
    assert (resumed["paper"]["test_number"], resumed["paper"]["version"]) == (2, 1)
    assert resumed["answers"] == {str(ids[0]): key[ids[0]]}
    assert resumed["questions"][0]["text"] == "Old 0"
    done = client.post(f"/api/mock-tests/{cards[1]}/submit", json={}, headers=headers).get_json()
    assert (done["correct_count"], done["score"]) == (1, "10.00")

    db.session.remove()  # a session left open would hold a metadata lock the ALTERs wait for
    downgrade(revision="5b1e7d93c2a4")
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, question_ids, answers, score FROM mock_test_attempts WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": cards[:2]},
        ).all()
    back = {row.id: (json.loads(row.question_ids), json.loads(row.answers), row.score) for row in rows}
    assert back[cards[0]] == (ids, seven_right, Decimal("70.00"))
    assert back[cards[1]][:2] == (ids, {str(ids[0]): key[ids[0]]})
    downgrade(revision=BEFORE_PAPERS)
    upgrade()
    assert_schema_matches_the_models()


BEFORE_PAYMENTS = "3e8a5c1f7d92"
PAYMENTS = "b3d5f7a9c1e2"


def _purchase_rows() -> list[dict[str, object]]:
    with db.engine.connect() as connection:
        return [
            dict(row)
            for row in connection.execute(
                text("SELECT id, customer_id, total_cost, created_at FROM purchases ORDER BY id")
            ).mappings()
        ]


def test_payments_upgrade_keeps_every_old_purchase_paid_and_owned(scratch_app: Flask) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    seeded = _seed_old_schema_data()
    upgrade(revision=BEFORE_PAYMENTS)
    before = _purchase_rows()

    upgrade()  # through the payments revision (and those after it) to the head
    assert _purchase_rows() == before
    with db.engine.connect() as connection:
        purchase = connection.execute(
            text("SELECT status, provider, paid_at, created_at, refund_due FROM purchases")
        ).one()
        item = connection.execute(
            text("SELECT state, customer_id, active_customer_id, access_until FROM purchase_items")
        ).one()
    assert (purchase.status, purchase.provider, purchase.refund_due) == ("paid", "legacy", Decimal("0.00"))
    assert purchase.paid_at == purchase.created_at
    assert (item.state, item.active_customer_id, item.access_until) == ("active", seeded["customer_id"], None)
    assert _card_count() == 50
    upgrade()  # the models' schema, later revisions included
    assert_schema_matches_the_models()
    url = db.engine.url.render_as_string(hide_password=False)
    assert check_database(url).exit_code == 0, check_database(url).to_text()

    # The old purchase still owns its subject: buying it again creates nothing.
    user = db.session.get(User, seeded["user_id"])
    client = scratch_app.test_client()
    with db.engine.connect() as connection:
        owned = connection.execute(text("SELECT subject_id FROM purchase_items")).scalar_one()
    again = client.post(
        "/api/purchases", json={"purchase_type": "single_subject", "subject_id": owned}, headers=bearer(user)
    )
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["status"] == "already_owned"

    downgrade(revision=BEFORE_PAYMENTS)
    assert _purchase_rows() == before
    assert _card_count() == 50
    assert "uq_purchase_items_customer_id_subject_id" in {
        uc["name"] for uc in inspect(db.engine).get_unique_constraints("purchase_items")
    } | {ix["name"] for ix in inspect(db.engine).get_indexes("purchase_items") if ix["unique"]}
    upgrade()
    assert_schema_matches_the_models()


def test_payments_downgrade_refuses_while_a_subject_was_bought_again(
    scratch_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    seeded = _seed_old_schema_data()
    upgrade(revision=PAYMENTS)
    with db.engine.begin() as connection:
        subject_id = connection.execute(text("SELECT subject_id FROM purchase_items")).scalar_one()
        # Refunded, then bought again: two granted items of one subject.
        connection.execute(text("UPDATE purchase_items SET state = 'refunded', active_customer_id = NULL"))
        connection.execute(
            text(
                "INSERT INTO purchases (customer_id, purchase_type, total_cost, currency, created_at, status, "
                "provider, refund_due) VALUES (:c, 'single_subject', 100, 'INR', :now, 'paid', 'sandbox', 0)"
            ),
            {"c": seeded["customer_id"], "now": utcnow()},
        )
        second = connection.execute(text("SELECT MAX(id) FROM purchases")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO purchase_items (purchase_id, customer_id, subject_id, price, created_at, state, "
                "active_customer_id) VALUES (:p, :c, :s, 100, :now, 'active', :c)"
            ),
            {"p": second, "c": seeded["customer_id"], "s": subject_id, "now": utcnow()},
        )
    caplog.clear()
    with pytest.raises(SystemExit):
        downgrade(revision=BEFORE_PAYMENTS)
    assert "Refusing to downgrade: 1 (customer, subject) pair(s)" in caplog.text
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == PAYMENTS
    upgrade()  # nothing was half-dropped: the later revisions apply and the models' schema results
    assert_schema_matches_the_models()


MAIL = "e7f9b1c3d5a8"


def test_accounts_that_exist_at_the_upgrade_are_verified_and_the_downgrade_forgets_mail(scratch_app: Flask) -> None:
    upgrade(revision=BEFORE_COMPOSITE)
    seeded = _seed_old_schema_data()
    upgrade(revision=MAIL)
    assert_schema_matches_the_models()
    with db.engine.connect() as connection:
        verified_at, created_at = connection.execute(
            text("SELECT email_verified_at, created_at FROM users WHERE id = :id"), {"id": seeded["user_id"]}
        ).one()
    assert verified_at == created_at  # registered before verification existed: verified

    # The old account can pay; a new one writes its verification mail to the outbox.
    client = scratch_app.test_client()
    response = client.post("/api/auth/verify-email", json={"token": "nothing-like-it"})
    assert response.status_code == 422
    registered = client.post(
        "/api/auth/register",
        json={
            "email": "new@example.com",
            "password": "new-password-1",
            "full_name": "New",
            "phone_number": "+919811111112",
        },
    )
    assert registered.status_code == 201
    assert registered.get_json()["user"]["email_verified_at"] is None

    downgrade(revision=PAYMENTS)
    tables = set(inspect(db.engine).get_table_names())
    assert {"outbox_messages", "account_tokens"} & tables == set()
    assert "email_verified_at" not in {column["name"] for column in inspect(db.engine).get_columns("users")}
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM users")).scalar_one() == 2
    upgrade()


BEFORE_RANKING = "d4e6f8a0b2c3"  # the regrade


def _submit_card(client: Any, headers: dict[str, str], number: int, minutes_ago: int = 0) -> None:
    cards = client.get("/api/mock-tests?per_page=100", headers=headers).get_json()["items"]
    card = next(c["id"] for c in cards if c["test_number"] == number and c["status"] == "available")
    assert client.post(f"/api/mock-tests/{card}/start", headers=headers).status_code == 200
    if minutes_ago:
        row = db.session.get(MockTestAttempt, card, populate_existing=True)
        row.started_at -= timedelta(minutes=minutes_ago)
        row.deadline_at -= timedelta(minutes=minutes_ago)
        db.session.commit()
    assert client.post(f"/api/mock-tests/{card}/submit", json={}, headers=headers).status_code == 200


def _ranking_columns() -> dict[int, tuple[bool, int]]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, ranked, time_taken_seconds FROM mock_test_attempts WHERE submitted_at IS NOT NULL")
        ).all()
    return {row.id: (bool(row.ranked), row.time_taken_seconds) for row in rows}


def test_the_ranking_backfill_matches_what_scoring_records(scratch_app: Flask) -> None:
    """Cards submitted before the ranking columns existed get them as scoring records them:
    first attempts of non-staff customers ranked, time taken up to the duration."""
    upgrade()
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 12)
    client = scratch_app.test_client()
    admin = bearer(create_admin(phone_number="+919811100077"))
    first = student_with(client, [subject])
    _submit_card(client, first, 1, minutes_ago=5)
    _submit_card(client, first, 2)
    _submit_card(client, student_with(client, [subject]), 1, minutes_ago=50)
    staff = bearer(create_admin(phone_number="+919811100078"))
    assert client.post("/api/customers/upgrade", json={}, headers=staff).status_code == 201
    make_purchase(client, staff, [subject])
    _submit_card(client, staff, 1)
    purchase = client.get("/api/purchases", headers=first).get_json()["items"][0]["id"]
    assert client.post(f"/api/purchases/{purchase}/refund", json={}, headers=admin).status_code == 201
    make_purchase(client, first, [subject])
    _submit_card(client, first, 1)  # a second attempt of paper 1
    recorded = _ranking_columns()
    assert sorted(ranked for ranked, _ in recorded.values()) == [False, False, True, True, True]
    assert sorted(seconds for _, seconds in recorded.values())[-2:][0] >= 300
    assert max(seconds for _, seconds in recorded.values()) == 30 * 60  # 50 minutes: the duration

    db.session.remove()
    downgrade(revision=BEFORE_RANKING)
    assert "ranked" not in {c["name"] for c in inspect(db.engine).get_columns("mock_test_attempts")}
    upgrade()
    backfilled = _ranking_columns()
    assert {card: ranked for card, (ranked, _) in backfilled.items()} == {
        card: ranked for card, (ranked, _) in recorded.items()
    }
    for card, (_, seconds) in recorded.items():
        assert abs(backfilled[card][1] - seconds) <= 1
    assert_schema_matches_the_models()
