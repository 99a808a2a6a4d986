"""The response caches: repeated reads served without the database, and never stale."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from shared.cache import BEGIN, END, HEARTBEAT_SECONDS, Entries, Entry, response_cache
from shared.errors import ServiceUnavailable
from shared.extensions import db
from shared.models import User
from shared.services.demo import DemoDataService
from tests.conftest import REDIS_URL, CheckedClient, app_config, delete_all_rows, migrate_to_head
from tests.support.accounts import bearer, create_admin, register
from tests.support.catalog import make_course
from tests.support.databases import mariadb_required
from tests.support.mock_tests import add_questions, card_id
from tests.support.purchases import make_purchase, student_with
from tests.support.queries import count_queries


@pytest.fixture(scope="module")
def cached_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if mariadb_required():  # the same machines that must have MariaDB have Redis
            pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    url = f"sqlite:///{tmp_path_factory.mktemp('cache')}/cache.sqlite3"
    migrate_to_head(url)
    return create_app(app_config(url, CACHE_REDIS_URL=REDIS_URL, CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}:"))


@pytest.fixture
def client(cached_app: Flask) -> Iterator[FlaskClient]:
    cached_app.test_client_class = CheckedClient
    with cached_app.app_context():
        DemoDataService.seed()
        yield cached_app.test_client()
        db.session.remove()
    delete_all_rows(cached_app)


@pytest.fixture
def app_with_broken_redis(tmp_path: Path) -> Iterator[Flask]:
    """The app on an SQLite database of its own, its response cache on a Redis that never answers."""
    url = f"sqlite:///{tmp_path}/broken-redis.sqlite3"
    migrate_to_head(url)
    broken = create_app(app_config(url, CACHE_REDIS_URL="redis://127.0.0.1:9/0"))
    broken.test_client_class = CheckedClient
    with broken.app_context():
        yield broken
        db.session.remove()


def course_id(client: FlaskClient, slug: str) -> int:
    return next(c["id"] for c in client.get("/api/courses").get_json()["items"] if c["slug"] == slug)


def test_a_repeated_public_read_does_not_touch_the_database(client: FlaskClient) -> None:
    first = client.get("/api/courses?per_page=10")
    with count_queries(db.engine) as queries:
        second = client.get("/api/courses?per_page=10")
    assert queries.count == 0, queries
    assert second.get_json() == first.get_json()
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    with count_queries(db.engine) as other_page:
        client.get("/api/courses?per_page=10&page=2")
    assert other_page.count > 0  # another query string is another entry


def test_a_catalog_change_is_visible_at_once(client: FlaskClient) -> None:
    admin = bearer(create_admin())
    jee = course_id(client, "jee-main")
    assert client.get(f"/api/courses/{jee}").get_json()["title"] == "JEE Main"
    client.patch(f"/api/courses/{jee}", json={"title": "JEE Main 2027"}, headers=admin)
    assert client.get(f"/api/courses/{jee}").get_json()["title"] == "JEE Main 2027"
    subject = client.get(f"/api/courses/{jee}").get_json()["subjects"][0]
    client.patch(f"/api/subjects/{subject['id']}", json={"price": "549.00"}, headers=admin)
    listed = next(c for c in client.get("/api/courses").get_json()["items"] if c["id"] == jee)
    assert listed["max_price"] == "599.00"
    assert listed["min_price"] == "499.00"
    assert client.get(f"/api/courses/{jee}").get_json()["subjects"][0]["price"] == "549.00"
    client.patch(f"/api/courses/{jee}", json={"is_active": False}, headers=admin)
    assert client.get(f"/api/courses/{jee}").status_code == 404
    assert jee not in [c["id"] for c in client.get("/api/courses").get_json()["items"]]


def test_requests_with_a_token_are_never_cached(client: FlaskClient) -> None:
    admin = bearer(create_admin())
    jee = course_id(client, "jee-main")
    client.get(f"/api/courses/{jee}", headers=admin)
    with count_queries(db.engine) as queries:
        as_admin: Any = client.get(f"/api/courses/{jee}", headers=admin)
    assert queries.count > 0
    assert as_admin.status_code == 200


def test_without_redis_the_catalog_is_served_uncached(app_with_broken_redis: Flask) -> None:
    DemoDataService.seed()
    client = app_with_broken_redis.test_client()
    assert client.get("/api/courses").status_code == 200
    admin = bearer(create_admin())
    jee = course_id(client, "jee-main")
    assert client.patch(f"/api/courses/{jee}", json={"title": "Renamed"}, headers=admin).status_code == 200
    assert client.get(f"/api/courses/{jee}").get_json()["title"] == "Renamed"


def kill_subscriptions(name: str) -> None:
    server = redis.Redis.from_url(REDIS_URL)
    for connection in server.client_list(_type="pubsub"):
        if connection["name"] == name:
            server.client_kill_filter(_id=connection["id"])


def test_a_callers_repeated_read_is_served_without_the_database(client: FlaskClient, student: dict[str, str]) -> None:
    course = make_course(subjects=2)
    make_purchase(client, student, [course.subject_ids[0]])
    first = client.get("/api/mock-tests?per_page=5", headers=student)
    progress = client.get("/api/mock-tests/progress", headers=student)
    with count_queries(db.engine) as queries:
        second = client.get("/api/mock-tests?per_page=5", headers=student)
        progress_again = client.get("/api/mock-tests/progress", headers=student)
    assert queries.count == 0, queries
    assert second.status_code == 200
    assert second.get_json() == first.get_json()
    assert progress_again.get_json() == progress.get_json()
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    with count_queries(db.engine) as other_page:
        assert client.get("/api/mock-tests?per_page=5&page=2", headers=student).status_code == 200
    assert other_page.count > 0


def test_a_logout_refuses_the_token_at_once(client: FlaskClient, student: dict[str, str]) -> None:
    make_purchase(client, student, [make_course(subjects=1).subject_ids[0]])
    assert client.get("/api/mock-tests", headers=student).status_code == 200
    cached = client.get("/api/mock-tests", headers=student)
    assert cached.status_code == 200
    assert cached.headers["X-Cache"] == "hit"
    assert client.post("/api/auth/logout", headers=student).status_code == 204
    refused = client.get("/api/mock-tests", headers=student)
    assert refused.status_code == 401
    assert refused.get_json()["detail"] == "The token has been revoked. Log in again."


def test_a_callers_changes_show_at_once(client: FlaskClient, student: dict[str, str]) -> None:
    course = make_course(subjects=2)
    make_purchase(client, student, [course.subject_ids[0]])
    add_questions(course.subject_ids[0], 5)
    assert client.get("/api/mock-tests", headers=student).get_json()["total"] == 50
    assert client.get("/api/mock-tests", headers=student).headers["X-Cache"] == "hit"
    card = card_id(client, student, course.subject_ids[0], 1)
    assert client.post(f"/api/mock-tests/{card}/start", headers=student).status_code == 200
    listed = client.get(f"/api/mock-tests?subject_id={course.subject_ids[0]}", headers=student).get_json()
    assert next(c for c in listed["items"] if c["id"] == card)["status"] == "in_progress"
    make_purchase(client, student, [course.subject_ids[1]])
    assert client.get("/api/mock-tests", headers=student).get_json()["total"] == 100
    admin = bearer(create_admin())
    renamed = client.patch(f"/api/subjects/{course.subject_ids[0]}", json={"name": "Renamed"}, headers=admin)
    assert renamed.status_code == 200
    names = {c["subject_name"] for c in client.get("/api/mock-tests?per_page=100", headers=student).get_json()["items"]}
    assert "Renamed" in names


def test_an_entry_is_only_served_to_the_token_that_earned_it(client: FlaskClient) -> None:
    first = register(client)
    make_purchase(client, bearer(first["access_token"]), [make_course(subjects=1).subject_ids[0]])
    client.get("/api/mock-tests", headers=bearer(first["access_token"]))
    other = bearer(register(client)["access_token"])
    assert client.get("/api/mock-tests", headers=bearer(first["access_token"])).get_json()["total"] == 50
    assert client.get("/api/mock-tests", headers=other).get_json()["total"] == 0
    tampered = first["access_token"][:-2] + ("AA" if not first["access_token"].endswith("AA") else "BB")
    assert client.get("/api/mock-tests", headers=bearer(tampered)).status_code == 401


def test_a_lost_subscription_drops_every_entry(client: FlaskClient, student: dict[str, str]) -> None:
    make_purchase(client, student, [make_course(subjects=1).subject_ids[0]])
    client.get("/api/mock-tests", headers=student)
    client.get("/api/courses")
    cache = response_cache()
    assert cache is not None
    assert len(cache.entries) == 2
    kill_subscriptions(cache.channel)  # what a Redis restart does
    with count_queries(db.engine) as while_away:
        assert client.get("/api/mock-tests", headers=student).status_code == 200
    assert while_away.count > 0
    assert len(cache.entries) == 0
    time.sleep(HEARTBEAT_SECONDS + 0.1)  # the worker subscribes again, and caches again
    with count_queries(db.engine) as resubscribed:
        assert client.get("/api/mock-tests", headers=student).status_code == 200
    assert resubscribed.count > 0
    with count_queries(db.engine) as cached_again:
        assert client.get("/api/mock-tests", headers=student).status_code == 200
    assert cached_again.count == 0, cached_again
    assert len(cache.entries) == 1


def test_the_entries_are_bounded_in_bytes_and_indexed_by_topic() -> None:
    entries = Entries(max_bytes=30)
    for n in range(5):
        entries.put(n, Entry(200, [], b"x" * 10, frozenset({f"user:{n % 2}"}), expires_at=100.0))
    assert len(entries) == 3
    assert entries.size == 30
    assert entries.get(1, now=1.0) is None  # the least recently used went first
    assert entries.get(4, now=1.0) is not None
    entries.drop(["user:0"])
    assert [n for n in range(5) if entries.get(n, now=1.0)] == [3]
    assert entries.get(3, now=100.0) is None  # expired
    assert entries.size == 0


def test_a_logout_that_cannot_be_announced_is_refused(app_with_broken_redis: Flask) -> None:
    client = app_with_broken_redis.test_client()
    student = bearer(register(client)["access_token"])
    refused = client.post("/api/auth/logout", headers=student)
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "Retry-After" in refused.headers
    assert client.get("/api/auth/me", headers=student).status_code == 200  # nothing was half-done
    user = db.session.execute(select(User)).scalar_one()
    user.full_name = "Renamed"  # not about access: committed, and logged
    db.session.commit()
    user.is_active = False
    with pytest.raises(ServiceUnavailable):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(User, user.id).is_active


def test_clear_cache_makes_every_worker_forget(client: FlaskClient, cached_app: Flask) -> None:
    client.get("/api/courses")
    with count_queries(db.engine) as cached:
        client.get("/api/courses")
    assert cached.count == 0
    result = cached_app.test_cli_runner().invoke(args=["clear-cache"])
    assert result.exit_code == 0, result.output
    with count_queries(db.engine) as after:
        assert client.get("/api/courses").status_code == 200
    assert after.count > 0


def test_a_logout_on_another_worker_reaches_this_one(cached_app: Flask, client: FlaskClient) -> None:
    other_worker = create_app(dict(cached_app.config))  # same database, same channel, own memory
    other_worker.test_client_class = CheckedClient
    student = student_with(client, [make_course(subjects=1).subject_ids[0]])
    client.get("/api/mock-tests", headers=student)
    assert client.get("/api/mock-tests", headers=student).headers.get("X-Cache") == "hit"
    with other_worker.app_context():
        assert other_worker.test_client().post("/api/auth/logout", headers=student).status_code == 204
    assert client.get("/api/mock-tests", headers=student).status_code == 401


def answer(body: bytes = b"{}") -> Response:
    return Response(body, mimetype="application/json")


def test_an_answer_built_while_its_data_changed_is_not_kept(client: FlaskClient) -> None:
    cache = response_cache()
    assert cache is not None
    writer = redis.Redis.from_url(REDIS_URL)
    topics = frozenset({"customer:7"})
    _, mark = cache.lookup("k")
    writer.publish(cache.channel, f"{END} w0 customer:7")  # committed by another worker meanwhile
    writer.ping()
    cache.store("k", mark, answer(), topics, 60)
    assert cache.lookup("k")[0] is None
    _, mark = cache.lookup("k")
    cache.store("k", mark, answer(), topics, 60)
    assert cache.lookup("k")[0] is not None


def test_nothing_is_kept_while_a_write_is_under_way(client: FlaskClient) -> None:
    cache = response_cache()
    assert cache is not None
    writer = redis.Redis.from_url(REDIS_URL)
    writer.publish(cache.channel, f"{BEGIN} w1 customer:8 user:8")
    writer.ping()
    _, mark = cache.lookup("k")  # after BEGIN: the database may not show the change yet
    cache.store("k", mark, answer(), frozenset({"customer:8"}), 60)
    assert cache.lookup("k")[0] is None
    writer.publish(cache.channel, f"{END} w1 customer:8 user:8")
    writer.ping()
    _, mark = cache.lookup("k")
    cache.store("k", mark, answer(), frozenset({"customer:8"}), 60)
    assert cache.lookup("k")[0] is not None
