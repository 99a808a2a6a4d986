"""Purchases and their test cards, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.errors import Conflict, ValidationFailed
from shared.extensions import db
from shared.models import IdempotencyKey, MockTestAttempt, Purchase, PurchaseItem, PurchaseType
from shared.models.base import utcnow
from shared.services.cards import MockTestService, add_missing_cards
from shared.services.idempotency import Claim, parse_key
from shared.services.purchases import PurchaseService
from tests.support.accounts import bearer, create_admin, register
from tests.support.catalog import CourseFixture, make_course
from tests.support.purchases import make_purchase
from tests.support.queries import count_rows

# The purchase itself, fulfilled at once (PAYMENT_PROVIDER=none); paying is tests/test_payments.py.
pytestmark = pytest.mark.usefixtures("immediate_fulfilment")


@pytest.fixture
def course(app: Flask) -> CourseFixture:
    return make_course(subjects=3, price="499.00")


def buy(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/purchases", json=body, headers=headers)


def cards(purchase_id: int | None = None) -> list[tuple[int, int, int]]:
    statement = select(MockTestAttempt.purchase_id, MockTestAttempt.subject_id, MockTestAttempt.test_number)
    if purchase_id is not None:
        statement = statement.where(MockTestAttempt.purchase_id == purchase_id)
    return [tuple(row) for row in db.session.execute(statement.order_by(MockTestAttempt.id))]


def test_one_subject_gets_fifty_cards_numbered_1_to_50(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    subject = course.subject_ids[0]
    response = buy(client, student, purchase_type="single_subject", course_id=course.id, subject_id=subject)
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "created"
    assert body["cards_created"] == 50
    purchase = body["purchase"]
    assert (purchase["total_cost"], purchase["currency"], purchase["cards_total"]) == ("499.00", "INR", 50)
    (bought,) = purchase["subjects"]
    access_until = bought.pop("access_until")
    assert bought == {"subject_id": subject, "name": "Subject 1", "price": "499.00", "cards": 50, "state": "active"}
    assert (purchase["status"], purchase["provider"], purchase["refund_due"]) == ("paid", "none", "0.00")
    assert access_until[:10] == (utcnow() + timedelta(days=365)).date().isoformat()
    assert sorted(number for _, _, number in cards(purchase["id"])) == list(range(1, 51))
    statuses = db.session.execute(select(MockTestAttempt.status).distinct()).scalars().all()
    assert [s.value for s in statuses] == ["available"]


def test_two_subjects_get_a_hundred_cards_with_card_1_of_each(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    first, second = course.subject_ids[:2]
    response = buy(client, student, purchase_type="multiple_subjects", course_id=course.id, subject_ids=[first, second])
    assert response.status_code == 201
    purchase_id = response.get_json()["purchase"]["id"]
    assert response.get_json()["purchase"]["total_cost"] == "998.00"
    rows = cards(purchase_id)
    assert len(rows) == 100
    assert (purchase_id, first, 1) in rows
    assert (purchase_id, second, 1) in rows


def test_subjects_of_several_courses_in_one_purchase(client: FlaskClient, student: dict[str, str]) -> None:
    one, other = make_course(subjects=1), make_course(subjects=1)
    ids = [one.subject_ids[0], other.subject_ids[0]]
    response = buy(client, student, purchase_type="multiple_subjects", subject_ids=ids)
    assert response.status_code == 201
    assert response.get_json()["purchase"]["course_id"] is None
    assert len(cards()) == 100


@pytest.mark.parametrize("size", [3, 20])
def test_a_bundle_of_n_subjects_gets_50_n_cards(client: FlaskClient, student: dict[str, str], size: int) -> None:
    bundle = make_course(subjects=size, price="99.00", bundle_price="999.00")
    response = buy(client, student, purchase_type="bundle", bundle_id=bundle.bundle_id)
    assert response.status_code == 201
    body = response.get_json()
    assert body["cards_created"] == 50 * size
    assert body["purchase"]["total_cost"] == "999.00"
    assert body["purchase"]["bundle_id"] == bundle.bundle_id
    assert len(cards(body["purchase"]["id"])) == 50 * size
    assert count_rows(PurchaseItem) == size


def test_statements_of_a_purchase_do_not_grow_with_its_subjects(
    client: FlaskClient, student: dict[str, str], query_counter: Any
) -> None:
    small, large = make_course(subjects=2), make_course(subjects=20)
    with query_counter() as small_purchase:
        assert buy(client, student, purchase_type="bundle", bundle_id=small.bundle_id).status_code == 201
    with query_counter() as large_purchase:
        assert buy(client, student, purchase_type="bundle", bundle_id=large.bundle_id).status_code == 201
    assert small_purchase.count == large_purchase.count, large_purchase
    card_inserts = [s for s in large_purchase.statements if s.startswith("INSERT INTO mock_test_attempts")]
    assert len(card_inserts) == 1
    assert len(cards()) == 50 * 22


def test_buying_what_is_owned_creates_nothing(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    first, second = course.subject_ids[:2]
    bought = make_purchase(client, student, [first, second])
    again = buy(client, student, purchase_type="single_subject", subject_id=first)
    assert again.status_code == 200
    body = again.get_json()
    assert (body["status"], body["cards_created"], body["purchase"]) == ("already_owned", 0, None)
    assert [p["id"] for p in body["purchases"]] == [bought["purchase"]["id"]]
    assert body["purchases"][0]["cards_total"] == 100
    assert count_rows(Purchase) == 1
    assert len(cards()) == 100


def test_mixing_owned_and_new_subjects_is_a_409_listing_the_owned(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    first, second, third = course.subject_ids
    make_purchase(client, student, [second])
    response = buy(client, student, purchase_type="multiple_subjects", subject_ids=[first, second, third])
    assert response.status_code == 409
    assert response.get_json()["owned_subject_ids"] == [second]
    assert "subject_ids" in response.get_json()["errors"]
    bundle = buy(client, student, purchase_type="bundle", bundle_id=course.bundle_id)
    assert bundle.status_code == 409
    assert bundle.get_json()["owned_subject_ids"] == [second]
    assert count_rows(Purchase) == 1
    assert len(cards()) == 50


def test_wrong_cost_is_a_409_with_the_current_price_and_nothing_bought(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    subject = course.subject_ids[0]
    cheaper = buy(client, student, purchase_type="single_subject", subject_id=subject, cost="1.00")
    assert cheaper.status_code == 409
    assert (cheaper.get_json()["current_price"], cheaper.get_json()["currency"]) == ("499.00", "INR")
    assert list(cheaper.get_json()["errors"]) == ["cost"]
    dearer = buy(client, student, purchase_type="single_subject", subject_id=subject, cost="500")
    assert dearer.status_code == 409
    assert count_rows(Purchase) == 0
    assert cards() == []
    right = buy(client, student, purchase_type="single_subject", subject_id=subject, cost="499")
    assert right.status_code == 201
    assert right.get_json()["purchase"]["total_cost"] == "499.00"


def test_the_bundle_price_is_the_catalogs(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    sum_of_parts = str(sum(course.prices.values()))
    response = buy(client, student, purchase_type="bundle", bundle_id=course.bundle_id, cost=sum_of_parts)
    assert response.status_code == 409
    assert response.get_json()["current_price"] == str(course.bundle_price)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"purchase_type": "single_subject", "subject_id": 999999}, "subject_id"),
        ({"purchase_type": "multiple_subjects", "subject_ids": [999998, 999999]}, "subject_ids"),
        ({"purchase_type": "bundle", "bundle_id": 999999}, "bundle_id"),
        ({"purchase_type": "single_subject", "subject_id": 1, "course_id": 999999}, "course_id"),
        ({"purchase_type": "single_subject"}, "subject_id"),
        ({"purchase_type": "single_subject", "subject_id": 1, "subject_ids": [1, 2]}, "subject_ids"),
        ({"purchase_type": "multiple_subjects", "subject_ids": [1]}, "subject_ids"),
        ({"purchase_type": "multiple_subjects", "subject_ids": [1, 1]}, "subject_ids"),
        ({"purchase_type": "gift_card", "subject_id": 1}, "purchase_type"),
        ({"purchase_type": "bundle", "bundle_id": 1, "cost": "-1"}, "cost"),
    ],
)
def test_bad_requests_are_422_with_the_field(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/purchases", json=body, headers=student)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert count_rows(Purchase) == 0


def test_subjects_outside_the_named_course_are_422(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    other = make_course(subjects=1)
    single = buy(client, student, purchase_type="single_subject", course_id=course.id, subject_id=other.subject_ids[0])
    assert single.status_code == 422
    assert list(single.get_json()["errors"]) == ["subject_id"]
    several = buy(
        client,
        student,
        purchase_type="multiple_subjects",
        course_id=course.id,
        subject_ids=[course.subject_ids[0], other.subject_ids[0]],
    )
    assert str(other.subject_ids[0]) in several.get_json()["errors"]["subject_ids"][0]
    bundle = buy(client, student, purchase_type="bundle", course_id=course.id, bundle_id=other.bundle_id)
    assert list(bundle.get_json()["errors"]) == ["bundle_id"]
    assert count_rows(Purchase) == 0


def test_inactive_subjects_are_not_for_sale(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    admin = bearer(create_admin())
    client.patch(f"/api/subjects/{course.subject_ids[0]}", json={"is_active": False}, headers=admin)
    response = buy(client, student, purchase_type="single_subject", subject_id=course.subject_ids[0])
    assert response.status_code == 422


def test_what_the_catalog_hides_is_not_for_sale(client: FlaskClient, student: dict[str, str]) -> None:
    admin = bearer(create_admin())
    closed, partial = make_course(subjects=2), make_course(subjects=2)
    assert client.patch(f"/api/courses/{closed.id}", json={"is_active": False}, headers=admin).status_code == 200
    assert (
        client.patch(f"/api/subjects/{partial.subject_ids[0]}", json={"is_active": False}, headers=admin).status_code
        == 200
    )
    assert client.get(f"/api/courses/{closed.id}").status_code == 404
    assert client.get(f"/api/bundles/{closed.bundle_id}").status_code == 404
    assert client.get(f"/api/bundles/{partial.bundle_id}").status_code == 404

    refused = [
        ({"purchase_type": "single_subject", "subject_id": closed.subject_ids[0]}, "subject_id"),
        ({"purchase_type": "multiple_subjects", "subject_ids": closed.subject_ids}, "subject_ids"),
        ({"purchase_type": "bundle", "bundle_id": closed.bundle_id}, "bundle_id"),
        ({"purchase_type": "bundle", "bundle_id": partial.bundle_id}, "bundle_id"),
        (
            {"purchase_type": "single_subject", "subject_id": closed.subject_ids[0], "course_id": closed.id},
            "subject_id",
        ),
    ]
    for body, field in refused:
        response = client.post("/api/purchases", json=body, headers=student)
        assert response.status_code == 422, body
        assert field in response.get_json()["errors"], body
    named = client.post("/api/purchases", json=refused[-1][0], headers=student).get_json()
    assert set(named["errors"]) == {"course_id", "subject_id"}
    assert (count_rows(Purchase), count_rows(PurchaseItem), cards()) == (0, 0, [])

    # What is still shown is still sold.
    assert buy(client, student, purchase_type="single_subject", subject_id=partial.subject_ids[1]).status_code == 201


def test_card_creation_is_idempotent(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    body = make_purchase(client, student, bundle_id=course.bundle_id)
    purchase = db.session.get(Purchase, body["purchase"]["id"])
    report = MockTestService.create_test_cards_for_purchase(purchase)
    assert (report.created, report.existing) == (0, 150)
    assert len(cards()) == 150
    # A purchase whose cards were partly lost gets exactly the missing ones back.
    db.session.execute(
        MockTestAttempt.__table__.delete().where(
            MockTestAttempt.subject_id == course.subject_ids[1], MockTestAttempt.test_number > 45
        )
    )
    db.session.commit()
    repaired = MockTestService.create_test_cards_for_purchase(purchase)
    assert (repaired.created, repaired.existing) == (5, 145)
    assert len(cards()) == 150


def test_purchase_reads_are_own_only_and_admins_see_all(client: FlaskClient, course: CourseFixture) -> None:
    alice = bearer(register(client)["access_token"])
    bob = bearer(register(client)["access_token"])
    mine = make_purchase(client, alice, [course.subject_ids[0]])["purchase"]
    make_purchase(client, bob, bundle_id=course.bundle_id)

    listed = client.get("/api/purchases", headers=alice).get_json()
    assert [p["id"] for p in listed["items"]] == [mine["id"]]
    detail = client.get(f"/api/purchases/{mine['id']}", headers=alice).get_json()
    assert detail["subjects"][0]["cards"] == 50
    assert client.get(f"/api/purchases/{mine['id']}", headers=bob).status_code == 404
    assert client.get("/api/purchases/999999", headers=alice).status_code == 404

    admin = bearer(create_admin())
    everyone = client.get("/api/purchases", headers=admin).get_json()
    assert everyone["total"] == 2
    only_alice = client.get(f"/api/purchases?customer_id={mine['customer_id']}", headers=admin).get_json()
    assert [p["id"] for p in only_alice["items"]] == [mine["id"]]
    assert client.get(f"/api/purchases/{mine['id']}", headers=admin).status_code == 200
    assert client.get("/api/purchases").status_code == 401


def test_purchase_list_makes_a_fixed_number_of_queries(
    client: FlaskClient, student: dict[str, str], query_counter: Any
) -> None:
    first = make_course(subjects=2)
    make_purchase(client, student, bundle_id=first.bundle_id)
    with query_counter() as few:
        client.get("/api/purchases", headers=student)
    for _ in range(4):
        make_purchase(client, student, bundle_id=make_course(subjects=3).bundle_id)
    with query_counter() as many:
        assert client.get("/api/purchases", headers=student).get_json()["total"] == 5
    assert few.count == many.count, many


def test_admin_without_customer_profile_cannot_buy(client: FlaskClient, course: CourseFixture) -> None:
    response = buy(client, bearer(create_admin()), purchase_type="single_subject", subject_id=course.subject_ids[0])
    assert response.status_code == 403


def test_deleting_what_was_bought_is_a_409(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    admin = bearer(create_admin())
    make_purchase(client, student, bundle_id=course.bundle_id)
    for path in (
        f"/api/subjects/{course.subject_ids[0]}",
        f"/api/bundles/{course.bundle_id}",
        f"/api/courses/{course.id}",
    ):
        response = client.delete(path, headers=admin)
        assert response.status_code == 409, path
        assert "Deactivate" in response.get_json()["detail"]
    assert client.patch(f"/api/courses/{course.id}", json={"is_active": False}, headers=admin).status_code == 200


# ---------------------------------------------------------------- Idempotency-Key


def test_same_key_and_body_replays_the_first_response(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    body = {"purchase_type": "bundle", "bundle_id": course.bundle_id}
    first = client.post("/api/purchases", json=body, headers={**student, "Idempotency-Key": "order-1"})
    replay = client.post("/api/purchases", json=body, headers={**student, "Idempotency-Key": '"order-1"'})
    assert first.status_code == replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert replay.get_json() == first.get_json()
    assert count_rows(Purchase) == 1


def test_same_key_with_another_body_is_a_422(
    client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    key = {**student, "Idempotency-Key": "order-2"}
    make_purchase(client, key, [course.subject_ids[0]])
    other = buy(client, key, purchase_type="single_subject", subject_id=course.subject_ids[1])
    assert other.status_code == 422
    assert "Idempotency-Key" in other.get_json()["errors"]
    assert count_rows(Purchase) == 1


def test_a_refusal_is_replayed_too(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    key = {**student, "Idempotency-Key": "order-3"}
    body = {"purchase_type": "single_subject", "subject_id": course.subject_ids[0], "cost": "1.00"}
    first = client.post("/api/purchases", json=body, headers=key)
    again = client.post("/api/purchases", json=body, headers=key)
    assert first.status_code == again.status_code == 409
    assert again.get_json()["current_price"] == first.get_json()["current_price"]
    assert count_rows(Purchase) == 0


def test_keys_are_per_customer(client: FlaskClient, course: CourseFixture) -> None:
    alice = {**bearer(register(client)["access_token"]), "Idempotency-Key": "same"}
    bob = {**bearer(register(client)["access_token"]), "Idempotency-Key": "same"}
    assert buy(client, alice, purchase_type="single_subject", subject_id=course.subject_ids[0]).status_code == 201
    assert buy(client, bob, purchase_type="single_subject", subject_id=course.subject_ids[0]).status_code == 201
    assert count_rows(Purchase) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, '""'])
def test_malformed_keys_are_422(client: FlaskClient, student: dict[str, str], course: CourseFixture, key: str) -> None:
    response = buy(
        client,
        {**student, "Idempotency-Key": key},
        purchase_type="single_subject",
        subject_id=course.subject_ids[0],
    )
    assert response.status_code == 422
    assert count_rows(Purchase) == 0


def test_a_255_character_key_is_fine(client: FlaskClient, student: dict[str, str], course: CourseFixture) -> None:
    key = {**student, "Idempotency-Key": "k" * 255}
    assert buy(client, key, purchase_type="single_subject", subject_id=course.subject_ids[0]).status_code == 201
    assert buy(client, key, purchase_type="single_subject", subject_id=course.subject_ids[0]).status_code == 201
    assert count_rows(Purchase) == 1


def test_purge_forgets_keys_older_than_a_day(app: Flask, client: FlaskClient, student: dict[str, str]) -> None:
    course = make_course(subjects=1)
    make_purchase(client, {**student, "Idempotency-Key": "old"}, course.subject_ids)
    db.session.execute(IdempotencyKey.__table__.update().values(created_at=utcnow() - timedelta(hours=25)))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge-idempotency-keys"])
    assert "Purged 1 " in result.output
    assert count_rows(IdempotencyKey) == 0


@pytest.mark.parametrize(
    ("first_key", "second_key"),
    [("key-ab", "KEY-AB"), ("café", "cafe"), ('"order "', '"order"'), ("straße", "strasse")],
    ids=["case", "accent", "trailing-space", "expansion"],
)
def test_keys_are_compared_byte_for_byte(
    client: FlaskClient, student: dict[str, str], course: CourseFixture, first_key: str, second_key: str
) -> None:
    first = {**student, "Idempotency-Key": first_key}
    second = {**student, "Idempotency-Key": second_key}
    bought = buy(client, first, purchase_type="single_subject", subject_id=course.subject_ids[0])
    other = buy(client, second, purchase_type="single_subject", subject_id=course.subject_ids[1])
    assert (bought.status_code, other.status_code) == (201, 201), other.get_json()
    assert "Idempotent-Replayed" not in other.headers
    assert other.get_json()["purchase"]["id"] != bought.get_json()["purchase"]["id"]
    again = buy(client, first, purchase_type="single_subject", subject_id=course.subject_ids[0])
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == bought.get_json()
    assert count_rows(Purchase) == 2
    assert count_rows(IdempotencyKey) == 2


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("order-1", "order-1"),
        ('  "order-1"  ', "order-1"),
        ('"a \\"quoted\\" key "', 'a "quoted" key '),
        ('"back\\\\slash"', "back\\slash"),
        ("café", "café"),
    ],
)
def test_the_header_is_a_bare_key_or_an_sf_string(header: str, key: str) -> None:
    assert parse_key(header) == key


@pytest.mark.parametrize("header", ['"a\\b"', '"a"b"', '"open', "tab\tkey"])
def test_malformed_sf_strings_are_refused(header: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_key(header)


def _die_after_claiming(purchase_id: int, claimed_at: Any) -> None:
    """Leave what a worker leaves that died after its claim: the claim, and nothing it bought."""
    for model in (MockTestAttempt, PurchaseItem, Purchase):
        column = model.id if model is Purchase else model.purchase_id
        db.session.execute(model.__table__.delete().where(column == purchase_id))
    db.session.execute(
        IdempotencyKey.__table__.update().values(
            created_at=claimed_at, response_status=None, response_body=None, completed_at=None
        )
    )
    db.session.commit()


def test_a_dead_claim_is_taken_over_after_the_claim_timeout(
    app: Flask, client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    timeout = app.config["IDEMPOTENCY_CLAIM_TIMEOUT"]
    assert timeout == app.config["TIME_LIMITS"].worker_timeout
    key = {**student, "Idempotency-Key": "died-while-buying"}
    body = {"purchase_type": "single_subject", "subject_id": course.subject_ids[0]}
    first = client.post("/api/purchases", json=body, headers=key).get_json()["purchase"]["id"]
    _die_after_claiming(first, utcnow() - timedelta(seconds=timeout - 10))

    busy = client.post("/api/purchases", json=body, headers=key)
    assert busy.status_code == 409
    assert busy.get_json()["type"] == "urn:exam-shop:problem:idempotency-key-in-flight"
    assert int(busy.headers["Retry-After"]) in (9, 10)  # the 10 s left, in whole seconds rounded up
    assert count_rows(Purchase) == 0

    db.session.execute(IdempotencyKey.__table__.update().values(created_at=utcnow() - timedelta(seconds=timeout)))
    db.session.commit()
    taken = client.post("/api/purchases", json=body, headers=key)
    assert taken.status_code == 201
    assert "Idempotent-Replayed" not in taken.headers
    replay = client.post("/api/purchases", json=body, headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == taken.get_json()
    assert count_rows(Purchase) == 1


def test_a_claim_taken_over_cannot_record_its_outcome(
    app: Flask, client: FlaskClient, student: dict[str, str], course: CourseFixture
) -> None:
    """A worker too slow for the claim timeout, not dead after all, loses the key for good."""
    key = {**student, "Idempotency-Key": "slow-worker"}
    body = {"purchase_type": "single_subject", "subject_id": course.subject_ids[0]}
    first = client.post("/api/purchases", json=body, headers=key).get_json()["purchase"]["id"]
    claimed_at = utcnow() - timedelta(seconds=app.config["IDEMPOTENCY_CLAIM_TIMEOUT"] + 1)
    _die_after_claiming(first, claimed_at)
    row = db.session.execute(select(IdempotencyKey)).scalar_one()
    slow = Claim(key_id=row.id, claimed_at=claimed_at)
    data = {"purchase_type": PurchaseType.SINGLE_SUBJECT, "subject_id": course.subject_ids[1]}
    db.session.remove()

    taken = client.post("/api/purchases", json=body, headers=key)
    assert taken.status_code == 201
    with pytest.raises(Conflict) as lost:
        PurchaseService._purchase_once(row.customer_id, data, slow)
    assert lost.value.slug == "idempotency-key-in-flight"
    db.session.remove()
    assert count_rows(Purchase) == 1  # the slow worker's purchase was rolled back
    replay = client.post("/api/purchases", json=body, headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == taken.get_json()


def test_a_thousand_cards_are_one_insert_select_on_the_wire(mariadb: Flask) -> None:
    """MariaDB itself counts the INSERT statements this connection sent: one INSERT ... SELECT."""
    client = mariadb.test_client()
    student = bearer(register(client)["access_token"])
    twenty = make_course(subjects=20)
    purchase_id = make_purchase(client, student, bundle_id=twenty.bundle_id)["purchase"]["id"]
    db.session.execute(MockTestAttempt.__table__.delete())
    db.session.commit()

    purchase = db.session.get(Purchase, purchase_id)
    connection = db.session.connection()  # the counters are this connection's: one transaction

    def inserts_sent() -> dict[str, int]:
        rows = connection.exec_driver_sql(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Com_insert', 'Com_insert_select')"
        )
        return {name: int(value) for name, value in rows}

    before = inserts_sent()
    report = add_missing_cards(db.session(), purchase.id, purchase.customer_id, 50)
    after = inserts_sent()
    db.session.commit()
    assert report.created == 1000
    assert after["Com_insert_select"] - before["Com_insert_select"] == 1
    assert after["Com_insert"] == before["Com_insert"]
