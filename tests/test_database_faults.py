"""Database outages through a TCP proxy: 503 problem+json, no hang, recovery without restart,
and nothing half-written when a purchase is cut off mid-transaction. gunicorn on MariaDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy.engine import make_url

from shared.config import TimeLimits
from shared.constraint_check import check_database
from shared.extensions import db
from shared.models import MockTestAttempt, Purchase
from tests.conftest import server_env
from tests.support.accounts import bearer, register
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, start_gunicorn
from tests.support.queries import count_rows
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.race
LIMITS = TimeLimits(worker_timeout=30, connect_timeout=2, read_timeout=4, statement_timeout=3, pool_timeout=2)
# The longest a request may take while the database is away (a pre-ping timing out on a
# pooled connection, a reconnect, the handshake or statement timing out), plus slack.
WORST_CASE_SECONDS = LIMITS.database_worst_case + 2


@pytest.fixture
def server(mariadb: Flask, proxy: TcpProxy, tmp_path: Path) -> Iterator[LiveServer]:
    url = make_url(mariadb.config["SQLALCHEMY_DATABASE_URI"]).set(host="127.0.0.1", port=proxy.port)
    env = server_env(
        url.render_as_string(hide_password=False),
        DB_CONNECT_TIMEOUT=LIMITS.connect_timeout,
        DB_READ_TIMEOUT=LIMITS.read_timeout,
        DB_STATEMENT_TIMEOUT=LIMITS.statement_timeout,
        DB_POOL_TIMEOUT=LIMITS.pool_timeout,
        RETRY_AFTER_SECONDS=3,
        PAYMENT_PROVIDER="none",  # the purchase's own transaction, fulfilled at once
    )
    live = start_gunicorn(env, tmp_path / "gunicorn.log", workers=2)
    yield live
    live.stop()


def timed_get(server: LiveServer, path: str, **kwargs: object) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.get(server.url(path), timeout=60, **kwargs)
    return response, time.monotonic() - started


def assert_unavailable(response: requests.Response, seconds: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "3"
    assert response.json()["status"] == 503
    assert "pymysql" not in response.text
    assert "127.0.0.1" not in response.text
    assert seconds < WORST_CASE_SECONDS, f"took {seconds:.1f}s"


def wait_until_ready(server: LiveServer, deadline_seconds: float = 20) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if requests.get(server.url("/health/ready"), timeout=30).status_code == 200:
            return
        time.sleep(0.3)
    raise AssertionError("the server did not recover")


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_an_outage_is_a_503_and_the_same_server_recovers(
    mariadb: Flask, proxy: TcpProxy, server: LiveServer, fault: str
) -> None:
    student = bearer(register(mariadb.test_client())["access_token"])
    assert requests.get(server.url("/api/courses"), timeout=30).status_code == 200
    assert requests.get(server.url("/api/auth/me"), headers=student, timeout=30).status_code == 200
    pid = server.process.pid

    getattr(proxy, fault)()
    for path, headers in [("/health/ready", {}), ("/api/courses", {}), ("/api/auth/me", student)]:
        response, seconds = timed_get(server, path, headers=headers)
        assert_unavailable(response, seconds)
    login = requests.post(server.url("/api/auth/login"), json={"email": "a@b.io", "password": "x1"}, timeout=60)
    assert login.status_code == 503
    assert requests.get(server.url("/health"), timeout=10).status_code == 200  # alive, just not ready

    proxy.restore()
    wait_until_ready(server)
    assert requests.get(server.url("/api/courses"), timeout=30).status_code == 200
    assert requests.get(server.url("/api/auth/me"), headers=student, timeout=30).status_code == 200
    assert server.process.pid == pid
    assert server.process.poll() is None


def test_a_purchase_cut_off_mid_transaction_leaves_nothing_half_written(
    mariadb: Flask, proxy: TcpProxy, server: LiveServer
) -> None:
    course = make_course(subjects=3)
    student = bearer(register(mariadb.test_client())["access_token"])
    body = {"purchase_type": "bundle", "bundle_id": course.bundle_id}

    proxy.cut_when(b"INSERT INTO mock_test_attempts")
    cut_off = requests.post(server.url("/api/purchases"), json=body, headers=student, timeout=60)
    assert cut_off.status_code == 503, cut_off.text
    db.session.remove()
    assert count_rows(Purchase) == 0
    assert count_rows(MockTestAttempt) == 0

    proxy.restore()
    wait_until_ready(server)
    retried = requests.post(server.url("/api/purchases"), json=body, headers=student, timeout=60)
    assert retried.status_code == 201
    assert retried.json()["cards_created"] == 150
    report = check_database(mariadb.config["SQLALCHEMY_DATABASE_URI"])
    assert {check.name: check.ok for check in report.checks}["card sets"]
