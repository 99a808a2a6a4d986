"""Regrades of a frozen paper: a corrected key or a dropped question rescores every submitted
card of that paper version at once (SQLite and MariaDB), and races with submits and with
other regrades on gunicorn (MariaDB)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

from shared.extensions import db
from shared.models import MockTestAttempt, PaperQuestion, PaperRegrade, Question, QuestionVersion
from shared.models.base import utcnow
from shared.services.cards import MockTestService
from tests.support.accounts import bearer, create_admin
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.mock_tests import JEE_ADVANCED, add_questions, card_id, correct_options
from tests.support.purchases import student_with

BANK = [
    {"type": "single", "text": "2 + 2?", "options": ["3", "4", "5"], "correct_option": 1},
    {"type": "multiple", "text": "Primes?", "options": ["2", "4", "5", "9"], "correct_options": [0, 2]},
    {"type": "numerical", "text": "pi?", "answer": "3.14", "decimal_places": 2},
]
# What each student answers, by question type.
RIGHT = {"single": 1, "multiple": [0, 2], "numerical": "3.14"}
MIXED = {"single": 0, "multiple": [0], "numerical": "2.72"}  # wrong, partial, wrong


class Exam:
    """A subject with the JEE Advanced pattern and one question of each type; paper 1 of it."""

    def __init__(self, client: FlaskClient, admin: dict[str, str]) -> None:
        self.client, self.admin = client, admin
        self.subject = make_course(subjects=1).subject_ids[0]
        assert client.put(f"/api/subjects/{self.subject}/pattern", json=JEE_ADVANCED, headers=admin).status_code == 200
        made = client.post(f"/api/subjects/{self.subject}/questions/import", json={"questions": BANK}, headers=admin)
        self.ids = {q["type"]: q["id"] for q in made.get_json()["questions"]}
        self.paper_id = 0
        self.position: dict[str, int] = {}

    def start(self, number: int = 1) -> tuple[dict[str, str], int]:
        """A new student who bought the subject and started test `number`: headers, card id."""
        student = student_with(self.client, [self.subject])
        card = card_id(self.client, student, self.subject, number)
        sheet = self.client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
        self.paper_id = sheet["paper"]["id"]
        self.position = {q["type"]: q["position"] for q in sheet["questions"]}
        return student, card

    def submit(self, student: dict[str, str], card: int, answers: dict[str, Any]) -> dict[str, Any]:
        body = {"answers": {str(self.ids[kind]): answer for kind, answer in answers.items()}}
        response = self.client.post(f"/api/mock-tests/{card}/submit", json=body, headers=student)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def take(self, answers: dict[str, Any]) -> tuple[dict[str, str], int]:
        student, card = self.start()
        self.submit(student, card, answers)
        return student, card

    def regrade(self, kind: str, action: str = "correct_key", **key: Any) -> Any:
        body = {"position": self.position[kind], "action": action, **key}
        return self.client.post(f"/api/papers/{self.paper_id}/regrade", json=body, headers=self.admin)

    def marks(self, student: dict[str, str], card: int) -> str:
        return self.client.get(f"/api/mock-tests/{card}", headers=student).get_json()["marks"]


@pytest.fixture
def exam(client: FlaskClient, admin: dict[str, str]) -> Exam:
    return Exam(client, admin)


def test_a_corrected_key_rescores_every_submitted_card_of_each_type(exam: Exam, admin: dict[str, str]) -> None:
    mixed = exam.take(MIXED)
    right = exam.take(RIGHT)
    later = exam.start()  # in progress during the regrades: submitted after them
    assert (exam.marks(*mixed), exam.marks(*right)) == ("0.00", "10.00")  # -1 + 1 (partial) + 0

    single = exam.regrade("single", correct_option=0)
    assert single.status_code == 201, single.get_json()
    assert single.headers["Location"].endswith(f"/api/papers/{exam.paper_id}/regrades")
    done = single.get_json()
    assert (done["action"], done["position"], done["question_id"]) == (
        "correct_key",
        exam.position["single"],
        exam.ids["single"],
    )
    assert (done["old_key"], done["new_key"]) == ({"correct_option": 1}, {"correct_option": 0})
    assert (done["attempts_rescored"], done["scores_changed"]) == (2, 2)
    assert done["admin_id"] is not None
    assert done["created_at"]
    assert (exam.marks(*mixed), exam.marks(*right)) == ("4.00", "6.00")

    multiple = exam.regrade("multiple", correct_options=[0]).get_json()
    assert (multiple["old_key"], multiple["new_key"]) == ({"correct_options": [0, 2]}, {"correct_options": [0]})
    assert (multiple["attempts_rescored"], multiple["scores_changed"]) == (2, 2)
    assert (exam.marks(*mixed), exam.marks(*right)) == ("7.00", "0.00")  # [0] now right; [0, 2] has a wrong one

    numerical = exam.regrade("numerical", answer="2.72", tolerance="0.01").get_json()
    assert (numerical["old_key"], numerical["new_key"]) == (
        {"answer": "3.14", "tolerance": "0.005"},
        {"answer": "2.72", "tolerance": "0.01"},
    )
    assert (exam.marks(*mixed), exam.marks(*right)) == ("10.00", "-3.00")
    card = exam.client.get(f"/api/mock-tests/{mixed[1]}", headers=mixed[0]).get_json()
    assert (card["score"], card["correct_count"], card["wrong_count"]) == ("100.00", 3, 0)

    # The card in progress during the regrades is scored with the new keys.
    assert exam.submit(*later, RIGHT)["marks"] == "-3.00"
    listed = exam.client.get(f"/api/papers/{exam.paper_id}/regrades", headers=admin).get_json()["regrades"]
    assert [r["id"] for r in listed] == [done["id"], multiple["id"], numerical["id"]]
    assert listed[0] == done


def test_a_regrade_with_decimal_places_and_the_unchanged_key_is_409(exam: Exam) -> None:
    exam.take(MIXED)
    same = exam.regrade("single", correct_option=1)
    assert same.status_code == 409
    assert same.get_json()["type"].endswith("regrade-no-change")
    same_number = exam.regrade("numerical", answer="3.140", decimal_places=2)
    assert same_number.status_code == 409
    places = exam.regrade("numerical", answer="2.72", decimal_places=1).get_json()
    assert places["new_key"] == {"answer": "2.72", "tolerance": "0.05"}
    assert db.session.scalar(select(PaperRegrade.id).where(PaperRegrade.new_key.is_(None))) is None


def test_a_dropped_question_gives_full_marks_to_all(exam: Exam) -> None:
    mixed = exam.take(MIXED)
    right = exam.take(RIGHT)
    blank = exam.take({})
    assert [exam.marks(*s) for s in (mixed, right, blank)] == ["0.00", "10.00", "0.00"]

    dropped = exam.regrade("multiple", action="drop")
    assert dropped.status_code == 201, dropped.get_json()
    body = dropped.get_json()
    assert (body["old_key"], body["new_key"]) == ({"correct_options": [0, 2]}, None)
    assert (body["attempts_rescored"], body["scores_changed"]) == (3, 2)
    assert [exam.marks(*s) for s in (mixed, right, blank)] == ["3.00", "10.00", "4.00"]

    review = exam.client.get(f"/api/mock-tests/{blank[1]}/review", headers=blank[0]).get_json()
    question = next(q for q in review["questions"] if q["position"] == exam.position["multiple"])
    assert (question["dropped"], question["outcome"], question["marks"]) == (True, "correct", "4.00")
    assert question["regrade_note"] == f"Dropped on {body['created_at'][:10]}: full marks to all."
    assert [q["regrade_note"] for q in review["questions"] if q["position"] != exam.position["multiple"]] == [
        None,
        None,
    ]
    assert review["regrades"] == [
        {
            "position": exam.position["multiple"],
            "question_id": exam.ids["multiple"],
            "action": "drop",
            "regraded_at": body["created_at"],
            "note": question["regrade_note"],
        }
    ]
    assert "admin_id" not in str(review)
    assert "old_key" not in str(review)

    again = exam.regrade("multiple", action="drop")
    assert (again.status_code, again.get_json()["type"].split(":")[-1]) == (409, "question-dropped")
    rekeyed = exam.regrade("multiple", correct_options=[1])
    assert rekeyed.status_code == 409


def test_a_corrected_key_shows_in_the_review_only_after_submission(exam: Exam) -> None:
    student, card = exam.start()
    exam.regrade("single", correct_option=2)
    assert exam.client.get(f"/api/mock-tests/{card}/review", headers=student).status_code == 409
    sheet = exam.client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    assert "regrade" not in str(sheet)
    assert "correct_option" not in str(sheet)
    exam.submit(student, card, {"single": 2})
    review = exam.client.get(f"/api/mock-tests/{card}/review", headers=student).get_json()
    single = next(q for q in review["questions"] if q["type"] == "single")
    assert (single["correct_option"], single["outcome"], single["marks"]) == (2, "correct", "3.00")
    assert single["regrade_note"].startswith("Key corrected on ")
    assert [r["action"] for r in review["regrades"]] == ["correct_key"]


def bank_keys() -> dict[int, Any]:
    return {q.id: (q.correct_option, q.correct_options, q.answer) for q in db.session.scalars(select(Question))}


def version_keys() -> dict[int, Any]:
    return {v.id: (v.correct_option, v.correct_options, v.answer) for v in db.session.scalars(select(QuestionVersion))}


def test_a_regrade_changes_only_this_paper_version_never_the_bank(exam: Exam, admin: dict[str, str]) -> None:
    first = exam.take(RIGHT)
    first_paper = exam.paper_id
    published = exam.client.post(f"/api/papers/{first_paper}/versions", headers=admin)
    assert published.status_code == 201
    second = exam.take(RIGHT)
    second_paper, second_positions = exam.paper_id, dict(exam.position)
    assert second_paper != first_paper
    bank, versions = bank_keys(), version_keys()
    db.session.remove()

    exam.paper_id = first_paper
    exam.position = {
        kind: db.session.scalar(
            select(PaperQuestion.position).where(
                PaperQuestion.paper_id == first_paper, PaperQuestion.question_id == exam.ids[kind]
            )
        )
        for kind in exam.ids
    }
    assert exam.regrade("single", correct_option=2).get_json()["attempts_rescored"] == 1
    assert (exam.marks(*first), exam.marks(*second)) == ("6.00", "10.00")
    assert bank_keys() == bank
    assert version_keys() == versions
    other = db.session.scalars(select(PaperQuestion).where(PaperQuestion.paper_id == second_paper)).all()
    assert {q.position: q.key_mask for q in other if q.type.value == "single"} == {second_positions["single"]: 0b10}
    assert exam.client.get(f"/api/papers/{second_paper}/regrades", headers=admin).get_json() == {"regrades": []}


def test_regrades_are_for_admins(exam: Exam, client: FlaskClient) -> None:
    student, _card = exam.take(RIGHT)
    body = {"position": 1, "action": "drop"}
    path = f"/api/papers/{exam.paper_id}"
    assert client.post(f"{path}/regrade", json=body).status_code == 401
    assert client.post(f"{path}/regrade", json=body, headers=student).status_code == 403
    assert client.get(f"{path}/regrades").status_code == 401
    assert client.get(f"{path}/regrades", headers=student).status_code == 403
    assert client.post("/api/papers/999999/regrade", json=body, headers=exam.admin).status_code == 404
    assert client.get("/api/papers/999999/regrades", headers=exam.admin).status_code == 404
    missing = client.post(f"{path}/regrade", json={"position": 4, "action": "drop"}, headers=exam.admin)
    assert missing.status_code == 404
    assert db.session.scalar(select(PaperRegrade.id)) is None


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("single", {"correct_option": 3}, "correct_option"),  # three options: 0..2
        ("single", {"correct_options": [1]}, "correct_options"),  # not a single's key
        ("single", {}, "correct_option"),
        ("multiple", {"correct_options": []}, "correct_options"),
        ("multiple", {"correct_options": [1, 1]}, "correct_options"),
        ("multiple", {"correct_options": [4]}, "correct_options"),  # four options: 0..3
        ("numerical", {"tolerance": "0.1"}, "answer"),
        ("numerical", {"answer": "pi"}, "answer"),
        ("numerical", {"answer": "3.14", "tolerance": "0.1", "decimal_places": 2}, "tolerance"),
        ("numerical", {"answer": "3.14", "correct_option": 1}, "correct_option"),
        ("single", {"action": "drop", "correct_option": 1}, "correct_option"),
        ("single", {"action": "undo"}, "action"),
        ("single", {"position": 0}, "position"),
    ],
)
def test_a_key_that_does_not_fit_the_question_is_422_on_its_field(
    exam: Exam, kind: str, body: dict[str, Any], field: str
) -> None:
    exam.take(RIGHT)
    sent = {"position": exam.position[kind], "action": "correct_key", **body}
    refused = exam.client.post(f"/api/papers/{exam.paper_id}/regrade", json=sent, headers=exam.admin)
    assert refused.status_code == 422, refused.get_json()
    assert field in refused.get_json()["errors"], refused.get_json()
    keys = db.session.scalars(select(PaperQuestion.key_mask).where(PaperQuestion.paper_id == exam.paper_id)).all()
    assert sorted(k for k in keys if k is not None) == [0b10, 0b101]


def test_a_regrade_sends_the_same_statements_for_one_card_and_for_many(exam: Exam, query_counter: Any) -> None:
    exam.take(MIXED)
    with query_counter() as one:
        assert exam.regrade("single", correct_option=0).get_json()["attempts_rescored"] == 1
    for _ in range(4):
        exam.take(RIGHT)
    with query_counter() as many:
        assert exam.regrade("single", correct_option=2).get_json()["attempts_rescored"] == 5
    assert one.count == many.count, many


# ---------------------------------------------------------------- races on gunicorn (MariaDB)


def _single_paper(client: FlaskClient, students: int) -> tuple[int, list[tuple[dict[str, str], int]], dict[str, Any]]:
    """A default-pattern subject (+1 per right answer, 10 questions), `students` cards of
    paper 1 started: the subject, the (headers, card) pairs, the sheet."""
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 10)
    cards = []
    sheet: dict[str, Any] = {}
    for _ in range(students):
        student = student_with(client, [subject])
        card = card_id(client, student, subject, 1)
        sheet = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
        cards.append((student, card))
    return subject, cards, sheet


@pytest.mark.race
def test_a_regrade_racing_submits_leaves_every_card_scored_with_the_new_key(
    mariadb: Flask, live_server: LiveServer
) -> None:
    client = mariadb.test_client()
    _subject, cards, sheet = _single_paper(client, 8)
    key = correct_options()
    first = sheet["questions"][0]
    new_option = (key[first["id"]] + 1) % 4
    # Everybody answers question 1 with the option the regrade makes right, the rest right.
    answers = {str(q["id"]): key[q["id"]] for q in sheet["questions"]} | {str(first["id"]): new_option}
    for student, card in cards:
        saved = client.put(f"/api/mock-tests/{card}/answers", json={"answers": answers}, headers=student)
        assert saved.status_code == 200
    admin = bearer(create_admin())
    paper = sheet["paper"]["id"]
    db.session.remove()

    def send(n: int) -> requests.Response:
        if n == len(cards) // 2:
            body = {"position": first["position"], "action": "correct_key", "correct_option": new_option}
            return requests.post(live_server.url(f"/api/papers/{paper}/regrade"), json=body, headers=admin, timeout=60)
        student, card = cards[n if n < len(cards) // 2 else n - 1]
        return requests.post(live_server.url(f"/api/mock-tests/{card}/submit"), json={}, headers=student, timeout=60)

    answered = fire_concurrently(len(cards) + 1, send)
    assert Counter(r.status_code for r in answered) == {200: len(cards), 201: 1}, live_server.log_tail()
    regrade = answered[len(cards) // 2].json()
    assert regrade["scores_changed"] == regrade["attempts_rescored"] <= len(cards)
    marks = db.session.scalars(select(MockTestAttempt.marks).where(MockTestAttempt.paper_id == paper)).all()
    assert [str(m) for m in marks] == ["10.00"] * len(cards)


@pytest.mark.race
def test_concurrent_regrades_of_one_question_serialize_and_are_audited_in_order(
    mariadb: Flask, live_server: LiveServer
) -> None:
    client = mariadb.test_client()
    _subject, cards, sheet = _single_paper(client, 3)
    key = correct_options()
    first = sheet["questions"][0]
    original = key[first["id"]]
    for student, card in cards:
        body = {"answers": {str(q["id"]): key[q["id"]] for q in sheet["questions"]}}
        assert client.post(f"/api/mock-tests/{card}/submit", json=body, headers=student).status_code == 200
    admin = bearer(create_admin())
    paper = sheet["paper"]["id"]
    others = [option for option in range(4) if option != original]
    db.session.remove()

    def send(n: int) -> requests.Response:
        body = {"position": first["position"], "action": "correct_key", "correct_option": others[n]}
        return requests.post(live_server.url(f"/api/papers/{paper}/regrade"), json=body, headers=admin, timeout=60)

    answered = fire_concurrently(len(others), send)
    assert [r.status_code for r in answered] == [201] * len(others), live_server.log_tail()
    audit = db.session.scalars(
        select(PaperRegrade).where(PaperRegrade.paper_id == paper).order_by(PaperRegrade.id)
    ).all()
    assert len(audit) == len(others)
    assert audit[0].old_key == {"correct_option": original}
    for earlier, later in itertools.pairwise(audit):
        assert later.old_key == earlier.new_key
    # Only the first regrade took the right answer away from everybody; the others changed nothing.
    assert [(r.attempts_rescored, r.scores_changed) for r in audit] == [(3, 3), (3, 0), (3, 0)]
    final = db.session.scalar(
        select(PaperQuestion.key_mask).where(
            PaperQuestion.paper_id == paper, PaperQuestion.position == first["position"]
        )
    )
    assert final == 1 << audit[-1].new_key["correct_option"]
    marks = db.session.scalars(select(MockTestAttempt.marks).where(MockTestAttempt.paper_id == paper)).all()
    assert [str(m) for m in marks] == ["9.00"] * 3


# Transactions of this database waiting for a lock on a row of `papers`.
WAITING_FOR_PAPERS = text(
    "SELECT COUNT(*) FROM information_schema.INNODB_TRX t "
    "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
    "WHERE p.DB = DATABASE() AND t.trx_state = 'LOCK WAIT' AND t.trx_query LIKE '%FROM papers%'"
)


def _while_a_regrade_holds_the_paper(
    app: Flask, paper: int, position: int, new_option: int, scoring: Callable[[], Any]
) -> tuple[int, list[Any]]:
    """Hold the paper's row as a regrade does, run `scoring` on a thread, wait until it waits
    for that row (or is done), then write the new key and commit: how many waited, and what
    `scoring` returned by then and in the end."""
    outcomes: list[Any] = []

    def run() -> None:
        with app.app_context():
            outcomes.append(scoring())

    regrade = db.engine.connect()
    transaction = regrade.begin()
    regrade.execute(text("SELECT id FROM papers WHERE id = :id FOR UPDATE"), {"id": paper})
    worker = threading.Thread(target=run)
    worker.start()
    waiting = 0
    with db.engine.connect() as watcher:
        while not waiting and not outcomes and worker.is_alive():
            time.sleep(0.2)  # InnoDB refreshes INNODB_TRX for a reader idle for 0.1 s at least
            waiting = watcher.execute(WAITING_FOR_PAPERS).scalar_one()
    early = list(outcomes)
    regrade.execute(
        text("UPDATE paper_questions SET key_mask = :mask WHERE paper_id = :paper AND position = :position"),
        {"mask": 1 << new_option, "paper": paper, "position": position},
    )
    transaction.commit()
    regrade.close()
    worker.join()
    assert early == [], "it scored while the regrade held the paper"
    return waiting, outcomes


@pytest.mark.race
def test_a_submit_or_finalisation_waits_for_a_regrade_holding_the_paper_and_scores_with_its_key(
    mariadb: Flask,
) -> None:
    """While a regrade holds the paper's row (its key not yet written), a submit and the
    overdue finalisation of cards of that paper wait, then score with the key it commits:
    never with the old key after the regrade answered."""
    client = mariadb.test_client()
    _subject, cards, sheet = _single_paper(client, 2)
    key = correct_options()
    first = sheet["questions"][0]
    new_option = (key[first["id"]] + 1) % 4
    answers = {str(q["id"]): key[q["id"]] for q in sheet["questions"]} | {str(first["id"]): new_option}
    (submitter, submitted), (_late, overdue) = cards
    for student, card in cards:
        client.put(f"/api/mock-tests/{card}/answers", json={"answers": answers}, headers=student)
    past = utcnow() - timedelta(seconds=mariadb.config["MOCK_TEST_GRACE_SECONDS"] + 60)
    db.session.execute(update(MockTestAttempt).where(MockTestAttempt.id == overdue).values(deadline_at=past))
    db.session.commit()
    paper = sheet["paper"]["id"]
    db.session.remove()

    def submit() -> int:
        return mariadb.test_client().post(f"/api/mock-tests/{submitted}/submit", json={}, headers=submitter).status_code

    # The regrade makes the students' answer right: the submit scores it right.
    assert _while_a_regrade_holds_the_paper(mariadb, paper, first["position"], new_option, submit) == (1, [200])
    # A second regrade makes it wrong again: the finalisation scores it wrong.
    other_option = (new_option + 1) % 4
    finalised = _while_a_regrade_holds_the_paper(
        mariadb, paper, first["position"], other_option, MockTestService.finalize_overdue
    )
    assert finalised == (1, [1])
    marks = db.session.execute(
        select(MockTestAttempt.id, MockTestAttempt.marks).where(MockTestAttempt.id.in_([submitted, overdue]))
    ).all()
    assert {card: str(mark) for card, mark in marks} == {submitted: "10.00", overdue: "9.00"}
