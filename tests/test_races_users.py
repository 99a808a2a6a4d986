"""Deactivating accounts on gunicorn (4 workers) on MariaDB with real concurrent clients: once
the PATCH has answered, no request of the account succeeds on any worker; admins deactivating
each other at the same instant never leave the shop without an active admin."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from flask import Flask
from sqlalchemy import select, update

from shared.extensions import db
from shared.models import Role, User
from tests.support.accounts import PASSWORD, bearer, create_admin, login, register
from tests.support.live_server import LiveServer, fire_concurrently

pytestmark = pytest.mark.race
CLIENTS = 8


def test_once_the_deactivation_has_answered_no_request_of_the_user_succeeds(
    mariadb: Flask, live_server: LiveServer
) -> None:
    client = mariadb.test_client()
    first = register(client)
    second = login(client, first["user"]["email"])
    admin = bearer(create_admin())
    # Access tokens on /me and refresh tokens on /refresh, of two sessions, on every worker.
    calls = [
        (method, path, session[kind])
        for session in (first, second)
        for method, path, kind in (
            ("GET", "/api/auth/me", "access_token"),
            ("POST", "/api/auth/refresh", "refresh_token"),
        )
    ]
    answered = threading.Event()
    stop = threading.Event()
    outcomes: list[tuple[bool, int]] = []  # (sent after the PATCH had answered, status)
    lock = threading.Lock()

    def hammer(index: int) -> None:
        method, path, token = calls[index % len(calls)]
        while not stop.is_set():  # a connection per request: the workers take turns
            after = answered.is_set()
            status = requests.request(method, live_server.url(path), headers=bearer(token), timeout=30).status_code
            with lock:
                outcomes.append((after, status))

    def counted(after: bool) -> int:
        with lock:
            return sum(1 for sent_after, _ in outcomes if sent_after == after)

    def wait_for(after: bool, count: int) -> None:
        deadline = time.monotonic() + 120
        while counted(after) < count:
            assert time.monotonic() < deadline, live_server.log_tail()
            time.sleep(0.05)

    threads = [threading.Thread(target=hammer, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(after=False, count=4 * CLIENTS)
        patch = requests.patch(
            live_server.url(f"/api/users/{first['user']['id']}"), json={"is_active": False}, headers=admin, timeout=30
        )
        answered.set()
        assert patch.status_code == 200, patch.text
        wait_for(after=True, count=6 * CLIENTS)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    before = [status for after, status in outcomes if not after]
    after = [status for sent_after, status in outcomes if sent_after]
    assert set(before) <= {200, 401}
    assert 200 in before
    assert set(after) == {401}, live_server.log_tail()
    refused = requests.post(
        live_server.url("/api/auth/login"), json={"email": first["user"]["email"], "password": PASSWORD}, timeout=30
    )
    assert refused.status_code == 401


def _only_these_admins_active(*admins: User) -> None:
    db.session.execute(
        update(User).where(User.role == Role.ADMIN, User.id.not_in([a.id for a in admins])).values(is_active=False)
    )
    db.session.commit()


def _active_admins() -> set[int]:
    db.session.remove()
    return set(db.session.execute(select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True))).scalars())


@pytest.mark.parametrize("admins", [2, 3])
def test_admins_deactivating_each_other_at_once_never_leave_no_active_admin(
    mariadb: Flask, live_server: LiveServer, admins: int
) -> None:
    """Each admin deactivates the next one (2: each other; 3: a ring), all at the same instant."""
    for _ in range(4):
        ring = [create_admin() for _ in range(admins)]
        _only_these_admins_active(*ring)
        headers = [bearer(admin) for admin in ring]

        def send(index: int, ring: list[User] = ring, headers: list[dict[str, str]] = headers) -> int:
            target = ring[(index + 1) % len(ring)]
            return requests.patch(
                live_server.url(f"/api/users/{target.id}"),
                json={"is_active": False},
                headers=headers[index],
                timeout=30,
            ).status_code

        statuses = fire_concurrently(admins, send)
        assert set(statuses) <= {200, 401}, (statuses, live_server.log_tail())
        active = _active_admins()
        assert active, f"no active admin left: {statuses}"
        # A request is refused only because its admin was deactivated first; each 200 deactivated its target.
        for index, status in enumerate(statuses):
            assert (ring[(index + 1) % len(ring)] if status == 200 else ring[index]).id not in active
        assert statuses.count(200) == admins - len(active)
