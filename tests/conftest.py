"""Fixtures: every test that uses `app`/`client` runs on SQLite and on MariaDB.

Each backend's schema is built once per session by the real migrations; each test
starts from empty tables (its rows are deleted afterwards), so tests never see each
other's data, and the gunicorn helper shares the MariaDB database with the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.engine import make_url

os.environ.setdefault("APP_ENV", "testing")

from app import create_app
from shared.extensions import db, limiter
from tests.support.accounts import bearer, create_admin, register
from tests.support.databases import (
    DatabaseUnderTest,
    galera_urls,
    mariadb_required,
    mariadb_url,
    recreate_mariadb_database,
)
from tests.support.live_server import LiveServer, ServerGroup, start_gunicorn
from tests.support.queries import count_queries
from tests.support.tcp_proxy import TcpProxy

SPA_ORIGIN = "http://localhost:5173"  # the Vite dev server's; tests/test_browser.py serves a page there
TEST_JWT_SECRET = "test-only-secret-that-is-long-enough-for-hs256-signing"
BACKENDS = ["sqlite", "mariadb"]
_mariadb_version: dict[str, str] = {}


def pytest_report_header(config: pytest.Config) -> list[str]:
    header = [f"databases: sqlite (temporary file) and MariaDB at {mariadb_url()}"]
    if galera_urls():
        header.append(f"race servers: one per Galera node at {', '.join(galera_urls())}")
    return header


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "version" in _mariadb_version:
        terminalreporter.write_line(f"MariaDB server used by this run: {_mariadb_version['version']}")


def app_config(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        # Tests register hundreds of accounts from one address; the limit has its own tests.
        "RATELIMIT_REGISTER_PER_CLIENT": "100000 per hour",
        "CORS_ORIGINS": SPA_ORIGIN,
        **extra,
    }


def server_env(database_url: str, **extra: Any) -> dict[str, str]:
    """`app_config(database_url, **extra)` as the environment of a server process (strings only)."""
    return {name: str(value) for name, value in app_config(database_url, **extra).items()}


def migrate_to_head(url: str) -> Flask:
    flask_app = create_app(app_config(url))
    with flask_app.app_context():
        upgrade()
    return flask_app


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> DatabaseUnderTest:
    path = tmp_path_factory.mktemp("sqlite") / "exam_shop_test.sqlite3"
    return DatabaseUnderTest("sqlite", f"sqlite:///{path}")


@pytest.fixture(scope="session")
def mariadb_database() -> DatabaseUnderTest:
    url = mariadb_url()
    try:
        _mariadb_version["version"] = recreate_mariadb_database(url)
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no MariaDB"
        message = f"MariaDB is not reachable at {url}: {exc}"
        if mariadb_required():
            pytest.fail(message + " (REQUIRE_MARIADB/CI is set: a missing MariaDB is a failure)")
        pytest.skip(message)
    return DatabaseUnderTest("mariadb", url)


@pytest.fixture(scope="session")
def sqlite_app(sqlite_database: DatabaseUnderTest) -> Flask:
    return migrate_to_head(sqlite_database.url)


@pytest.fixture(scope="session")
def mariadb_app(mariadb_database: DatabaseUnderTest) -> Flask:
    return migrate_to_head(mariadb_database.url)


# Rows the migrations create and the app needs, as it needs its tables.
KEPT_TABLES = {"catalog_version"}


def delete_all_rows(flask_app: Flask) -> None:
    with flask_app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                if table.name not in KEPT_TABLES:
                    connection.execute(table.delete())


DUPLICATE_CARDS = text(
    "SELECT purchase_id, subject_id, test_number, COUNT(*) FROM mock_test_attempts "
    "GROUP BY purchase_id, subject_id, test_number HAVING COUNT(*) > 1"
)


def _app_for_test(flask_app: Flask) -> Iterator[Flask]:
    with flask_app.app_context():
        yield flask_app
        db.session.remove()
        # Whatever a test did, no test card may exist twice.
        assert db.session.execute(DUPLICATE_CARDS).all() == []
        db.session.remove()
    delete_all_rows(flask_app)
    limiter.reset()


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The app on each backend in turn, with empty tables."""
    yield from _app_for_test(request.getfixturevalue(f"{request.param}_app"))


@pytest.fixture
def mariadb(mariadb_app: Flask) -> Iterator[Flask]:
    """The app on MariaDB only (for tests against gunicorn), with empty tables."""
    yield from _app_for_test(mariadb_app)


