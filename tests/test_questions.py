"""The question bank: three question types, their answer keys, and versions (SQLite and MariaDB)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.extensions import db
from shared.models import Question, QuestionVersion
from shared.services.questions import freeze_versions
from tests.support.catalog import make_course
from tests.support.queries import count_rows

SINGLE = {"type": "single", "text": "2 + 2?", "options": ["3", "4"], "correct_option": 1}
MULTIPLE = {"type": "multiple", "text": "Primes?", "options": ["2", "4", "5", "9"], "correct_options": [2, 0]}
NUMERICAL = {"type": "numerical", "text": "pi to 2 places?", "answer": "3.14", "decimal_places": 2}


@pytest.fixture
def subject(app: Flask) -> int:
    return make_course(subjects=1).subject_ids[0]


def test_each_type_is_created_with_its_key(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    path = f"/api/subjects/{subject}/questions"
    single = client.post(path, json=SINGLE, headers=admin).get_json()
    assert (single["type"], single["correct_option"], single["correct_options"]) == ("single", 1, [1])
    multiple = client.post(path, json=MULTIPLE, headers=admin).get_json()
    assert (multiple["type"], multiple["correct_options"], multiple["correct_option"]) == ("multiple", [0, 2], None)
    numerical = client.post(path, json=NUMERICAL, headers=admin).get_json()
    assert (numerical["answer"], numerical["decimal_places"], numerical["tolerance"]) == ("3.140000", 2, "0.005000")
    assert numerical["options"] == []
    with_tolerance = client.post(
        path, json={**NUMERICAL, "decimal_places": None, "tolerance": "0.1"}, headers=admin
    ).get_json()
    assert (with_tolerance["tolerance"], with_tolerance["decimal_places"]) == ("0.100000", None)
    assert {q["version"] for q in (single, multiple, numerical)} == {1}


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ({**SINGLE, "correct_option": None}, "correct_option"),
        ({**MULTIPLE, "correct_options": []}, "correct_options"),
        ({**MULTIPLE, "correct_options": [0, 0]}, "correct_options"),
        ({**MULTIPLE, "correct_options": [4]}, "correct_options"),
        ({**MULTIPLE, "options": ["a"]}, "options"),
        ({**NUMERICAL, "answer": None}, "answer"),
        ({**NUMERICAL, "options": ["a", "b"]}, "options"),
        ({**NUMERICAL, "tolerance": "0.1"}, "tolerance"),
        ({**NUMERICAL, "answer": "pi"}, "answer"),
        ({**NUMERICAL, "decimal_places": 7}, "decimal_places"),
        ({**SINGLE, "type": "essay"}, "type"),
    ],
)
def test_a_wrong_answer_key_is_a_422_on_its_field(
    client: FlaskClient, admin: dict[str, str], subject: int, question: dict[str, Any], field: str
) -> None:
    response = client.post(f"/api/subjects/{subject}/questions", json=question, headers=admin)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]


def test_import_takes_every_type_all_or_nothing(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    path = f"/api/subjects/{subject}/questions/import"
    refused = client.post(
        path, json={"questions": [SINGLE, {**MULTIPLE, "correct_options": [7]}, NUMERICAL]}, headers=admin
    )
    assert refused.status_code == 422
    assert list(refused.get_json()["errors"]) == ["questions.1.correct_options.0"]
    assert count_rows(Question) == 0
    accepted = client.post(path, json={"questions": [SINGLE, MULTIPLE, NUMERICAL]}, headers=admin)
    assert accepted.status_code == 201
    assert [q["type"] for q in accepted.get_json()["questions"]] == ["single", "multiple", "numerical"]


def test_a_patch_is_checked_as_it_leaves_the_question(client: FlaskClient, admin: dict[str, str], subject: int) -> None:
    path = f"/api/subjects/{subject}/questions"
    question = client.post(path, json=MULTIPLE, headers=admin).get_json()
    shrink = client.patch(f"{path}/{question['id']}", json={"options": ["2", "4"]}, headers=admin)
    assert shrink.status_code == 422
    assert list(shrink.get_json()["errors"]) == ["correct_options"]
    to_numerical = client.patch(f"{path}/{question['id']}", json={"type": "numerical", "answer": "7"}, headers=admin)
    assert list(to_numerical.get_json()["errors"]) == ["options"]
    changed = client.patch(
        f"{path}/{question['id']}", json={"type": "numerical", "answer": "7", "options": []}, headers=admin
    ).get_json()
    assert (changed["type"], changed["answer"], changed["tolerance"], changed["correct_options"]) == (
        "numerical",
        "7.000000",
        "0.000000",
        None,
    )


def test_an_edit_of_a_frozen_question_makes_a_new_version(
    client: FlaskClient, admin: dict[str, str], subject: int
) -> None:
    path = f"/api/subjects/{subject}/questions"
    question = client.post(path, json=SINGLE, headers=admin).get_json()
    unused = client.patch(f"{path}/{question['id']}", json={"text": "2 + 2 = ?"}, headers=admin).get_json()
    assert unused["version"] == 1  # no paper has it: changed in place

    frozen = freeze_versions(db.session(), [question["id"]])
    db.session.commit()
    assert freeze_versions(db.session(), [question["id"]]) == frozen  # once per version
    db.session.commit()

    edited = client.patch(f"{path}/{question['id']}", json={"correct_option": 0, "text": "1 + 3?"}, headers=admin)
    assert (edited.get_json()["version"], edited.get_json()["correct_option"]) == (2, 0)
    kept = db.session.get(QuestionVersion, frozen[question["id"]])
    assert (kept.version, kept.text, kept.correct_option) == (1, "2 + 2 = ?", 1)

    assert client.delete(f"{path}/{question['id']}", headers=admin).status_code == 204
    again = client.patch(f"{path}/{question['id']}", json={"is_active": True}, headers=admin).get_json()
    assert again["version"] == 2  # (de)activating is not an edit of the question
    versions = db.session.execute(select(QuestionVersion.version).order_by(QuestionVersion.version)).scalars()
    assert list(versions) == [1]
