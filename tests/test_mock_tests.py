"""Taking the mock tests, and the question bank, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from shared.extensions import db
from shared.models import Course, MockTestAttempt, Question, Subject
from shared.models.base import utcnow
from shared.services.demo import DemoDataService
from tests.support.accounts import bearer, create_admin, register
from tests.support.catalog import CourseFixture, make_course
from tests.support.mock_tests import add_questions, card_id, correct_options
from tests.support.purchases import make_purchase, student_with
from tests.support.queries import count_rows


def leaks_answers(body: Any) -> bool:
    """Does any part of a response body carry the correct option or the explanation?"""
    if isinstance(body, dict):
        return bool({"correct_option", "explanation", "is_correct"} & set(body)) or any(
            leaks_answers(v) for v in body.values()
        )
    if isinstance(body, list):
        return any(leaks_answers(v) for v in body)
    return isinstance(body, str) and body.startswith("Because option")


@pytest.fixture
def course(app: Flask) -> CourseFixture:
    fixture = make_course(subjects=3)
    for subject_id in fixture.subject_ids[:2]:
        add_questions(subject_id, 15)
    return fixture


def test_a_student_takes_a_test_from_purchase_to_progress(client: FlaskClient, course: CourseFixture) -> None:
    subject = course.subject_ids[0]
    student = student_with(client, [subject])

    listing = client.get("/api/mock-tests?per_page=100", headers=student).get_json()
    assert listing["total"] == 50
    assert [card["test_number"] for card in listing["items"]] == list(range(1, 51))
    assert {card["status"] for card in listing["items"]} == {"available"}
    card = listing["items"][0]["id"]

    started = client.post(f"/api/mock-tests/{card}/start", headers=student)
    assert started.status_code == 200
    paper = started.get_json()
    assert paper["card"]["status"] == "in_progress"
    assert len(paper["questions"]) == 10
    assert 0 < paper["seconds_left"] <= 30 * 60
    assert not leaks_answers(paper)

    key = correct_options()
    ids = [q["id"] for q in paper["questions"]]
    right = {str(q): key[q] for q in ids[:6]}
    wrong = {str(q): (key[q] + 1) % 4 for q in ids[6:8]}
    saved = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {**right, **wrong}}, headers=student)
    assert saved.status_code == 200
    assert saved.get_json()["answers"] == {**right, **wrong}
    assert not leaks_answers(saved.get_json())

    resumed = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    assert [q["id"] for q in resumed["questions"]] == ids
    assert resumed["answers"] == {**right, **wrong}

    cleared = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(ids[7]): None}}, headers=student)
    assert str(ids[7]) not in cleared.get_json()["answers"]

    last = {str(ids[8]): key[ids[8]]}
    submitted = client.post(f"/api/mock-tests/{card}/submit", json={"answers": last}, headers=student)
    assert submitted.status_code == 200
    result = submitted.get_json()
    assert (result["status"], result["correct_count"], result["score"]) == ("completed", 7, "70.00")

    review = client.get(f"/api/mock-tests/{card}/review", headers=student).get_json()
    assert [q["id"] for q in review["questions"]] == ids
    by_id = {q["id"]: q for q in review["questions"]}
    assert by_id[ids[0]]["is_correct"] is True
    assert by_id[ids[0]]["correct_option"] == key[ids[0]]
    assert by_id[ids[6]]["is_correct"] is False
    assert by_id[ids[7]]["your_answer"] is None
    assert by_id[ids[0]]["explanation"].startswith("Because option")

    progress = client.get("/api/mock-tests/progress", headers=student).get_json()["subjects"]
    assert len(progress) == 1
    assert (progress[0]["cards"], progress[0]["completed"]) == (50, 1)
    assert (progress[0]["average_score"], progress[0]["best_score"]) == ("70.00", "70.00")
    assert progress[0]["last_activity"] == result["submitted_at"]


def test_no_route_shows_the_answers_before_submission(client: FlaskClient, course: CourseFixture) -> None:
    student = student_with(client, [course.subject_ids[0]])
    card = card_id(client, student, course.subject_ids[0], 3)
    answered = {"answers": {}}
    responses = [
        client.post(f"/api/mock-tests/{card}/start", headers=student),
        client.get(f"/api/mock-tests/{card}", headers=student),
        client.get("/api/mock-tests", headers=student),
        client.get("/api/mock-tests/progress", headers=student),
        client.put(f"/api/mock-tests/{card}/answers", json=answered, headers=student),
        client.post(f"/api/mock-tests/{card}/start", headers=student),
    ]
    for response in responses:
        assert response.status_code == 200
        assert not leaks_answers(response.get_json()), response.request.path
    early_review = client.get(f"/api/mock-tests/{card}/review", headers=student)
    assert early_review.status_code == 409
    assert not leaks_answers(early_review.get_json())


def test_another_students_card_is_a_404_everywhere(client: FlaskClient, course: CourseFixture) -> None:
    owner = student_with(client, [course.subject_ids[0]])
    other = student_with(client, [course.subject_ids[1]])
    card = card_id(client, owner, course.subject_ids[0], 1)
    client.post(f"/api/mock-tests/{card}/start", headers=owner)
    calls = [
        ("get", f"/api/mock-tests/{card}", None),
        ("post", f"/api/mock-tests/{card}/start", None),
        ("put", f"/api/mock-tests/{card}/answers", {"answers": {}}),
        ("post", f"/api/mock-tests/{card}/submit", {}),
        ("get", f"/api/mock-tests/{card}/review", None),
    ]
    for method, path, body in calls:
        assert getattr(client, method)(path, json=body, headers=other).status_code == 404, path
    assert client.get(f"/api/mock-tests?subject_id={course.subject_ids[0]}", headers=other).get_json()["total"] == 0
    admin = bearer(create_admin())
    assert client.get(f"/api/mock-tests/{card}", headers=admin).status_code == 200
    assert client.post(f"/api/mock-tests/{card}/start", headers=admin).status_code == 403


def test_admins_may_read_a_review(client: FlaskClient, course: CourseFixture) -> None:
    student = student_with(client, [course.subject_ids[0]])
    card = card_id(client, student, course.subject_ids[0], 1)
    client.post(f"/api/mock-tests/{card}/start", headers=student)
    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)
    review = client.get(f"/api/mock-tests/{card}/review", headers=bearer(create_admin()))
    assert review.status_code == 200
    assert len(review.get_json()["questions"]) == 10


def test_paper_k_is_the_same_for_every_student(client: FlaskClient, course: CourseFixture) -> None:
    subject = course.subject_ids[0]
    papers = []
    for _ in range(2):
        student = student_with(client, [subject])
        card = card_id(client, student, subject, 7)
        papers.append(
            [q["id"] for q in client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["questions"]]
        )
    assert papers[0] == papers[1]
    other_number = card_id(client, student, subject, 8)
    paper_8 = [
        q["id"] for q in client.post(f"/api/mock-tests/{other_number}/start", headers=student).get_json()["questions"]
    ]
    assert paper_8 != papers[0]


def test_bank_changes_do_not_change_a_started_test(client: FlaskClient, course: CourseFixture) -> None:
    subject = course.subject_ids[0]
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    before = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["questions"]
    admin = bearer(create_admin())
    for question in before[:3]:
        assert client.delete(f"/api/subjects/{subject}/questions/{question['id']}", headers=admin).status_code == 204
    add_questions(subject, 20, start=100)
    after = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["questions"]
    assert after == before
    done = client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student).get_json()
    assert done["question_count"] == 10
    assert len(client.get(f"/api/mock-tests/{card}/review", headers=student).get_json()["questions"]) == 10


def test_a_subject_without_questions_cannot_start(client: FlaskClient, course: CourseFixture) -> None:
    empty = course.subject_ids[2]
    student = student_with(client, [empty])
    response = client.post(f"/api/mock-tests/{card_id(client, student, empty, 1)}/start", headers=student)
    assert response.status_code == 409
    assert "no questions" in response.get_json()["detail"]
    assert response.get_json()["type"] == "urn:exam-shop:problem:no-questions"


def test_answers_must_fit_the_paper(client: FlaskClient, course: CourseFixture) -> None:
    subject = course.subject_ids[0]
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    before_start = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {}}, headers=student)
    assert before_start.status_code == 409
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    in_paper = {q["id"] for q in paper["questions"]}
    outside = db.session.execute(select(Question.id).where(Question.id.not_in(in_paper))).scalars().first()
    first = paper["questions"][0]["id"]
    not_in_paper = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(outside): 0}}, headers=student)
    assert not_in_paper.status_code == 422
    assert list(not_in_paper.get_json()["errors"]) == [f"answers.{outside}"]
    db.session.execute(update(Question).where(Question.id == first).values(options=["A", "B"]))
    db.session.commit()
    frozen = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(first): 3}}, headers=student)
    assert frozen.status_code == 200  # the paper keeps the four options it froze
    no_such_option = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(first): 4}}, headers=student)
    assert no_such_option.status_code == 422
    assert list(no_such_option.get_json()["errors"]) == [f"answers.{first}"]
    assert (
        client.put(f"/api/mock-tests/{card}/answers", json={"answers": {"abc": 1}}, headers=student).status_code == 422
    )
    assert (
        client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(first): 9}}, headers=student).status_code
        == 422
    )
    assert client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student).status_code == 200
    after = client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(first): 0}}, headers=student)
    assert after.status_code == 409
    assert client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student).status_code == 409


def test_a_late_submit_expires_the_card_and_counts_only_saved_answers(
    client: FlaskClient, app: Flask, course: CourseFixture
) -> None:
    subject = course.subject_ids[0]
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 2)
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    key = correct_options()
    ids = [q["id"] for q in paper["questions"]]
    in_time = {str(ids[0]): key[ids[0]], str(ids[1]): key[ids[1]]}
    client.put(f"/api/mock-tests/{card}/answers", json={"answers": in_time}, headers=student)

    grace = app.config["MOCK_TEST_GRACE_SECONDS"]
    db.session.execute(
        update(MockTestAttempt)
        .where(MockTestAttempt.id == card)
        .values(deadline_at=utcnow() - timedelta(seconds=grace + 5))
    )
    db.session.commit()
    too_late = {str(q): key[q] for q in ids[2:]}
    refused = client.put(f"/api/mock-tests/{card}/answers", json={"answers": too_late}, headers=student)
    assert refused.status_code == 409
    result = client.post(f"/api/mock-tests/{card}/submit", json={"answers": too_late}, headers=student).get_json()
    assert (result["status"], result["correct_count"], result["score"]) == ("expired", 2, "20.00")
    assert client.get(f"/api/mock-tests/{card}/review", headers=student).status_code == 200


def test_a_submit_within_the_grace_still_counts(client: FlaskClient, course: CourseFixture) -> None:
    subject = course.subject_ids[0]
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 4)
    paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    db.session.execute(
        update(MockTestAttempt).where(MockTestAttempt.id == card).values(deadline_at=utcnow() - timedelta(seconds=2))
    )
    db.session.commit()
    key = correct_options()
    last = {str(q["id"]): key[q["id"]] for q in paper["questions"]}
    result = client.post(f"/api/mock-tests/{card}/submit", json={"answers": last}, headers=student).get_json()
    assert (result["status"], result["score"]) == ("completed", "100.00")


def test_cards_filter_by_subject_and_status(client: FlaskClient, course: CourseFixture) -> None:
    first, second = course.subject_ids[:2]
    student = student_with(client, [first, second])
    assert client.get("/api/mock-tests?per_page=100", headers=student).get_json()["total"] == 100
    only_second = client.get(f"/api/mock-tests?subject_id={second}&per_page=100", headers=student).get_json()
    assert {c["subject_id"] for c in only_second["items"]} == {second}
    client.post(f"/api/mock-tests/{card_id(client, student, second, 5)}/start", headers=student)
    started = client.get("/api/mock-tests?status=in_progress", headers=student).get_json()["items"]
    assert [(c["subject_id"], c["test_number"]) for c in started] == [(second, 5)]
    ordered = client.get("/api/mock-tests?per_page=100", headers=student).get_json()["items"]
    assert [(c["subject_id"], c["test_number"]) for c in ordered] == sorted(
        (c["subject_id"], c["test_number"]) for c in ordered
    )
    assert client.get("/api/mock-tests?status=lost", headers=student).status_code == 422


def test_list_progress_and_review_make_a_fixed_number_of_queries(
    client: FlaskClient, course: CourseFixture, query_counter: Any
) -> None:
    first, second, third = course.subject_ids
    student = student_with(client, [first])
    small_card = card_id(client, student, first, 1)
    client.post(f"/api/mock-tests/{small_card}/start", headers=student)
    client.post(f"/api/mock-tests/{small_card}/submit", json={}, headers=student)
    add_questions(third, 2)
    with query_counter() as small_list:
        client.get("/api/mock-tests?per_page=10", headers=student)
    with query_counter() as small_progress:
        client.get("/api/mock-tests/progress", headers=student)

    make_purchase(client, student, [second, third])
    tiny_card = card_id(client, student, third, 1)
    client.post(f"/api/mock-tests/{tiny_card}/start", headers=student)
    client.post(f"/api/mock-tests/{tiny_card}/submit", json={}, headers=student)
    with query_counter() as small_review:
        assert len(client.get(f"/api/mock-tests/{tiny_card}/review", headers=student).get_json()["questions"]) == 2
    with query_counter() as large_list:
        assert len(client.get("/api/mock-tests?per_page=100", headers=student).get_json()["items"]) == 100
    with query_counter() as large_progress:
        assert len(client.get("/api/mock-tests/progress", headers=student).get_json()["subjects"]) == 3
    with query_counter() as large_review:
        assert len(client.get(f"/api/mock-tests/{small_card}/review", headers=student).get_json()["questions"]) == 10
    assert small_list.count == large_list.count, large_list
    assert small_progress.count == large_progress.count, large_progress
    assert small_review.count == large_review.count, large_review


# ---------------------------------------------------------------- the question bank


def test_admin_manages_questions(client: FlaskClient, course: CourseFixture) -> None:
    admin = bearer(create_admin())
    subject = course.subject_ids[2]
    body = {"text": "2 + 2?", "options": ["3", "4"], "correct_option": 1, "explanation": "Count.", "difficulty": "easy"}
    created = client.post(f"/api/subjects/{subject}/questions", json=body, headers=admin)
    assert created.status_code == 201
    question = created.get_json()
    assert question["correct_option"] == 1
    changed = client.patch(
        f"/api/subjects/{subject}/questions/{question['id']}", json={"options": ["4", "3", "5"]}, headers=admin
    )
    assert changed.get_json()["options"] == ["4", "3", "5"]
    bad = client.patch(f"/api/subjects/{subject}/questions/{question['id']}", json={"correct_option": 5}, headers=admin)
    assert bad.status_code == 422
    assert client.delete(f"/api/subjects/{subject}/questions/{question['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/subjects/{subject}/questions", headers=admin).get_json()["total"] == 0
    listed = client.get(f"/api/subjects/{subject}/questions?include_inactive=true", headers=admin).get_json()
    assert [q["is_active"] for q in listed["items"]] == [False]
    wrong_subject = client.patch(
        f"/api/subjects/{course.subject_ids[0]}/questions/{question['id']}", json={}, headers=admin
    )
    assert wrong_subject.status_code == 404
    assert client.post("/api/subjects/999999/questions", json=body, headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ({"text": "x", "options": ["only one"], "correct_option": 0}, "options"),
        ({"text": "x", "options": ["a", "b", "c", "d", "e", "f", "g"], "correct_option": 0}, "options"),
        ({"text": "x", "options": ["a", "b"], "correct_option": 2}, "correct_option"),
        ({"text": "", "options": ["a", "b"], "correct_option": 0}, "text"),
        ({"options": ["a", "b"], "correct_option": 0}, "text"),
    ],
)
def test_bad_questions_are_422(
    client: FlaskClient, course: CourseFixture, question: dict[str, Any], field: str
) -> None:
    admin = bearer(create_admin())
    response = client.post(f"/api/subjects/{course.subject_ids[2]}/questions", json=question, headers=admin)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]


def test_import_is_all_or_nothing_with_the_index_of_each_problem(client: FlaskClient, course: CourseFixture) -> None:
    admin = bearer(create_admin())
    subject = course.subject_ids[2]
    good = {"text": "ok", "options": ["a", "b"], "correct_option": 0}
    batch = [
        good,
        {"text": "bad", "options": ["a"], "correct_option": 0},
        good,
        {"text": "bad", "options": ["a", "b"], "correct_option": 3},
    ]
    refused = client.post(f"/api/subjects/{subject}/questions/import", json={"questions": batch}, headers=admin)
    assert refused.status_code == 422
    assert set(refused.get_json()["errors"]) == {"questions.1.options", "questions.3.correct_option"}
    assert count_rows(Question, Question.subject_id == subject) == 0
    accepted = client.post(f"/api/subjects/{subject}/questions/import", json={"questions": [good] * 12}, headers=admin)
    assert accepted.status_code == 201
    assert accepted.get_json()["imported"] == 12
    assert len({q["id"] for q in accepted.get_json()["questions"]}) == 12


def test_students_cannot_touch_the_bank(client: FlaskClient, course: CourseFixture) -> None:
    student = bearer(register(client)["access_token"])
    subject = course.subject_ids[0]
    assert client.get(f"/api/subjects/{subject}/questions", headers=student).status_code == 403
    assert (
        client.post(f"/api/subjects/{subject}/questions/import", json={"questions": []}, headers=student).status_code
        == 403
    )
    assert client.get(f"/api/subjects/{subject}/questions").status_code == 401


def test_demo_data_has_a_question_bank_for_every_paper(app: Flask) -> None:
    DemoDataService.seed()
    DemoDataService.seed()
    per_subject = db.session.execute(
        select(Subject.id, func.count(Question.id))
        .join(Course, Course.id == Subject.course_id)
        .outerjoin(Question, Question.subject_id == Subject.id)
        .group_by(Subject.id)
    ).all()
    assert len(per_subject) == 31
    assert {count for _, count in per_subject} == {15}
    assert app.config["MOCK_TEST_QUESTION_COUNT"] <= 15
    for question in db.session.execute(select(Question).limit(40)).scalars():
        left, right = question.text.split("what is ")[1].rstrip("?").split(" + ")
        assert question.options[question.correct_option] == str(int(left) + int(right))
