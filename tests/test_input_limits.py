"""Every size the API accepts is bounded, documented in README ("Input limits"), and enforced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.models import Purchase, Question
from tests.support.accounts import bearer, register, registration
from tests.support.catalog import CourseFixture, make_course
from tests.support.mock_tests import add_questions, card_id
from tests.support.purchases import student_with
from tests.support.queries import count_rows


def errors_of(response: object) -> dict[str, list[str]]:
    assert response.status_code == 422, response.get_json()  # type: ignore[attr-defined]
    return response.get_json()["errors"]  # type: ignore[attr-defined]


def test_request_bodies_over_the_configured_size_are_413(app: Flask, client: FlaskClient) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    huge = {"email": "a@b.io", "password": "x" * limit}
    response = client.post("/api/auth/login", json=huge)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a" * 251 + "@b.io"),  # 256 characters
        ("password", "a1" * 65),
        ("full_name", "n" * 121),
        ("phone_number", "9" * 40),
    ],
)
def test_account_strings_are_bounded(client: FlaskClient, field: str, value: str) -> None:
    assert field in errors_of(client.post("/api/auth/register", json=registration(**{field: value})))


def test_page_sizes_are_bounded(client: FlaskClient, admin: dict[str, str]) -> None:
    for path in ("/api/courses", "/api/bundles", "/api/customers", "/api/purchases"):
        assert "per_page" in errors_of(client.get(f"{path}?per_page=101", headers=admin)), path
        assert client.get(f"{path}?per_page=100", headers=admin).status_code == 200, path
    assert "page" in errors_of(client.get("/api/courses?page=100001"))
    assert "q" in errors_of(client.get("/api/courses?q=" + "x" * 101))


def test_list_lengths_are_bounded(client: FlaskClient, admin: dict[str, str]) -> None:
    student = bearer(register(client)["access_token"])
    too_many_subjects = {"purchase_type": "multiple_subjects", "subject_ids": list(range(1, 102))}
    assert "subject_ids" in errors_of(client.post("/api/purchases", json=too_many_subjects, headers=student))
    course = make_course(subjects=2)
    bundle = {"slug": "b", "title": "B", "course_id": course.id, "price": "1", "subject_ids": list(range(1, 102))}
    assert "subject_ids" in errors_of(client.post("/api/bundles", json=bundle, headers=admin))
    question = {"text": "q", "options": ["a", "b"], "correct_option": 0}
    imported = client.post(
        f"/api/subjects/{course.subject_ids[0]}/questions/import", json={"questions": [question] * 501}, headers=admin
    )
    assert "questions" in errors_of(imported)
    answers = {"answers": {str(n): 0 for n in range(1, 202)}}
    assert "answers" in errors_of(client.put("/api/mock-tests/1/answers", json=answers, headers=student))


def test_catalog_and_question_strings_are_bounded(client: FlaskClient, admin: dict[str, str]) -> None:
    assert "title" in errors_of(client.post("/api/courses", json={"slug": "s", "title": "t" * 201}, headers=admin))
    assert "slug" in errors_of(client.post("/api/courses", json={"slug": "s" * 81, "title": "t"}, headers=admin))
    long_description = {"slug": "s", "title": "t", "description": "d" * 5001}
    assert "description" in errors_of(client.post("/api/courses", json=long_description, headers=admin))
    course = make_course(subjects=1)
    subject = course.subject_ids[0]
    too_long_text = {"text": "q" * 5001, "options": ["a", "b"], "correct_option": 0}
    assert "text" in errors_of(client.post(f"/api/subjects/{subject}/questions", json=too_long_text, headers=admin))
    long_option = {"text": "q", "options": ["a" * 1001, "b"], "correct_option": 0}
    assert "options.0" in errors_of(client.post(f"/api/subjects/{subject}/questions", json=long_option, headers=admin))


def test_ids_beyond_the_int_range_are_404_or_422_not_500(client: FlaskClient, admin: dict[str, str]) -> None:
    assert client.get("/api/courses/99999999999999999999").status_code == 404
    student = bearer(register(client)["access_token"])
    huge = {"purchase_type": "single_subject", "subject_id": 2**63}
    assert "subject_id" in errors_of(client.post("/api/purchases", json=huge, headers=student))
    assert "course_id" in errors_of(client.get("/api/bundles?course_id=99999999999", headers=admin))


def test_text_must_be_valid_unicode(client: FlaskClient) -> None:
    body = '{"email": "a@b.io", "password": "x1234567890", "full_name": "\\ud800", "phone_number": "+919812345600"}'
    response = client.post("/api/auth/register", data=body, content_type="application/json")
    assert response.status_code == 422


def nested_login_body(levels: int) -> str:
    """A login body whose email is `levels` arrays deep (340 levels: a 700-byte body)."""
    return '{"email": ' + "[" * levels + "]" * levels + ', "password": "x"}'


@pytest.mark.parametrize("levels", [340, 10_000])
def test_deeply_nested_bodies_are_400_before_rate_limits_and_the_database(
    app: Flask, client: FlaskClient, query_counter: Any, levels: int
) -> None:
    student = bearer(register(client)["access_token"])
    body = nested_login_body(levels)
    allowed = int(app.config["RATELIMIT_LOGIN_PER_CLIENT"].split()[0])
    for path, headers in [("/api/auth/login", {})] * (allowed + 1) + [("/api/purchases", student)]:
        with query_counter() as queries:
            response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
        assert "32 levels" in response.get_json()["detail"]
        assert queries.count == 0, str(queries)
    # None of those attempts counted against the client's login limit.
    login = client.post("/api/auth/login", json={"email": "who@example.com", "password": "wrong-12345"})
    assert login.status_code == 401


def test_nesting_up_to_the_limit_is_read(client: FlaskClient) -> None:
    deepest = {"email": "a@b.io", "password": "x"}
    for _ in range(31):
        deepest = {"x": deepest}
    response = client.post("/api/auth/login", json={**deepest, "email": "a@b.io", "password": "wrong-12345"})
    assert response.status_code == 422  # unknown fields, read and refused by the schema


def test_integers_of_thousands_of_digits_are_400(client: FlaskClient, student: dict[str, str]) -> None:
    huge = "9" * 5001
    for path, body, headers in [
        ("/api/auth/login", f'{{"email": {huge}, "password": "x"}}', {}),
        ("/api/purchases", f'{{"purchase_type": "single_subject", "subject_id": {huge}}}', student),
    ]:
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "digits" in response.get_json()["detail"]


def test_nan_and_infinity_are_not_json(client: FlaskClient, student: dict[str, str]) -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"purchase_type": "single_subject", "subject_id": {constant}}}'
        response = client.post("/api/purchases", data=body, content_type="application/json", headers=student)
        assert response.status_code == 400, constant


PurchaseBody = Callable[[CourseFixture], dict[str, Any]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (lambda c: {"purchase_type": "single_subject", "subject_id": c.subject_ids[0] + 0.9}, "subject_id"),
        (lambda c: {"purchase_type": "single_subject", "subject_id": float(c.subject_ids[0])}, "subject_id"),
        (lambda c: {"purchase_type": "single_subject", "subject_id": str(c.subject_ids[0])}, "subject_id"),
        (lambda c: {"purchase_type": "single_subject", "subject_id": True}, "subject_id"),
        (
            lambda c: {
                "purchase_type": "multiple_subjects",
                "subject_ids": [c.subject_ids[1] + 0.7, c.subject_ids[2] + 0.2],
            },
            "subject_ids.0",
        ),
        (lambda c: {"purchase_type": "bundle", "bundle_id": c.bundle_id + 0.5}, "bundle_id"),
        (
            lambda c: {"purchase_type": "single_subject", "subject_id": c.subject_ids[0], "course_id": c.id + 0.5},
            "course_id",
        ),
    ],
    ids=["fraction", "whole-float", "string", "boolean", "fractions-in-a-list", "bundle-fraction", "course-fraction"],
)
def test_purchase_ids_must_be_json_integers(
    client: FlaskClient, student: dict[str, str], body: PurchaseBody, field: str
) -> None:
    course = make_course(subjects=3)
    response = client.post("/api/purchases", json=body(course), headers=student)
    assert field in errors_of(response)
    assert count_rows(Purchase) == 0


def test_catalog_ids_and_option_indexes_must_be_json_integers(client: FlaskClient, admin: dict[str, str]) -> None:
    course = make_course(subjects=3)
    first, second, _ = course.subject_ids
    bundle = {"slug": "b", "title": "B", "course_id": float(course.id), "price": "1", "subject_ids": [first, second]}
    assert "course_id" in errors_of(client.post("/api/bundles", json=bundle, headers=admin))
    bundle = {**bundle, "course_id": course.id, "subject_ids": [first + 0.5, second]}
    assert "subject_ids.0" in errors_of(client.post("/api/bundles", json=bundle, headers=admin))
    subjects = {"subject_ids": [float(first), second]}
    bundle_subjects = client.put(f"/api/bundles/{course.bundle_id}/subjects", json=subjects, headers=admin)
    assert "subject_ids.0" in errors_of(bundle_subjects)
    question = {"text": "q", "options": ["a", "b"], "correct_option": 1.0}
    path = f"/api/subjects/{first}/questions"
    assert "correct_option" in errors_of(client.post(path, json=question, headers=admin))
    assert "correct_option" in errors_of(client.post(path, json={**question, "correct_option": False}, headers=admin))
    assert "questions.0.correct_option" in errors_of(
        client.post(f"{path}/import", json={"questions": [question]}, headers=admin)
    )
    assert count_rows(Question) == 0


def test_answers_must_be_json_integers(client: FlaskClient) -> None:
    course = make_course(subjects=1)
    subject = course.subject_ids[0]
    add_questions(subject, 15)
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)
    question = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["questions"][0]["id"]
    for value in (2.9, 2.0, True, "2"):
        body = {"answers": {str(question): value}}
        saved = client.put(f"/api/mock-tests/{card}/answers", json=body, headers=student)
        assert any(field.startswith("answers") for field in errors_of(saved)), value
        submitted = client.post(f"/api/mock-tests/{card}/submit", json=body, headers=student)
        assert any(field.startswith("answers") for field in errors_of(submitted)), value
    assert client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()["answers"] == {}


def test_query_string_integers_are_still_read_from_text(client: FlaskClient, admin: dict[str, str]) -> None:
    course = make_course(subjects=1)
    listing = client.get(f"/api/bundles?course_id={course.id}&page=1&per_page=5", headers=admin)
    assert listing.status_code == 200
    assert [bundle["id"] for bundle in listing.get_json()["items"]] == [course.bundle_id]


def test_every_integer_of_every_request_body_is_strict(app: Flask) -> None:
    """A new body field declared with marshmallow's lenient Integer would read 1.9 as 1."""
    lenient = []
    for endpoint, view in app.view_functions.items():
        for parameter in getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", []):
            if parameter["in"] != "json":
                continue
            schema = parameter["schema"]
            fields = list(schema().fields.values() if isinstance(schema, type) else schema.fields.values())
            while fields:
                field = fields.pop()
                if isinstance(field, ma.fields.Integer) and not field.strict and not field.dump_only:
                    lenient.append(f"{endpoint}: {field.name}")
                if isinstance(field, ma.fields.Nested):
                    fields.extend(field.schema.fields.values())
                fields.extend(
                    inner
                    for inner in (getattr(field, "inner", None), getattr(field, "value_field", None))
                    if inner is not None
                )
    assert not lenient
