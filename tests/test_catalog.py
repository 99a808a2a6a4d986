"""The catalog: public reads of the demo data, admin management, bad input, query counts."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from app import create_app
from shared.config import cache_settings
from shared.extensions import db, worker_cache
from shared.models import Course, Subject
from shared.services.demo import DemoDataService
from tests.conftest import CheckedClient, app_config
from tests.support.accounts import bearer, create_admin, register
from tests.support.databases import mariadb_required
from tests.support.live_server import LiveServer, fire_concurrently

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def demo(app: Flask) -> None:
    DemoDataService.seed()


def course_by_slug(client: FlaskClient, slug: str) -> dict[str, Any]:
    courses = client.get("/api/courses?per_page=100").get_json()["items"]
    summary = next(c for c in courses if c["slug"] == slug)
    return client.get(f"/api/courses/{summary['id']}").get_json()


def test_public_reads_show_the_demo_catalog_with_prices_and_savings(client: FlaskClient, demo: None) -> None:
    page = client.get("/api/courses").get_json()
    jee = next(c for c in page["items"] if c["slug"] == "jee-main")
    assert (jee["subject_count"], jee["min_price"], jee["max_price"], jee["currency"]) == (
        3,
        "499.00",
        "599.00",
        "INR",
    )
    assert page["total"] == 4

    detail = course_by_slug(client, "jee-main")
    assert [(s["name"], s["price"]) for s in detail["subjects"]] == [
        ("Physics", "499.00"),
        ("Chemistry", "499.00"),
        ("Mathematics", "599.00"),
    ]
    (bundle,) = detail["bundles"]
    assert (bundle["price"], bundle["subjects_total"], bundle["saving"]) == ("1299.00", "1597.00", "298.00")

    one = client.get(f"/api/bundles/{bundle['id']}").get_json()
    assert one == bundle
    load = client.get("/api/bundles?per_page=100").get_json()["items"]
    big = next(b for b in load if b["slug"] == "load-test-20")
    assert len(big["subjects"]) == 20
    assert (big["subjects_total"], big["saving"]) == ("1980.00", "481.00")
    subjects = client.get(f"/api/courses/{detail['id']}/subjects").get_json()
    assert [s["name"] for s in subjects] == ["Physics", "Chemistry", "Mathematics"]
    by_course = client.get(f"/api/bundles?course_id={detail['id']}").get_json()
    assert [b["slug"] for b in by_course["items"]] == ["jee-main-complete"]


def test_prices_are_strings_never_floats(client: FlaskClient, demo: None) -> None:
    raw = client.get("/api/courses").get_data(as_text=True)
    assert '"min_price": "499.00"' in raw or '"min_price":"499.00"' in raw
    stored = db.session.execute(select(Subject.price).limit(1)).scalar_one()
    assert isinstance(stored, Decimal)


def test_search_by_title(client: FlaskClient, demo: None) -> None:
    found = client.get("/api/courses?q=NEET").get_json()["items"]
    assert [c["slug"] for c in found] == ["neet-ug"]
    assert client.get("/api/courses?q=%25").get_json()["items"] == []


def test_admin_manages_courses_subjects_and_bundles(client: FlaskClient, admin: dict[str, str]) -> None:
    course = client.post(
        "/api/courses",
        json={"slug": "cat-exam", "title": "CAT", "description": "MBA entrance"},
        headers=admin,
    )
    assert course.status_code == 201
    course_id = course.get_json()["id"]
    quant = client.post(
        f"/api/courses/{course_id}/subjects", json={"name": "Quant", "price": "300"}, headers=admin
    ).get_json()
    verbal = client.post(
        f"/api/courses/{course_id}/subjects", json={"name": "Verbal", "price": 250.5}, headers=admin
    ).get_json()
    assert (quant["price"], verbal["price"]) == ("300.00", "250.50")
    bundle = client.post(
        "/api/bundles",
        json={
            "slug": "cat-all",
            "title": "CAT all",
            "course_id": course_id,
            "price": "499.99",
            "subject_ids": [quant["id"], verbal["id"]],
        },
        headers=admin,
    )
    assert bundle.status_code == 201
    assert bundle.get_json()["saving"] == "50.51"
    bundle_id = bundle.get_json()["id"]

    patched = client.patch(f"/api/subjects/{quant['id']}", json={"price": "310.00"}, headers=admin)
    assert patched.get_json()["price"] == "310.00"
    renamed = client.patch(f"/api/courses/{course_id}", json={"title": "CAT 2027"}, headers=admin)
    assert renamed.get_json()["title"] == "CAT 2027"
    third = client.post(f"/api/courses/{course_id}/subjects", json={"name": "DILR", "price": "200"}, headers=admin)
    reset = client.put(
        f"/api/bundles/{bundle_id}/subjects",
        json={"subject_ids": [quant["id"], third.get_json()["id"]]},
        headers=admin,
    )
    assert [s["name"] for s in reset.get_json()["subjects"]] == ["Quant", "DILR"]
    assert (
        client.patch(f"/api/bundles/{bundle_id}", json={"price": "450"}, headers=admin).get_json()["price"] == "450.00"
    )

    in_bundle = client.delete(f"/api/subjects/{quant['id']}", headers=admin)
    assert in_bundle.status_code == 409
    assert "cat-all" in in_bundle.get_json()["detail"]
    assert client.delete(f"/api/bundles/{bundle_id}", headers=admin).status_code == 204
    assert client.delete(f"/api/subjects/{verbal['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/courses/{course_id}", headers=admin).status_code == 204
    assert client.get(f"/api/courses/{course_id}", headers=admin).status_code == 404
    assert db.session.execute(select(Subject).where(Subject.course_id == course_id)).first() is None


def test_management_is_refused_to_students_and_anonymous(client: FlaskClient) -> None:
    student = bearer(register(client)["access_token"])
    calls = [
        ("post", "/api/courses", {"slug": "x", "title": "X"}),
        ("patch", "/api/courses/1", {"title": "X"}),
        ("delete", "/api/courses/1", None),
        ("post", "/api/courses/1/subjects", {"name": "X", "price": "1"}),
        ("patch", "/api/subjects/1", {"price": "1"}),
        ("delete", "/api/subjects/1", None),
        ("post", "/api/bundles", {}),
        ("patch", "/api/bundles/1", {}),
        ("put", "/api/bundles/1/subjects", {"subject_ids": [1, 2]}),
        ("delete", "/api/bundles/1", None),
    ]
    for method, path, body in calls:
        assert getattr(client, method)(path, json=body, headers=student).status_code == 403, path
        assert getattr(client, method)(path, json=body).status_code == 401, path


def test_duplicates_are_409_with_the_field(client: FlaskClient, admin: dict[str, str], demo: None) -> None:
    taken_slug = client.post("/api/courses", json={"slug": "jee-main", "title": "Again"}, headers=admin)
    assert taken_slug.status_code == 409
    assert list(taken_slug.get_json()["errors"]) == ["slug"]
    jee = course_by_slug(client, "jee-main")
    taken_name = client.post(
        f"/api/courses/{jee['id']}/subjects", json={"name": "Physics", "price": "1"}, headers=admin
    )
    assert taken_name.status_code == 409
    assert list(taken_name.get_json()["errors"]) == ["name"]
    neet = course_by_slug(client, "neet-ug")
    same_name_elsewhere = client.post(
        f"/api/courses/{neet['id']}/subjects", json={"name": "Mathematics", "price": "1"}, headers=admin
    )
    assert same_name_elsewhere.status_code == 201
    bundle_slug = client.patch(
        f"/api/bundles/{neet['bundles'][0]['id']}", json={"slug": "jee-main-complete"}, headers=admin
    )
    assert bundle_slug.status_code == 409
    assert list(bundle_slug.get_json()["errors"]) == ["slug"]


@pytest.mark.parametrize(
    ("price", "message"),
    [("-5", "positive"), ("0", "positive"), ("10.999", "two decimal"), ("abc", "valid"), ("1e12", "at most")],
)
def test_bad_prices_are_422(client: FlaskClient, admin: dict[str, str], demo: None, price: str, message: str) -> None:
    jee = course_by_slug(client, "jee-main")
    response = client.post(f"/api/courses/{jee['id']}/subjects", json={"name": "New", "price": price}, headers=admin)
    assert response.status_code == 422
    assert message in response.get_json()["errors"]["price"][0]


def test_bad_bundles_are_422_with_the_field(client: FlaskClient, admin: dict[str, str], demo: None) -> None:
    jee = course_by_slug(client, "jee-main")
    neet = course_by_slug(client, "neet-ug")
    base = {"slug": "mixed", "title": "Mixed", "price": "100"}
    other_course = client.post(
        "/api/bundles",
        json={
            **base,
            "course_id": jee["id"],
            "subject_ids": [jee["subjects"][0]["id"], neet["subjects"][0]["id"]],
        },
        headers=admin,
    )
    assert other_course.status_code == 422
    assert str(neet["subjects"][0]["id"]) in other_course.get_json()["errors"]["subject_ids"][0]
    unknown_course = client.post(
        "/api/bundles", json={**base, "course_id": 999999, "subject_ids": [1, 2]}, headers=admin
    )
    assert unknown_course.status_code == 422
    assert list(unknown_course.get_json()["errors"]) == ["course_id"]
    unknown_subject = client.post(
        "/api/bundles",
        json={**base, "course_id": jee["id"], "subject_ids": [jee["subjects"][0]["id"], 999999]},
        headers=admin,
    )
    assert "999999" in unknown_subject.get_json()["errors"]["subject_ids"][0]
    repeated = client.post("/api/bundles", json={**base, "course_id": jee["id"], "subject_ids": [1, 1]}, headers=admin)
    assert list(repeated.get_json()["errors"]) == ["subject_ids"]
    assert (
        client.post("/api/courses/999999/subjects", json={"name": "X", "price": "1"}, headers=admin).status_code == 404
    )
    assert client.post("/api/courses", json={"slug": "Bad Slug!", "title": "X"}, headers=admin).status_code == 422


def test_page_size_over_the_maximum_is_422(client: FlaskClient) -> None:
    response = client.get("/api/courses?per_page=101")
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["per_page"]
    assert client.get("/api/bundles?page=0").status_code == 422


def test_inactive_items_are_hidden_from_the_public_only(client: FlaskClient, admin: dict[str, str], demo: None) -> None:
    jee = course_by_slug(client, "jee-main")
    physics = jee["subjects"][0]["id"]
    client.patch(f"/api/subjects/{physics}", json={"is_active": False}, headers=admin)
    client.patch(f"/api/bundles/{jee['bundles'][0]['id']}", json={"is_active": False}, headers=admin)
    public = client.get(f"/api/courses/{jee['id']}").get_json()
    assert physics not in [s["id"] for s in public["subjects"]]
    assert public["bundles"] == []
    assert client.get(f"/api/bundles/{jee['bundles'][0]['id']}").status_code == 404
    as_admin = client.get(f"/api/courses/{jee['id']}", headers=admin).get_json()
    assert physics in [s["id"] for s in as_admin["subjects"]]
    assert len(as_admin["bundles"]) == 1

    client.patch(f"/api/courses/{jee['id']}", json={"is_active": False}, headers=admin)
    assert client.get(f"/api/courses/{jee['id']}").status_code == 404
    assert "jee-main" not in [c["slug"] for c in client.get("/api/courses").get_json()["items"]]
    assert "jee-main" in [c["slug"] for c in client.get("/api/courses", headers=admin).get_json()["items"]]
    student = bearer(register(client)["access_token"])
    assert client.get(f"/api/courses/{jee['id']}", headers=student).status_code == 404


def test_a_bundle_holding_an_inactive_subject_is_hidden_from_the_public(
    client: FlaskClient, admin: dict[str, str], demo: None
) -> None:
    jee = course_by_slug(client, "jee-main")
    (bundle,) = jee["bundles"]
    physics = jee["subjects"][0]["id"]
    client.patch(f"/api/subjects/{physics}", json={"is_active": False}, headers=admin)

    assert client.get(f"/api/bundles/{bundle['id']}").status_code == 404
    assert bundle["id"] not in [b["id"] for b in client.get("/api/bundles?per_page=100").get_json()["items"]]
    assert client.get(f"/api/bundles?course_id={jee['id']}").get_json()["total"] == 0
    assert client.get(f"/api/courses/{jee['id']}").get_json()["bundles"] == []
    # Admins see it whole: the price against every subject it holds.
    as_admin = client.get(f"/api/bundles/{bundle['id']}", headers=admin).get_json()
    assert (len(as_admin["subjects"]), as_admin["subjects_total"], as_admin["saving"]) == (3, "1597.00", "298.00")

    client.patch(f"/api/subjects/{physics}", json={"is_active": True}, headers=admin)
    assert client.get(f"/api/bundles/{bundle['id']}").get_json() == bundle


def _add_subjects(course_id: int, count: int, prefix: str) -> None:
    rows = [
        {
            "course_id": course_id,
            "name": f"{prefix}{i}",
            "description": "",
            "price": Decimal("10.00"),
            "is_active": True,
        }
        for i in range(count)
    ]
    db.session.execute(insert(Subject), rows)
    db.session.commit()


def _add_course(slug: str) -> int:
    course = Course(slug=slug, title=slug.title(), description="", is_active=True)
    db.session.add(course)
    db.session.commit()
    return course.id


def _create_bundle(
    client: FlaskClient, admin: dict[str, str], slug: str, course_id: int, subject_ids: list[int]
) -> None:
    body = {"slug": slug, "title": slug.title(), "course_id": course_id, "price": "5", "subject_ids": subject_ids}
    assert client.post("/api/bundles", json=body, headers=admin).status_code == 201


def test_catalog_reads_make_a_fixed_number_of_queries(
    client: FlaskClient, admin: dict[str, str], query_counter: Any
) -> None:
    course_id = _add_course("small")
    _add_subjects(course_id, 3, "S")
    first_two = [s["id"] for s in client.get(f"/api/courses/{course_id}/subjects").get_json()][:2]
    _create_bundle(client, admin, "small-pair", course_id, first_two)
    with query_counter() as small_list:
        client.get("/api/courses")
    with query_counter() as small_detail:
        client.get(f"/api/courses/{course_id}")

    _add_subjects(course_id, 297, "More")
    for n in range(5):
        _add_subjects(_add_course(f"other-{n}"), 60, "S")
    subject_ids = [s["id"] for s in client.get(f"/api/courses/{course_id}/subjects").get_json()]
    for n in range(3):
        chosen = subject_ids[n * 20 : n * 20 + 20]
        _create_bundle(client, admin, f"big-{n}", course_id, chosen)
    with query_counter() as large_list:
        listed = client.get("/api/courses?per_page=100").get_json()
    with query_counter() as large_detail:
        detail = client.get(f"/api/courses/{course_id}").get_json()
    assert listed["total"] == 6
    assert len(detail["subjects"]) == 300
    assert len(detail["bundles"]) == 4
    assert small_list.count == large_list.count, large_list
    assert small_detail.count == large_detail.count, large_detail


# ---------------------------------------------------------------------------------------------
# Conditional reads: ETag from the catalog version, Cache-Control, 304 without the page


CATALOG_READS = ("/api/courses", "/api/courses/{course}", "/api/courses/{course}/subjects", "/api/bundles")


def test_catalog_reads_carry_an_etag_and_public_cache_control(client: FlaskClient, demo: None) -> None:
    course = course_by_slug(client, "jee-main")["id"]
    for path in CATALOG_READS:
        response = client.get(path.format(course=course))
        assert response.status_code == 200
        assert response.headers["ETag"].startswith('"catalog-')
        assert response.headers["Cache-Control"] == "public, max-age=30, stale-while-revalidate=60"
        assert "Authorization" in response.headers["Vary"]


def test_a_current_copy_is_a_304_without_building_the_page(
    client: FlaskClient, demo: None, query_counter: Callable[[], Any]
) -> None:
    first = client.get("/api/courses")
    with query_counter() as queries:
        again = client.get("/api/courses", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert queries.count == 0  # the worker remembers the catalog version for a second
    worker_cache.clear()
    with query_counter() as queries:
        assert client.get("/api/courses", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert queries.count == 1  # the catalog version, nothing else
    stale = client.get("/api/courses", headers={"If-None-Match": '"catalog-0"'})
    assert stale.status_code == 200
    assert stale.get_json() == first.get_json()


def test_every_catalog_change_gives_a_new_etag(client: FlaskClient, admin: dict[str, str], demo: None) -> None:
    jee = course_by_slug(client, "jee-main")
    subject, bundle = jee["subjects"][0]["id"], jee["bundles"][0]["id"]
    changes = [
        ("post", "/api/courses", {"slug": "new-course", "title": "New"}),
        ("patch", f"/api/subjects/{subject}", {"price": "123.00"}),
        ("put", f"/api/bundles/{bundle}/subjects", {"subject_ids": [s["id"] for s in jee["subjects"][:2]]}),
        ("patch", f"/api/courses/{jee['id']}", {"title": "JEE Main 2027"}),
        ("delete", f"/api/bundles/{bundle}", None),
    ]
    etag = client.get("/api/courses").headers["ETag"]
    for method, path, body in changes:
        response = getattr(client, method)(path, json=body, headers=admin)
        assert response.status_code < 300, response.get_json()
        fresh = client.get("/api/courses", headers={"If-None-Match": etag})
        assert fresh.status_code == 200, f"{method} {path} kept the ETag"
        assert fresh.headers["ETag"] != etag
        etag = fresh.headers["ETag"]
    assert client.get("/api/courses", headers={"If-None-Match": etag}).status_code == 304


def test_admins_get_their_own_etag_and_no_shared_caching(
    client: FlaskClient, admin: dict[str, str], demo: None
) -> None:
    public = client.get("/api/courses")
    as_admin = client.get("/api/courses", headers=admin)
    assert as_admin.headers["ETag"] != public.headers["ETag"]
    assert as_admin.headers["Cache-Control"] == "private, no-cache"
    # The public copy is no answer to an admin, who sees inactive items too.
    assert client.get("/api/courses", headers={**admin, "If-None-Match": public.headers["ETag"]}).status_code == 200


def test_errors_are_not_made_cacheable(client: FlaskClient) -> None:
    response = client.get("/api/courses/999999")
    assert response.status_code == 404
    assert "ETag" not in response.headers
    assert "public" not in response.headers.get("Cache-Control", "")


def test_the_shared_cache_serves_the_version_and_forgets_it_on_change(
    app: Flask, admin: dict[str, str], demo: None, query_counter: Callable[[], Any]
) -> None:
    """With CACHE_REDIS_URL, a 304 needs no database at all, and a change shows at once."""
    cached_app = create_app(
        app_config(
            app.config["SQLALCHEMY_DATABASE_URI"],
            **{
                **cache_settings(REDIS_URL),
                "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}:",
                "CACHE_DEFAULT_TIMEOUT": 60,
            },
            CATALOG_VERSION_WORKER_SECONDS=0,
        )
        | {"CACHE_DEFAULT_TIMEOUT": 60}
    )
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError as exc:
        if mariadb_required():
            raise
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    cached_app.test_client_class = CheckedClient
    client = cached_app.test_client()
    with cached_app.app_context():
        etag = client.get("/api/courses").headers["ETag"]
        with query_counter() as queries:
            assert client.get("/api/courses", headers={"If-None-Match": etag}).status_code == 304
        assert queries.count == 0
        jee = course_by_slug(client, "jee-main")
        assert client.patch(f"/api/courses/{jee['id']}", json={"title": "Renamed"}, headers=admin).status_code == 200
        assert client.get("/api/courses", headers={"If-None-Match": etag}).status_code == 200
        db.session.remove()
        db.engine.dispose()


@pytest.mark.race
def test_every_worker_gives_the_new_etag_within_the_version_memory(mariadb: Flask, live_server: LiveServer) -> None:
    """gunicorn, 4 workers: each remembers the catalog version for CATALOG_VERSION_WORKER_SECONDS
    (1 s); past that, no worker answers 304 to a copy a catalog change replaced."""
    DemoDataService.seed()
    admin = bearer(create_admin())
    course = mariadb.test_client().get("/api/courses").get_json()["items"][0]["id"]
    old = fire_concurrently(16, lambda _: requests.get(live_server.url("/api/courses"), timeout=30))
    etag = old[0].headers["ETag"]
    assert {r.headers["ETag"] for r in old} == {etag}
    renamed = requests.patch(
        live_server.url(f"/api/courses/{course}"), json={"title": "Renamed"}, headers=admin, timeout=30
    )
    assert renamed.status_code == 200
    time.sleep(1.2)
    fresh = fire_concurrently(
        16, lambda _: requests.get(live_server.url("/api/courses"), headers={"If-None-Match": etag}, timeout=30)
    )
    assert {r.status_code for r in fresh} == {200}
    assert len({r.headers["ETag"] for r in fresh}) == 1
    assert fresh[0].headers["ETag"] != etag
    assert all("Renamed" in [c["title"] for c in r.json()["items"]] for r in fresh)