# What must never appear in a response: SQL, driver and framework internals, hashes.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "SELECT",
    "INSERT INTO",
    "UPDATE ",
    "pymysql",
    "sqlalchemy",
    "sqlite3",
    "IntegrityError",
    "OperationalError",
    "Duplicate entry",
    "$argon2",
    "password_hash",
)


def assert_no_leaks(response: Any) -> None:
    text = response.get_data(as_text=True)
    leaked = [marker for marker in LEAK_MARKERS if marker in text]
    assert not leaked, f"response to {response.request.path} leaks {leaked}: {text[:500]}"


class CheckedClient(FlaskClient):
    """A test client that fails any test whose responses leak internals, or that gets a 201
    without the created resource's `Location`.

    Each request runs on a fresh database session, as it would in a server, instead of
    the test's own session (whose identity map would hide queries).
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        db.session.remove()
        response = super().open(*args, **kwargs)
        db.session.remove()
        if response.request.path != "/api/openapi.json":
            assert_no_leaks(response)
        if response.status_code == 201:
            assert response.headers.get("Location"), f"a 201 from {response.request.path} without Location"
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = CheckedClient
    return app.test_client()


@pytest.fixture
def student(client: FlaskClient) -> dict[str, str]:
    """The headers of a newly registered student (through whichever `client` the test uses)."""
    return bearer(register(client)["access_token"])


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    """The headers of a new admin."""
    return bearer(create_admin())


@pytest.fixture
def backend(app: Flask) -> str:
    return "mariadb" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("mysql") else "sqlite"


@pytest.fixture
def query_counter(app: Flask) -> Callable[[], Any]:
    """`with query_counter() as queries: ...; assert queries.count == n`."""

    def counter() -> Any:
        return count_queries(db.engine)

    return counter


@pytest.fixture
def immediate_fulfilment(request: pytest.FixtureRequest) -> Iterator[None]:
    """PAYMENT_PROVIDER=none for this test's app: purchases are fulfilled at once, as before
    payments existed (the tests of the purchase itself; payments have their own)."""
    apps = [request.getfixturevalue(name) for name in ("app", "mariadb") if name in request.fixturenames]
    saved = [(flask_app, flask_app.config["PAYMENT_PROVIDER"]) for flask_app in apps]
    for flask_app in apps:
        flask_app.config["PAYMENT_PROVIDER"] = "none"
    yield
    for flask_app, provider in saved:
        flask_app.config["PAYMENT_PROVIDER"] = provider


GALERA_LOCK_ATTEMPTS = 10  # as README "Running on several machines" says to set


def start_race_server(mariadb_app: Flask, log_dir: Path, **extra: Any) -> LiveServer:
    """gunicorn with 4 workers on the MariaDB test database; under `make test-galera`
    (TEST_GALERA_URLS) one gunicorn with 2 workers per Galera node instead, taking the
    requests in turn, so that the concurrent requests of one race reach different nodes."""
    urls = galera_urls()
    if not urls:
        env = server_env(mariadb_app.config["SQLALCHEMY_DATABASE_URI"], **extra)
        return start_gunicorn(env, log_dir / "gunicorn.log")
    servers: list[LiveServer] = []
    try:
        for node, url in enumerate(urls, start=1):
            env = server_env(url, DB_LOCK_ATTEMPTS=GALERA_LOCK_ATTEMPTS, **extra)
            servers.append(start_gunicorn(env, log_dir / f"gunicorn-node{node}.log", workers=2))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return ServerGroup(servers)


@pytest.fixture(scope="session")
def live_server(mariadb_app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """gunicorn on the MariaDB test database (`start_race_server`), fulfilling purchases at
    once (PAYMENT_PROVIDER=none: the races of purchases themselves)."""
    server = start_race_server(mariadb_app, tmp_path_factory.mktemp("gunicorn"), PAYMENT_PROVIDER="none")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox_server(mariadb_app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """gunicorn on the MariaDB test database (`start_race_server`), taking payments in the sandbox."""
    server = start_race_server(mariadb_app, tmp_path_factory.mktemp("gunicorn-sandbox"), PAYMENT_PROVIDER="sandbox")
    yield server
    server.stop()


@pytest.fixture
def proxy(mariadb: Flask) -> Iterator[TcpProxy]:
    """A TcpProxy in front of the MariaDB test database, to cut or stall a server's connections."""
    url = make_url(mariadb.config["SQLALCHEMY_DATABASE_URI"])
    tcp_proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    yield tcp_proxy
    tcp_proxy.close()
