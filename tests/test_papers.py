"""Exam patterns and frozen papers: marking per question type, versions (SQLite and MariaDB)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.extensions import db
from shared.models import Paper, PaperQuestion
from tests.support.catalog import make_course
from tests.support.mock_tests import JEE_ADVANCED, add_questions, card_id
from tests.support.purchases import student_with


@pytest.fixture
def subject(app: Flask) -> int:
    return make_course(subjects=1).subject_ids[0]


def typed_bank(client: FlaskClient, admin: dict[str, str], subject: int) -> dict[str, int]:
    """One question of each type; their ids by type."""
    questions = [
        {"type": "single", "text": "2 + 2?", "options": ["3", "4", "5"], "correct_option": 1},
        {"type": "multiple", "text": "Primes?", "options": ["2", "4", "5", "9"], "correct_options": [0, 2]},
        {"type": "numerical", "text": "pi?", "answer": "3.14", "decimal_places": 2},
    ]
    made = client.post(f"/api/subjects/{subject}/questions/import", json={"questions": questions}, headers=admin)
    return {q["type"]: q["id"] for q in made.get_json()["questions"]}


def test_the_default_pattern_keeps_todays_scoring(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    pattern = client.get(f"/api/subjects/{subject}/pattern", headers=admin).get_json()
    assert (pattern["questions_per_paper"], pattern["duration_minutes"]) == (10, 30)
    assert (pattern["single_correct"], pattern["single_wrong"], pattern["single_unanswered"]) == (
        "1.00",
        "0.00",
        "0.00",
    )
    assert pattern["multiple_partial"] == "0.00"


def test_a_pattern_marks_each_type_with_partial_marks(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    assert client.put(f"/api/subjects/{subject}/pattern", json=JEE_ADVANCED, headers=admin).status_code == 200
    ids = typed_bank(client, admin, subject)
    outcomes = []
    for answers in (
        {ids["single"]: 1, ids["multiple"]: [0, 2], ids["numerical"]: "3.144"},  # all right
        {ids["single"]: 0, ids["multiple"]: [2], ids["numerical"]: "3.15"},  # wrong, partial, wrong
        {ids["multiple"]: [0, 1]},  # a wrong option chosen: no partial marks
    ):
        student = student_with(client, [subject])
        card = card_id(client, student, subject, 1)
        paper = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
        assert paper["paper"]["max_marks"] == "10.00"
        assert paper["card"]["deadline_at"] > paper["card"]["started_at"]
        assert 179 * 60 < paper["seconds_left"] <= 180 * 60
        body = {"answers": {str(k): v for k, v in answers.items()}}
        result = client.post(f"/api/mock-tests/{card}/submit", json=body, headers=student).get_json()
        outcomes.append((result["marks"], result["score"], result["correct_count"], result["wrong_count"]))
        outcomes[-1] += (result["unanswered_count"],)
    assert outcomes == [
        ("10.00", "100.00", 3, 0, 0),
        ("0.00", "0.00", 0, 2, 0),  # -1 + 1 (one right option of two, no wrong one) + 0 (numerical wrong: 0)
        ("-2.00", "-20.00", 0, 1, 2),
    ]


def test_answers_take_their_types_shape(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    ids = typed_bank(client, admin, subject)
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    client.post(f"/api/mock-tests/{card}/start", headers=student)
    path = f"/api/mock-tests/{card}/answers"
    for question, wrong_shape in (("single", [1]), ("multiple", 1), ("numerical", 3), ("numerical", "pi")):
        refused = client.put(path, json={"answers": {str(ids[question]): wrong_shape}}, headers=student)
        assert refused.status_code == 422, (question, wrong_shape)
        assert list(refused.get_json()["errors"]) == [f"answers.{ids[question]}"]
    body = {"answers": {str(ids["single"]): 2, str(ids["multiple"]): [3, 0], str(ids["numerical"]): " 3.140 "}}
    saved = client.put(path, json=body, headers=student).get_json()
    assert saved["answers"] == {str(ids["single"]): 2, str(ids["multiple"]): [0, 3], str(ids["numerical"]): "3.14"}
    cleared = client.put(path, json={"answers": {str(ids["multiple"]): []}}, headers=student).get_json()
    assert str(ids["multiple"]) not in cleared["answers"]


def test_paper_k_is_frozen_and_a_new_version_serves_later_starts(
    client: FlaskClient, admin: dict[str, str], subject: int
) -> None:
    add_questions(subject, 15)
    early = student_with(client, [subject])
    early_card = card_id(client, early, subject, 2)
    first = client.post(f"/api/mock-tests/{early_card}/start", headers=early).get_json()
    assert first["paper"]["version"] == 1
    question = first["questions"][0]["id"]
    edited = client.patch(
        f"/api/subjects/{subject}/questions/{question}", json={"text": "Changed", "correct_option": 3}, headers=admin
    ).get_json()
    assert edited["version"] == 2

    same = student_with(client, [subject])
    same_card = card_id(client, same, subject, 2)
    second = client.post(f"/api/mock-tests/{same_card}/start", headers=same).get_json()
    assert second["paper"]["id"] == first["paper"]["id"]
    assert second["questions"] == first["questions"]  # the frozen text, not "Changed"

    listed = client.get(f"/api/subjects/{subject}/papers", headers=admin).get_json()["papers"]
    assert [(p["test_number"], p["version"]) for p in listed] == [(2, 1)]
    published = client.post(f"/api/papers/{first['paper']['id']}/versions", headers=admin)
    assert published.status_code == 201
    assert (published.get_json()["version"], published.get_json()["test_number"]) == (2, 2)
    late = student_with(client, [subject])
    late_card = card_id(client, late, subject, 2)
    third = client.post(f"/api/mock-tests/{late_card}/start", headers=late).get_json()
    assert third["paper"]["id"] == published.get_json()["id"]
    assert "Changed" in {q["text"] for q in third["questions"]} or question not in {q["id"] for q in third["questions"]}
    resumed = client.post(f"/api/mock-tests/{early_card}/start", headers=early).get_json()
    assert resumed["paper"]["id"] == first["paper"]["id"]

    frozen = db.session.execute(
        select(PaperQuestion).where(PaperQuestion.paper_id == first["paper"]["id"], PaperQuestion.position == 1)
    ).scalar_one()
    assert frozen.question_id == question
    assert db.session.get(Paper, first["paper"]["id"]).version == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration_minutes": 30}, "questions_per_paper"),
        ({"questions_per_paper": 0, "duration_minutes": 30}, "questions_per_paper"),
        ({"questions_per_paper": 5, "duration_minutes": 30, "single_wrong": "-101"}, "single_wrong"),
        ({"questions_per_paper": 5, "duration_minutes": 30, "multiple_partial": "-1"}, "multiple_partial"),
    ],
)
def test_bad_patterns_are_422(
    client: FlaskClient, admin: dict[str, str], subject: int, body: dict[str, Any], field: str
) -> None:
    response = client.put(f"/api/subjects/{subject}/pattern", json=body, headers=admin)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]
