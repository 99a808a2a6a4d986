"""The response caches of gunicorn's 4 workers on MariaDB: a write is seen by every worker at once."""

from __future__ import annotations

import pytest
import requests
from flask import Flask

from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.mock_tests import add_questions, card_id
from tests.support.purchases import student_with

pytestmark = pytest.mark.race
READS = 48  # enough for every worker to cache its own copy


def read_cards(live_server: LiveServer, headers: dict[str, str]) -> list[requests.Response]:
    return fire_concurrently(
        READS, lambda _: requests.get(live_server.url("/api/mock-tests"), headers=headers, timeout=60)
    )


def student_with_cards(mariadb: Flask) -> tuple[dict[str, str], int]:
    client = mariadb.test_client()
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 5)
    student = student_with(client, [subject])
    return student, card_id(client, student, subject, 1)


def test_a_logout_is_refused_by_every_worker_at_once(mariadb: Flask, live_server: LiveServer) -> None:
    student, _ = student_with_cards(mariadb)
    assert {r.status_code for r in read_cards(live_server, student)} == {200}, live_server.log_tail()
    cached = read_cards(live_server, student)
    assert {r.status_code for r in cached} == {200}
    assert any(r.headers.get("X-Cache") == "hit" for r in cached)  # the workers answer from memory
    logout = requests.post(live_server.url("/api/auth/logout"), headers=student, timeout=60)
    assert logout.status_code == 204
    after = read_cards(live_server, student)
    assert {r.status_code for r in after} == {401}
    assert {r.json()["detail"] for r in after} == {"The token has been revoked. Log in again."}


def test_a_started_test_is_listed_by_every_worker_at_once(mariadb: Flask, live_server: LiveServer) -> None:
    student, card = student_with_cards(mariadb)
    read_cards(live_server, student)
    cached = read_cards(live_server, student)
    assert {r.status_code for r in cached} == {200}
    assert any(r.headers.get("X-Cache") == "hit" for r in cached)
    started = requests.post(live_server.url(f"/api/mock-tests/{card}/start"), headers=student, timeout=60)
    assert started.status_code == 200
    for response in read_cards(live_server, student):
        first = next(c for c in response.json()["items"] if c["id"] == card)
        assert first["status"] == "in_progress"
