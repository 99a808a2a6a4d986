"""Concurrent starts and submits of one test card through gunicorn (4 workers) on MariaDB."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, text, update

from shared.extensions import db
from shared.models import MockTestAttempt, Paper, QuestionVersion
from shared.models.base import utcnow
from shared.services.cards import MockTestService
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.mock_tests import add_questions, card_id, correct_options
from tests.support.purchases import student_with

pytestmark = pytest.mark.race


def test_concurrent_starts_and_submits_score_a_card_once(mariadb: Flask, live_server: LiveServer) -> None:
    client = mariadb.test_client()
    course = make_course(subjects=1)
    subject = course.subject_ids[0]
    add_questions(subject, 12)
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)

    def start(_: int) -> requests.Response:
        return requests.post(live_server.url(f"/api/mock-tests/{card}/start"), headers=student, timeout=60)

    starts = fire_concurrently(12, start)
    assert [r.status_code for r in starts] == [200] * 12, live_server.log_tail()
    papers = {tuple(q["id"] for q in r.json()["questions"]) for r in starts}
    assert len(papers) == 1
    started_at = {r.json()["card"]["started_at"] for r in starts}
    assert len(started_at) == 1

    key = correct_options()
    answers = {str(q): key[q] for q in next(iter(papers))}
    db.session.remove()  # end this read transaction: read what the server commits next (REPEATABLE READ)

    def submit(_: int) -> requests.Response:
        return requests.post(
            live_server.url(f"/api/mock-tests/{card}/submit"), json={"answers": answers}, headers=student, timeout=60
        )

    submits = fire_concurrently(12, submit)
    assert Counter(r.status_code for r in submits) == {200: 1, 409: 11}, live_server.log_tail()
    winner = next(r.json() for r in submits if r.status_code == 200)
    assert (winner["status"], winner["score"]) == ("completed", "100.00")
    stored = db.session.execute(select(MockTestAttempt).where(MockTestAttempt.id == card)).scalar_one()
    assert stored.submitted_at.isoformat() == winner["submitted_at"].replace("+00:00", "")
    assert stored.correct_count == 10


def test_taking_a_test_does_not_lock_its_subject(mariadb: Flask) -> None:
    """While another transaction holds the subject's row (an admin editing it), students
    still start, answer and submit their tests of that subject."""
    client = mariadb.test_client()
    course = make_course(subjects=1)
    subject = course.subject_ids[0]
    add_questions(subject, 10)
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    db.session.remove()

    editor = db.engine.connect()
    transaction = editor.begin()
    editor.execute(text("SELECT id FROM subjects WHERE id = :id FOR UPDATE"), {"id": subject})
    answers: list[int | str] = []

    def take_test() -> None:
        try:
            with mariadb.app_context():  # this thread's own context, hence its own session
                own_client = mariadb.test_client()
                answers.append(own_client.post(f"/api/mock-tests/{card}/start", headers=student).status_code)
                answers.append(own_client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student).status_code)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            answers.append(repr(exc))

    worker = threading.Thread(target=take_test)
    worker.start()
    worker.join(timeout=20)  # the lock wait timeout is 50 s: a blocked start would still be waiting
    still_waiting = worker.is_alive()
    transaction.rollback()
    editor.close()
    worker.join()
    assert not still_waiting, "starting a test waited for the subject's row lock"
    assert answers == [200, 200]


def test_first_starts_of_one_paper_by_many_students_compose_it_once(mariadb: Flask, live_server: LiveServer) -> None:
    client = mariadb.test_client()
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 12)
    students = [student_with(client, [subject]) for _ in range(10)]
    cards = [card_id(client, student, subject, 3) for student in students]
    db.session.remove()

    def start(n: int) -> requests.Response:
        return requests.post(live_server.url(f"/api/mock-tests/{cards[n]}/start"), headers=students[n], timeout=60)

    starts = fire_concurrently(10, start)
    assert [r.status_code for r in starts] == [200] * 10, live_server.log_tail()
    assert len({r.json()["paper"]["id"] for r in starts}) == 1
    assert len({tuple(q["id"] for q in r.json()["questions"]) for r in starts}) == 1
    papers = db.session.execute(select(Paper.version).where(Paper.subject_id == subject)).scalars().all()
    assert papers == [1]
    versions = db.session.execute(select(func.count()).select_from(QuestionVersion)).scalar_one()
    assert versions == 10


def test_concurrent_saves_to_one_card_never_lose_an_answer(mariadb: Flask, live_server: LiveServer) -> None:
    client = mariadb.test_client()
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 12)
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    questions = [q["id"] for q in client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["questions"]]
    key = correct_options()
    db.session.remove()

    def save(n: int) -> requests.Response:
        body = {"answers": {str(questions[n]): key[questions[n]]}}
        return requests.put(live_server.url(f"/api/mock-tests/{card}/answers"), json=body, headers=student, timeout=60)

    saves = fire_concurrently(10, save)
    assert [r.status_code for r in saves] == [200] * 10, live_server.log_tail()
    final = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["answers"]
    assert final == {str(q): key[q] for q in questions}


def test_an_overdue_card_read_submitted_and_finalised_at_once_is_scored_once(
    mariadb: Flask, live_server: LiveServer
) -> None:
    client = mariadb.test_client()
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 12)
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    key = correct_options()
    right = {str(q["id"]): key[q["id"]] for q in paper["questions"][:3]}
    client.put(f"/api/mock-tests/{card}/answers", json={"answers": right}, headers=student)
    past = utcnow() - timedelta(seconds=mariadb.config["MOCK_TEST_GRACE_SECONDS"] + 60)
    db.session.execute(update(MockTestAttempt).where(MockTestAttempt.id == card).values(deadline_at=past))
    db.session.commit()
    db.session.remove()
    finalised: list[int] = []

    def finalise() -> None:
        with mariadb.app_context():
            finalised.append(MockTestService.finalize_overdue())

    def call(n: int) -> requests.Response:
        if n == 0:
            finalise()
            return requests.get(live_server.url(f"/api/mock-tests/{card}"), headers=student, timeout=60)
        if n % 3 == 1:
            return requests.post(
                live_server.url(f"/api/mock-tests/{card}/submit"), json={}, headers=student, timeout=60
            )
        path = f"/api/mock-tests/{card}" if n % 3 == 2 else "/api/mock-tests?status=expired"
        return requests.get(live_server.url(path), headers=student, timeout=60)

    responses = fire_concurrently(12, call)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}, live_server.log_tail()
    submits = [r for n, r in enumerate(responses) if n % 3 == 1]
    assert sum(r.status_code == 200 for r in submits) <= 1
    assert finalised[0] in (0, 1)
    stored = db.session.execute(select(MockTestAttempt).where(MockTestAttempt.id == card)).scalar_one()
    assert (stored.status.value, stored.correct_count, stored.wrong_count, str(stored.score)) == (
        "expired",
        3,
        0,
        "30.00",
    )
    for response in responses:
        body = response.json()
        if response.status_code == 200 and "submitted_at" in body:
            assert body["submitted_at"].replace("+00:00", "") == stored.submitted_at.isoformat()
