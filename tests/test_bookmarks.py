"""Bookmarks: questions of the caller's submitted papers, with their solutions (SQLite and MariaDB)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from shared.extensions import db
from shared.models import Bookmark
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.mock_tests import add_questions, correct_options
from tests.support.purchases import student_with
from tests.support.queries import count_rows


@pytest.fixture
def subject(app: Flask) -> int:
    subject_id = make_course(subjects=1).subject_ids[0]
    add_questions(subject_id, 12)
    return subject_id


def started(client: FlaskClient, headers: dict[str, str], subject: int, number: int = 1) -> tuple[int, list[int]]:
    cards = client.get(f"/api/mock-tests?subject_id={subject}&per_page=100", headers=headers).get_json()["items"]
    card = next(c["id"] for c in cards if c["test_number"] == number)
    sheet = client.post(f"/api/mock-tests/{card}/start", headers=headers).get_json()
    return card, [q["id"] for q in sheet["questions"]]


def test_a_question_is_bookmarked_once_with_its_solution(client: FlaskClient, subject: int) -> None:
    student = student_with(client, [subject])
    card, questions = started(client, student, subject)
    question = questions[0]
    # Before the submission nothing is shown: the same 404 as for a question never seen.
    early = client.put(f"/api/bookmarks/{question}", headers=student)
    assert early.status_code == 404
    assert "Because" not in early.get_data(as_text=True)
    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)

    created = client.put(f"/api/bookmarks/{question}", headers=student)
    assert created.status_code == 201
    assert created.headers["Location"].endswith(f"/api/bookmarks/{question}")
    body = created.get_json()
    key = correct_options()[question]
    assert (body["id"], body["position"], body["type"], body["correct_option"], body["correct_options"]) == (
        question,
        1,
        "single",
        key,
        [key],
    )
    assert body["explanation"].startswith("Because")
    again = client.put(f"/api/bookmarks/{question}", headers=student)
    assert (again.status_code, again.get_json()) == (200, body)
    assert client.get(created.headers["Location"], headers=student).get_json() == body
    listed = client.get("/api/bookmarks", headers=student).get_json()
    assert (listed["total"], listed["items"]) == (1, [body])

    assert client.delete(f"/api/bookmarks/{question}", headers=student).status_code == 204
    assert client.delete(f"/api/bookmarks/{question}", headers=student).status_code == 404
    assert client.get(f"/api/bookmarks/{question}", headers=student).status_code == 404
    assert client.get("/api/bookmarks", headers=student).get_json()["total"] == 0


def test_only_questions_of_the_callers_submitted_papers(
    client: FlaskClient, admin: dict[str, str], subject: int
) -> None:
    student = student_with(client, [subject])
    card, questions = started(client, student, subject)
    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)
    unseen = next(q for q in correct_options() if q not in questions)
    assert client.put(f"/api/bookmarks/{unseen}", headers=student).status_code == 404
    assert client.put("/api/bookmarks/999999", headers=student).status_code == 404

    other = student_with(client, [subject])
    started(client, other, subject)  # the same paper, started but not submitted
    assert client.put(f"/api/bookmarks/{questions[0]}", headers=other).status_code == 404
    assert client.put(f"/api/bookmarks/{questions[0]}", headers=student).status_code == 201
    assert client.get(f"/api/bookmarks/{questions[0]}", headers=other).status_code == 404
    assert client.get("/api/bookmarks", headers=other).get_json()["total"] == 0
    assert client.delete(f"/api/bookmarks/{questions[0]}", headers=other).status_code == 404
    # Admins have no customer profile: bookmarks are a customer's.
    assert client.put(f"/api/bookmarks/{questions[0]}", headers=admin).status_code == 403
    assert client.get("/api/bookmarks", headers=admin).status_code == 403


def test_a_bookmark_keeps_the_version_the_student_saw(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    student = student_with(client, [subject])
    card, questions = started(client, student, subject)
    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)
    question = questions[2]
    seen = client.put(f"/api/bookmarks/{question}", headers=student).get_json()
    edit = {"text": "Rewritten", "correct_option": (seen["correct_option"] + 1) % 4, "explanation": "New"}
    assert client.patch(f"/api/subjects/{subject}/questions/{question}", json=edit, headers=admin).status_code == 200
    assert client.get(f"/api/bookmarks/{question}", headers=student).get_json() == seen
    assert seen["text"].startswith("Question")


def test_bookmarks_are_paginated_in_a_fixed_number_of_statements(
    client: FlaskClient, subject: int, query_counter: Callable[[], Any]
) -> None:
    student = student_with(client, [subject])
    card, questions = started(client, student, subject)
    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)

    def listing(per_page: int) -> tuple[dict[str, Any], int]:
        with query_counter() as queries:
            response = client.get(f"/api/bookmarks?per_page={per_page}", headers=student)
        assert response.status_code == 200
        return response.get_json(), queries.count

    for question in questions[:2]:
        client.put(f"/api/bookmarks/{question}", headers=student)
    _, few = listing(20)
    for question in questions[2:7]:
        client.put(f"/api/bookmarks/{question}", headers=student)
    page, many = listing(20)
    assert (page["total"], few) == (7, many)
    first = listing(3)[0]
    assert (first["pages"], [b["id"] for b in first["items"]]) == (3, sorted(questions[:7])[:3])
    assert client.get("/api/bookmarks?per_page=101", headers=student).status_code == 422


@pytest.mark.race
def test_concurrent_puts_of_one_bookmark_make_one(mariadb: Flask, live_server: LiveServer) -> None:
    client = mariadb.test_client()
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 12)
    student = student_with(client, [subject])
    card, questions = started(client, student, subject)
    assert client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student).status_code == 200
    db.session.remove()

    def put(_: int) -> requests.Response:
        return requests.put(live_server.url(f"/api/bookmarks/{questions[0]}"), headers=student, timeout=60)

    answers = fire_concurrently(12, put)
    assert Counter(r.status_code for r in answers) == {201: 1, 200: 11}, live_server.log_tail()
    assert len({str(r.json()) for r in answers}) == 1
    assert count_rows(Bookmark) == 1
