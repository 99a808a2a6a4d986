"""The shared cache of public catalog reads (Redis): served without the database, and never stale."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from shared.extensions import db
from shared.services.demo import DemoDataService
from tests.conftest import CheckedClient, app_config, delete_all_rows, migrate_to_head
from tests.support.accounts import bearer, create_admin
from tests.support.databases import mariadb_required
from tests.support.queries import count_queries

REDIS_URL = "redis://127.0.0.1:6379/15"


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


def test_without_redis_the_catalog_is_served_uncached(tmp_path_factory: pytest.TempPathFactory) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('nocache')}/nocache.sqlite3"
    migrate_to_head(url)
    broken = create_app(app_config(url, CACHE_REDIS_URL="redis://127.0.0.1:9/0"))
    with broken.app_context():
        DemoDataService.seed()
        client = broken.test_client()
        assert client.get("/api/courses").status_code == 200
        admin = bearer(create_admin())
        jee = course_id(client, "jee-main")
        assert client.patch(f"/api/courses/{jee}", json={"title": "Renamed"}, headers=admin).status_code == 200
        assert client.get(f"/api/courses/{jee}").get_json()["title"] == "Renamed"
