"""Duplicate purchases racing through gunicorn (4 workers) on MariaDB."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from shared.extensions import db
from shared.models import IdempotencyKey, MockTestAttempt, Purchase, PurchaseItem, Subject
from tests.conftest import server_env
from tests.support.accounts import bearer, create_admin, register
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently, start_gunicorn
from tests.support.queries import count_rows

pytestmark = pytest.mark.race


def purchase(live_server: LiveServer, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    return requests.post(live_server.url("/api/purchases"), json=body, headers=headers, timeout=60)


@pytest.fixture
def student(mariadb: Flask) -> dict[str, str]:
    return bearer(register(mariadb.test_client())["access_token"])


def test_thirty_identical_purchases_make_one(mariadb: Flask, live_server: LiveServer, student: dict[str, str]) -> None:
    course = make_course(subjects=1)
    body = {"purchase_type": "single_subject", "subject_id": course.subject_ids[0], "course_id": course.id}
    responses = fire_concurrently(30, lambda _: purchase(live_server, body, student))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 29}, live_server.log_tail()
    winner = next(r.json() for r in responses if r.status_code == 201)
    for response in responses:
        if response.status_code == 200:
            assert response.json()["status"] == "already_owned"
            assert [p["id"] for p in response.json()["purchases"]] == [winner["purchase"]["id"]]
    assert count_rows(Purchase) == 1
    assert count_rows(PurchaseItem) == 1
    assert count_rows(MockTestAttempt) == 50


def test_thirty_bundle_purchases_make_one_set_of_cards(
    mariadb: Flask, live_server: LiveServer, student: dict[str, str]
) -> None:
    course = make_course(subjects=5)
    body = {"purchase_type": "bundle", "bundle_id": course.bundle_id}
    responses = fire_concurrently(30, lambda _: purchase(live_server, body, student))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 29}, live_server.log_tail()
    assert count_rows(Purchase) == 1
    assert count_rows(MockTestAttempt) == 250


def test_overlapping_purchases_never_buy_a_subject_twice(
    mariadb: Flask, live_server: LiveServer, student: dict[str, str]
) -> None:
    course = make_course(subjects=3)
    first, second, third = course.subject_ids
    bodies = [
        {"purchase_type": "multiple_subjects", "subject_ids": [first, second]},
        {"purchase_type": "multiple_subjects", "subject_ids": [second, third]},
    ]
    responses = fire_concurrently(20, lambda index: purchase(live_server, bodies[index % 2], student))
    assert all(r.status_code in {200, 201, 409} for r in responses), live_server.log_tail()
    assert sum(r.status_code == 201 for r in responses) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["owned_subject_ids"] == [second]
    owned = db.session.execute(select(PurchaseItem.subject_id)).scalars().all()
    assert sorted(owned) in ([first, second], [second, third])
    assert count_rows(MockTestAttempt) == 100


def test_thirty_retries_with_one_idempotency_key(
    mariadb: Flask, live_server: LiveServer, student: dict[str, str]
) -> None:
    course = make_course(subjects=2)
    body = {"purchase_type": "bundle", "bundle_id": course.bundle_id}
    headers = {**student, "Idempotency-Key": "checkout-7f3a"}
    responses = fire_concurrently(30, lambda _: purchase(live_server, body, headers))
    assert {r.status_code for r in responses} <= {201, 409}, live_server.log_tail()
    created = [r for r in responses if r.status_code == 201]
    assert created, "at least the first request succeeds"
    first_purchase = created[0].json()["purchase"]
    for response in created:
        assert response.json()["purchase"] == first_purchase
    for response in responses:
        if response.status_code == 409:
            assert response.json()["type"] == "urn:exam-shop:problem:idempotency-key-in-flight"
    assert sum("Idempotent-Replayed" not in r.headers for r in created) == 1
    assert count_rows(Purchase) == 1
    assert count_rows(MockTestAttempt) == 100
    late = purchase(live_server, body, headers)
    assert late.status_code == 201
    assert late.headers["Idempotent-Replayed"] == "true"
    assert late.json()["purchase"] == first_purchase


def test_admin_sees_each_purchase_once(mariadb: Flask, live_server: LiveServer, student: dict[str, str]) -> None:
    course = make_course(subjects=1)
    body = {"purchase_type": "single_subject", "subject_id": course.subject_ids[0]}
    fire_concurrently(10, lambda _: purchase(live_server, body, student))
    admin = bearer(create_admin())
    listed = requests.get(live_server.url("/api/purchases"), headers=admin, timeout=30).json()
    assert listed["total"] == 1
    assert listed["items"][0]["cards_total"] == 50


def worker_pids(server: LiveServer) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def test_a_key_whose_worker_was_killed_is_taken_over_after_the_claim_timeout(
    mariadb: Flask, student: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL the worker while its purchase waits on a row lock, after it claimed its key:
    a retry is told when to come back (Retry-After), then buys exactly once."""
    claim_timeout = 6
    env = server_env(
        mariadb.config["SQLALCHEMY_DATABASE_URI"],
        IDEMPOTENCY_CLAIM_TIMEOUT=claim_timeout,
        DB_STATEMENT_TIMEOUT=0,
        PAYMENT_PROVIDER="none",  # like `live_server`: the purchase itself, fulfilled at once
    )
    server = start_gunicorn(env, tmp_path / "gunicorn.log", workers=2)
    course = make_course(subjects=1)
    db.session.commit()
    headers = {**student, "Idempotency-Key": "killed-worker"}
    body = {"purchase_type": "single_subject", "subject_id": course.subject_ids[0]}
    db.session.remove()
    try:
        with db.engine.connect() as blocker:
            # The purchase's items check their subject (a foreign key): they wait on this lock,
            # after the key was claimed.
            blocker.execute(select(Subject.id).where(Subject.id == course.subject_ids[0]).with_for_update())
            first = ThreadPoolExecutor(1).submit(purchase, server, body, headers)
            deadline = time.monotonic() + 20
            while count_rows(IdempotencyKey) == 0:
                assert time.monotonic() < deadline, server.log_tail()
                db.session.remove()  # a fresh snapshot for the next look
                time.sleep(0.1)
            time.sleep(0.5)  # the claim is committed; the purchase is waiting on the lock
            for pid in worker_pids(server):
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(requests.ConnectionError):
                first.result(timeout=30)
            blocker.rollback()
        in_flight = purchase(server, body, headers)
        assert in_flight.status_code == 409, in_flight.text
        assert in_flight.json()["type"].endswith("idempotency-key-in-flight")
        retry_after = int(in_flight.headers["Retry-After"])
        assert 1 <= retry_after <= claim_timeout
        time.sleep(retry_after + 0.5)
        taken_over = purchase(server, body, headers)
        assert taken_over.status_code == 201, taken_over.text
        replay = purchase(server, body, headers)
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == taken_over.json()
        db.session.remove()
        assert (count_rows(Purchase), count_rows(MockTestAttempt)) == (1, 50)
    finally:
        server.stop()
