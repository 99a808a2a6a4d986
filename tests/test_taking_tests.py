"""Taking a test: answer details, and attempts nobody submits (SQLite and MariaDB)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from shared.extensions import db
from shared.models import AttemptAnswer, MockTestAttempt
from tests.support.catalog import make_course
from tests.support.mock_tests import add_questions, card_id, correct_options
from tests.support.purchases import student_with


@pytest.fixture
def subject(app: Flask) -> int:
    subject_id = make_course(subjects=1).subject_ids[0]
    add_questions(subject_id, 12)
    return subject_id


def move_start(card: int, seconds: int) -> None:
    """Pretend the card started (and its deadline falls) `seconds` earlier."""
    shift = timedelta(seconds=seconds)
    stored = db.session.get(MockTestAttempt, card)
    db.session.execute(
        update(MockTestAttempt)
        .where(MockTestAttempt.id == card)
        .values(started_at=stored.started_at - shift, deadline_at=stored.deadline_at - shift)
    )
    db.session.commit()


def test_marks_for_review_and_time_spent_clamped_to_wall_time(client: FlaskClient, subject: int) -> None:
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    first, second = (str(q["id"]) for q in paper["questions"][:2])
    path = f"/api/mock-tests/{card}/answers"
    body = {first: {"answer": 1, "marked_for_review": True, "time_spent_seconds": 5000}, second: 2}
    saved = client.put(path, json={"answers": body}, headers=student).get_json()
    assert saved["answers"] == {first: 1, second: 2}
    assert saved["marked_for_review"] == [int(first)]
    assert saved["time_spent_seconds"].get(first, 0) <= 2  # the test started a moment ago

    move_start(card, 600)
    later = client.put(path, json={"answers": {first: {"time_spent_seconds": 5000}}}, headers=student).get_json()
    assert 599 <= later["time_spent_seconds"][first] <= 602
    unmarked = client.put(path, json={"answers": {first: {"marked_for_review": False}}}, headers=student).get_json()
    assert (unmarked["marked_for_review"], unmarked["answers"][first]) == ([], 1)
    bad = client.put(path, json={"answers": {first: {"time_spent_seconds": -1}}}, headers=student)
    assert bad.status_code == 422
    extra = client.put(path, json={"answers": {first: {"answer": 1, "note": "x"}}}, headers=student)
    assert extra.status_code == 422

    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)
    review = client.get(f"/api/mock-tests/{card}/review", headers=student).get_json()
    by_id = {str(q["id"]): q for q in review["questions"]}
    assert (by_id[first]["marked_for_review"], by_id[first]["time_spent_seconds"]) == (
        False,
        later["time_spent_seconds"][first],
    )


def overdue_card(client: FlaskClient, app: Flask, subject: int, number: int) -> tuple[dict[str, str], int]:
    """A started card with 3 right answers saved, now past its deadline and the grace."""
    student = student_with(client, [subject])
    card = card_id(client, student, subject, number)
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    key = correct_options()
    right = {str(q["id"]): key[q["id"]] for q in paper["questions"][:3]}
    client.put(f"/api/mock-tests/{card}/answers", json={"answers": right}, headers=student)
    move_start(card, 30 * 60 + app.config["MOCK_TEST_GRACE_SECONDS"] + 5)
    return student, card


def test_finalize_overdue_scores_what_was_saved_in_time(client: FlaskClient, app: Flask, subject: int) -> None:
    _, late = overdue_card(client, app, subject, 1)
    student = student_with(client, [subject])
    running = card_id(client, student, subject, 2)
    client.post(f"/api/mock-tests/{running}/start", headers=student)

    result = app.test_cli_runner().invoke(args=["finalize-overdue"])
    assert result.exit_code == 0, result.output
    assert "Finalised 1 " in result.output
    db.session.remove()
    card = db.session.get(MockTestAttempt, late)
    assert (card.status.value, card.correct_count, card.wrong_count, card.unanswered_count) == ("expired", 3, 0, 7)
    assert str(card.score) == "30.00"
    assert card.submitted_at is not None
    assert db.session.get(MockTestAttempt, running).status.value == "in_progress"
    outcomes = db.session.execute(select(AttemptAnswer.outcome).where(AttemptAnswer.card_id == late)).scalars()
    assert len([o for o in outcomes if o is not None]) == 10
    again = app.test_cli_runner().invoke(args=["finalize-overdue"])
    assert "Finalised 0 " in again.output


def test_an_overdue_card_is_finalised_when_it_is_read(client: FlaskClient, app: Flask, subject: int) -> None:
    student, card = overdue_card(client, app, subject, 1)
    read = client.get(f"/api/mock-tests/{card}", headers=student).get_json()
    assert (read["status"], read["correct_count"], read["score"]) == ("expired", 3, "30.00")
    assert client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student).status_code == 409
    assert client.get(f"/api/mock-tests/{card}/review", headers=student).status_code == 200

    other_student, other = overdue_card(client, app, subject, 2)
    listed = client.get("/api/mock-tests?status=expired", headers=other_student).get_json()["items"]
    assert [(c["id"], c["score"]) for c in listed] == [(other, "30.00")]
    progress = client.get("/api/mock-tests/progress", headers=other_student).get_json()["subjects"][0]
    assert (progress["completed"], progress["best_score"], progress["best_marks"]) == (1, "30.00", "3.00")


def test_a_save_that_prefers_a_minimal_return_answers_204_and_saves(
    client: FlaskClient, app: Flask, subject: int, query_counter: Any
) -> None:
    """`Prefer: return=minimal` (RFC 7240): the save is the same, the answer is a 204 without
    the sheet, and the refusals stay what they were."""
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    first, second = (str(q["id"]) for q in paper["questions"][:2])
    path = f"/api/mock-tests/{card}/answers"
    minimal = student | {"Prefer": "respond-async, return=minimal; strict"}

    with query_counter() as counted:
        saved = client.put(path, json={"answers": {first: 1, second: {"marked_for_review": True}}}, headers=minimal)
    assert (saved.status_code, saved.data) == (204, b"")
    assert saved.headers["Preference-Applied"] == "return=minimal"
    full = client.put(path, json={"answers": {}}, headers=student)
    assert "Preference-Applied" not in full.headers
    assert (full.get_json()["answers"], full.get_json()["marked_for_review"]) == ({first: 1}, [int(second)])
    with query_counter() as counted_full:
        client.put(path, json={"answers": {first: 2}}, headers=student)
    assert counted.count < counted_full.count  # neither the subject, the paper nor the sheet is read

    bad = client.put(path, json={"answers": {first: [1]}}, headers=minimal)
    assert (bad.status_code, list(bad.get_json()["errors"])) == (422, [f"answers.{first}"])
    move_start(card, 30 * 60 + app.config["MOCK_TEST_GRACE_SECONDS"] + 5)
    late = client.put(path, json={"answers": {first: 3}}, headers=minimal)
    assert (late.status_code, late.get_json()["type"].rsplit(":", 1)[-1]) == (409, "time-up")
