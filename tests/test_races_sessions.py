"""Sessions and login limits on gunicorn (4 workers) on MariaDB with real concurrent clients:
a logout or a logout-all holds on every worker at once, and logins keep working, never a 500,
while the rate-limit store (Redis, behind a TcpProxy) is down or hung, and share their
counts through it again once it is back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask

from tests.conftest import server_env
from tests.support.accounts import PASSWORD, bearer, login, register
from tests.support.live_server import LiveServer, fire_concurrently, start_gunicorn
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.race
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
WRONG = "wrong-password-1"


def statuses(responses: list[requests.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


def call(server: LiveServer, path: str, token: str) -> requests.Response:
    """GET /api/auth/me with an access token, POST /api/auth/refresh with a refresh token."""
    if path == "/api/auth/refresh":
        return requests.post(server.url(path), headers=bearer(token), timeout=30)
    return requests.get(server.url(path), headers=bearer(token), timeout=30)


# --------------------------------------------------------------------------- sessions


def test_a_logout_with_the_access_token_ends_the_refresh_token_on_every_worker(
    mariadb: Flask, live_server: LiveServer
) -> None:
    tokens = register(mariadb.test_client())
    calls = [("/api/auth/me", tokens["access_token"]), ("/api/auth/refresh", tokens["refresh_token"])] * 8

    def send(index: int) -> requests.Response:
        return call(live_server, *calls[index])

    assert statuses(fire_concurrently(len(calls), send)) == [200] * len(calls)
    logout = requests.post(live_server.url("/api/auth/logout"), headers=bearer(tokens["access_token"]), timeout=30)
    assert logout.status_code == 204
    refused = fire_concurrently(len(calls), send)
    assert statuses(refused) == [401] * len(calls), live_server.log_tail()
    assert all("revoked" in r.json()["detail"] for r in refused)


def test_logout_all_ends_every_session_on_every_worker(mariadb: Flask, live_server: LiveServer) -> None:
    client = mariadb.test_client()
    first = register(client)
    sessions = [first, login(client, first["user"]["email"]), login(client, first["user"]["email"])]
    stranger = register(client)
    calls = [
        (path, session[kind])
        for session in sessions
        for path, kind in (("/api/auth/me", "access_token"), ("/api/auth/refresh", "refresh_token"))
    ] * 3
    strangers = [("/api/auth/me", stranger["access_token"]), ("/api/auth/refresh", stranger["refresh_token"])] * 2

    def send(index: int) -> requests.Response:
        return call(live_server, *(calls + strangers)[index])

    everyone = len(calls) + len(strangers)
    assert statuses(fire_concurrently(everyone, send)) == [200] * everyone
    ended = requests.post(
        live_server.url("/api/auth/logout-all"), headers=bearer(sessions[1]["refresh_token"]), timeout=30
    )
    assert ended.status_code == 204
    after = fire_concurrently(everyone, send)
    assert [r.status_code for r in after[: len(calls)]] == [401] * len(calls), live_server.log_tail()
    assert [r.status_code for r in after[len(calls) :]] == [200] * len(strangers)


# --------------------------------------------------------------------------- Redis away

PER_CLIENT = 6  # login attempts per client and minute on the test server
# A login is an argon2 verification (tens of ms) plus, with Redis hung, at most one storage
# timeout (RATELIMIT_STORAGE_TIMEOUT_MS, 250 ms); the rest is slack for a loaded 2-core machine.
QUICK_SECONDS = 2.0


@pytest.fixture
def redis_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    yield proxy
    proxy.close()


@pytest.fixture
def limited_server(mariadb: Flask, redis_proxy: TcpProxy, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """gunicorn (4 workers) counting rate limits in the real Redis through the proxy, under a
    key prefix of its own; its keys are deleted afterwards."""
    prefix = f"exam-shop-test-{uuid.uuid4().hex}"
    env = server_env(
        mariadb.config["SQLALCHEMY_DATABASE_URI"],
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{redis_proxy.port}/0",
        RATELIMIT_KEY_PREFIX=prefix,
        RATELIMIT_LOGIN_PER_CLIENT=f"{PER_CLIENT} per minute",
        TRUSTED_PROXY_COUNT=1,
    )
    server = start_gunicorn(env, tmp_path / "gunicorn.log")
    yield server, prefix
    server.stop()
    store = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(store.scan_iter(match=f"*{prefix}*"))
    if keys:
        store.delete(*keys)


def redis_keys(prefix: str) -> int:
    return sum(1 for _ in redis.Redis(host=REDIS_HOST, port=REDIS_PORT).scan_iter(match=f"*{prefix}*"))


def timed_login(server: LiveServer, address: str, email: str, password: str) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.post(
        server.url("/api/auth/login"),
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=60,
    )
    seconds = time.monotonic() - started
    if response.status_code >= 400:
        assert response.headers["Content-Type"] == "application/problem+json"
    return response.status_code, seconds


def shared_limit_holds(server: LiveServer) -> bool:
    """PER_CLIENT + 3 concurrent attempts of one new client across the workers: exactly
    PER_CLIENT get through when every worker counts in the shared store (in a worker's
    memory, up to 4 x PER_CLIENT would)."""
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"

    def send(index: int) -> tuple[int, float]:
        return timed_login(server, address, f"nobody{index}@example.com", WRONG)

    codes = [code for code, _ in fire_concurrently(PER_CLIENT + 3, send)]
    assert set(codes) <= {401, 429}, codes
    return codes.count(401) == PER_CLIENT


def assert_shared_limits_hold_within(server: LiveServer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not shared_limit_holds(server):
        assert time.monotonic() < deadline, f"the workers do not share the store's counts:\n{server.log_tail()}"
        time.sleep(1)


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_logins_work_while_the_rate_limit_store_is_away_and_share_limits_again_after(
    mariadb: Flask, redis_proxy: TcpProxy, limited_server: tuple[LiveServer, str], fault: str
) -> None:
    server, prefix = limited_server
    email = register(mariadb.test_client())["user"]["email"]
    assert_shared_limits_hold_within(server, 20)
    assert redis_keys(prefix) > 0

    getattr(redis_proxy, fault)()
    timings: list[float] = []
    for n in range(12):
        code, seconds = timed_login(server, f"198.51.100.{n}", email, PASSWORD if n % 2 else WRONG)
        assert code == (200 if n % 2 else 401), server.log_tail()
        timings.append(seconds)
    assert max(timings) < QUICK_SECONDS, timings
    # Sessions live in the database: a logout needs no Redis, and holds at once.
    tokens = requests.post(
        server.url("/api/auth/login"),
        json={"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.200"},
        timeout=60,
    ).json()
    assert (
        requests.post(server.url("/api/auth/logout"), headers=bearer(tokens["access_token"]), timeout=60).status_code
        == 204
    )
    assert (
        requests.get(server.url("/api/auth/me"), headers=bearer(tokens["access_token"]), timeout=60).status_code == 401
    )
    # The limits still hold, counted in each worker's memory: of one client's failures against
    # one account, at most 5 per worker get through.
    codes = [timed_login(server, "203.0.113.99", email, WRONG)[0] for _ in range(4 * 5 + 4)]
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) <= 4 * 5, codes

    redis_proxy.restore()
    keys_before = redis_keys(prefix)
    assert_shared_limits_hold_within(server, 75)  # a worker retries the store after 1, 2, 4 ... 32 s
    assert redis_keys(prefix) > keys_before


def test_a_login_is_answered_when_the_rate_limit_store_hangs_from_the_start(
    mariadb: Flask, redis_proxy: TcpProxy, limited_server: tuple[LiveServer, str]
) -> None:
    server, _ = limited_server
    email = register(mariadb.test_client())["user"]["email"]
    redis_proxy.stall()

    def send(index: int) -> tuple[int, float]:
        return timed_login(server, f"192.0.2.{index}", email, PASSWORD)

    answers: list[Any] = fire_concurrently(8, send)
    assert [code for code, _ in answers] == [200] * 8, server.log_tail()
    assert max(seconds for _, seconds in answers) < QUICK_SECONDS * 2, answers  # 8 argon2 checks on 2 cores
