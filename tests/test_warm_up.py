"""A gunicorn worker compiles the statements of an exam before its first request
(`shared.warm_up`, called by gunicorn.conf.py): no start, save or submit pays for it."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from shared.extensions import db
from shared.warm_up import warm_up
from tests.conftest import app_config
from tests.support.catalog import make_course
from tests.support.mock_tests import add_questions, card_id
from tests.support.purchases import student_with

ENGINE_LOG = "sqlalchemy.engine.Engine"


def compiled_anew(records: list[logging.LogRecord]) -> list[str]:
    """The statements SQLAlchemy compiled (its INFO log: the statement, then "[generated in ...]")."""
    return [
        records[n - 1].getMessage()
        for n, record in enumerate(records)
        if record.getMessage().startswith("[generated in")
    ]


def test_after_the_warm_up_an_exam_compiles_no_statement(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 12)
    first = student_with(client, [subject])
    assert client.post(f"/api/mock-tests/{card_id(client, first, subject, 1)}/start", headers=first).status_code == 200
    student = student_with(client, [subject])
    card = card_id(client, student, subject, 1)

    worker = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"]))  # a new engine: nothing compiled
    warm_up(worker)
    taking = worker.test_client()
    path = f"/api/mock-tests/{card}"
    minimal = student | {"Prefer": "return=minimal"}
    with caplog.at_level(logging.INFO, logger=ENGINE_LOG):
        questions = [str(q["id"]) for q in taking.post(f"{path}/start", headers=student).get_json()["questions"]]
        full = {"marked_for_review": True, "time_spent_seconds": 30}
        for body in (
            {questions[0]: 1},
            {questions[0]: {"answer": 2, **full}},
            {questions[1]: 0, questions[2]: 3},
            {questions[1]: {"answer": 1, **full}, questions[2]: {"answer": None, **full}},
        ):
            assert taking.put(f"{path}/answers", json={"answers": body}, headers=minimal).status_code == 204
        assert taking.put(f"{path}/answers", json={"answers": {questions[3]: 1}}, headers=student).status_code == 200
        submitted = taking.post(f"{path}/submit", json={"answers": {questions[4]: 2}}, headers=student)
    assert submitted.status_code == 200
    assert submitted.get_json()["status"] == "completed"
    assert compiled_anew([r for r in caplog.records if r.name == ENGINE_LOG]) == []
    with worker.app_context():
        db.engine.dispose()


def test_a_database_that_does_not_answer_leaves_the_warm_up_to_the_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = create_app(app_config("mysql+pymysql://root@127.0.0.1:1/nowhere"))  # nothing listens on port 1
    warm_up(worker)
    assert any(
        message.startswith("Warm-up skipped (OperationalError): requests compile their statements.")
        for message in caplog.messages
    )
