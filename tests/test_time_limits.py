"""Time limits that agree: gunicorn with the shipped gunicorn.conf.py and the default
database timeouts answers a stalled database with 503s well inside the worker timeout,
kills no worker, and is not starved by slow clients. On MariaDB."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.extensions import db
from tests.conftest import server_env
from tests.support.accounts import bearer, register
from tests.support.live_server import LiveServer, fire_concurrently, start_gunicorn
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.race

# The documented defaults (README "Time limits"), not read from the code under test.
WORKER_TIMEOUT = 30
DB_READ_TIMEOUT = 5
DB_STATEMENT_TIMEOUT = 4
TIME_TO_503 = 15  # the database worst case: DB_POOL_TIMEOUT + 2 x DB_READ_TIMEOUT + DB_CONNECT_TIMEOUT
SLACK = 3  # a loaded 2-core machine
WORKERS, THREADS = 4, 8


def worker_pids(server: LiveServer) -> set[int]:
    """The pids of the gunicorn master's children."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid:
            pids.add(int(stat.parent.name))
    return pids


def assert_no_worker_killed(server: LiveServer, pids_before: set[int]) -> None:
    log = server.log_path.read_text(errors="replace")
    assert "WORKER TIMEOUT" not in log, server.log_tail()
    assert "SIGKILL" not in log, server.log_tail()
    assert worker_pids(server) == pids_before, server.log_tail()


@pytest.fixture
def server_behind_proxy(mariadb: Flask, proxy: TcpProxy, tmp_path: Path) -> Iterator[LiveServer]:
    """The shipped settings and the default time limits: only the database address changes."""
    url = make_url(mariadb.config["SQLALCHEMY_DATABASE_URI"]).set(host="127.0.0.1", port=proxy.port)
    live = start_gunicorn(server_env(url.render_as_string(hide_password=False)), tmp_path / "gunicorn.log")
    yield live
    live.stop()


def timed_get(server: LiveServer, path: str, headers: dict[str, str] | None = None) -> tuple[int | str, float, str]:
    """(status or the connection error, seconds, Content-Type and Retry-After)."""
    started = time.monotonic()
    try:
        response = requests.get(server.url(path), headers=headers, timeout=WORKER_TIMEOUT + 30)
    except requests.RequestException as exc:
        return type(exc).__name__, time.monotonic() - started, ""
    described = f"{response.headers.get('Content-Type')} Retry-After={response.headers.get('Retry-After')}"
    return response.status_code, time.monotonic() - started, described


PROBLEM_503 = "application/problem+json Retry-After=5"


def test_a_stalled_database_is_a_503_well_inside_the_worker_timeout(
    mariadb: Flask, proxy: TcpProxy, server_behind_proxy: LiveServer
) -> None:
    server = server_behind_proxy
    student = bearer(register(mariadb.test_client())["access_token"])
    # Every worker gets pooled connections: the slowest case is a pooled one going silent.
    warm = fire_concurrently(2 * WORKERS * THREADS, lambda i: timed_get(server, "/api/courses")[0])
    assert set(warm) == {200}
    pids = worker_pids(server)
    assert len(pids) == WORKERS

    proxy.stall()
    status, seconds, described = timed_get(server, "/api/auth/me", student)
    assert (status, described) == (503, PROBLEM_503)
    assert seconds < TIME_TO_503 + SLACK, f"{seconds:.1f}s"

    # More requests than threads: those queued behind a busy thread get their 503 too.
    paths = ["/api/courses", "/health/ready", "/api/auth/me"]
    answers = fire_concurrently(
        WORKERS * THREADS + 8,
        lambda i: timed_get(server, paths[i % 3], student if paths[i % 3] == "/api/auth/me" else None),
    )
    assert {(status, described) for status, _, described in answers} == {(503, PROBLEM_503)}, answers
    slowest = max(seconds for _, seconds, _ in answers)
    assert slowest < WORKER_TIMEOUT - 5, f"the slowest 503 took {slowest:.1f}s"
    assert requests.get(server.url("/health"), timeout=TIME_TO_503).status_code == 200
    assert_no_worker_killed(server, pids)

    proxy.restore()
    deadline = time.monotonic() + 20
    while requests.get(server.url("/health/ready"), timeout=WORKER_TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.3)
    assert requests.get(server.url("/api/auth/me"), headers=student, timeout=10).status_code == 200
    assert_no_worker_killed(server, pids)


class SlowClient(threading.Thread):
    """Sends a request one byte a second until told to stop."""

    def __init__(self, port: int, request: bytes) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.request = request
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for byte in self.request:
                if self.done.wait(1.0):
                    return
                self.sock.sendall(bytes([byte]))
                self.sent += 1
        except OSError:
            return

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)
        self.sock.close()


@pytest.fixture
def server(mariadb: Flask, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_gunicorn(server_env(mariadb.config["SQLALCHEMY_DATABASE_URI"]), tmp_path / "gunicorn.log")
    yield live
    live.stop()


def test_slow_clients_do_not_starve_the_server(mariadb: Flask, server: LiveServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    trickled_headers = b"GET /api/courses HTTP/1.1\r\nHost: shop\r\nUser-Agent: " + b"s" * 60 + b"\r\n\r\n"
    trickled_body = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
        b'Content-Length: 60\r\n\r\n{"email": "slow@example.com", "password": "' + b"p" * 40
    )
    clients = [SlowClient(port, trickled_headers if i % 2 else trickled_body) for i in range(WORKERS + 2)]
    pids = worker_pids(server)
    for client in clients:
        client.start()
    try:
        time.sleep(2)  # every slow client has begun its request and holds what serves it
        for _ in range(4):
            for path in ("/health", "/api/courses"):
                status, seconds = timed_get_promptly(server, path)
                assert status == 200, f"{path} answered {status} after {seconds:.1f}s while slow clients trickled"
                assert seconds < 2, f"{path} took {seconds:.1f}s"
            time.sleep(1)
        assert all(client.is_alive() and client.sent > 4 for client in clients), "a slow client was cut off early"
    finally:
        for client in clients:
            client.stop()
    assert_no_worker_killed(server, pids)


def timed_get_promptly(server: LiveServer, path: str) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        status: int | str = requests.get(server.url(path), timeout=5).status_code
    except requests.RequestException as exc:
        status = type(exc).__name__
    return status, time.monotonic() - started


def test_mariadb_aborts_a_statement_that_outlasts_the_statement_timeout(mariadb: Flask) -> None:
    """A statement waiting on a lock is aborted by the server after DB_STATEMENT_TIMEOUT:
    a 503 with Retry-After, before the socket's read timeout would give up on it."""
    client = mariadb.test_client()
    account = register(client)
    db.session.remove()
    holder = db.engine.connect()
    transaction = holder.begin()
    holder.execute(
        text("SELECT id FROM users WHERE id = :id FOR UPDATE"),
        {"id": account["user"]["id"]},
    )
    try:
        started = time.monotonic()
        response = client.patch(
            "/api/customers/me", json={"full_name": "Blocked Writer"}, headers=bearer(account["access_token"])
        )
        seconds = time.monotonic() - started
    finally:
        transaction.rollback()
        holder.close()
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["detail"] == "The database is too busy to answer in time. Please retry shortly."
    assert DB_STATEMENT_TIMEOUT - 0.5 < seconds < DB_READ_TIMEOUT, f"{seconds:.1f}s"
