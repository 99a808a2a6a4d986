"""Results students compare: analysis, rank, percentile, leaderboard, progress (SQLite and MariaDB)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from shared.extensions import db
from shared.models import Difficulty, MockTestAttempt, Question
from shared.services import cards
from shared.services.cards import record_ranking
from shared.services.results import masked_name
from tests.conftest import CheckedClient
from tests.support.accounts import bearer, create_admin, register
from tests.support.catalog import make_course
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.mock_tests import add_questions
from tests.support.purchases import make_purchase, student_with

DIFFICULTIES = ("easy", "medium", "hard")
# +3 / -1 / 0: equal marks can come with different wrong counts (2 right = 3 right, 3 wrong).
PATTERN = {"questions_per_paper": 6, "duration_minutes": 30, "single_correct": "3", "single_wrong": "-1"}


@dataclass
class Taken:
    headers: dict[str, str]
    card: int
    paper: int
    question_ids: list[int]


@pytest.fixture
def subject(app: Flask, client: FlaskClient, admin: dict[str, str]) -> int:
    subject_id = make_course(subjects=1).subject_ids[0]
    assert client.put(f"/api/subjects/{subject_id}/pattern", json=PATTERN, headers=admin).status_code == 200
    for n, question in enumerate(add_questions(subject_id, 6)):
        question.difficulty = Difficulty(DIFFICULTIES[n % 3])
    db.session.commit()
    return subject_id


def keys() -> dict[int, int]:
    return dict(db.session.execute(select(Question.id, Question.correct_option)).all())


def own_card(client: FlaskClient, headers: dict[str, str], subject: int, number: int = 1) -> int:
    """The caller's card `number` that is still available (the newest purchase's, after a rebuy)."""
    cards = client.get(f"/api/mock-tests?subject_id={subject}&per_page=100", headers=headers).get_json()["items"]
    return next(c["id"] for c in cards if c["test_number"] == number and c["status"] == "available")


def move_start_back(card_id: int, back: timedelta) -> None:
    card = db.session.get(MockTestAttempt, card_id, populate_existing=True)
    assert card is not None
    card.started_at -= back  # type: ignore[operator]
    card.deadline_at -= back  # type: ignore[operator]
    db.session.commit()


def take(
    client: FlaskClient,
    headers: dict[str, str],
    subject: int,
    outcomes: str,
    *,
    minutes_ago: int = 5,
    first_seconds: int = 0,
) -> Taken:
    """Start card 1, move its start `minutes_ago` back, answer position i right (r), wrong (w)
    or not at all (-), spend `first_seconds` on position 1, submit."""
    card = own_card(client, headers, subject)
    sheet = client.post(f"/api/mock-tests/{card}/start", headers=headers).get_json()
    move_start_back(card, timedelta(minutes=minutes_ago))
    key = keys()
    answers: dict[str, Any] = {}
    ids = [q["id"] for q in sheet["questions"]]
    for position, (question, outcome) in enumerate(zip(ids, outcomes, strict=True), 1):
        entry: dict[str, Any] = {}
        if outcome != "-":
            entry["answer"] = key[question] if outcome == "r" else (key[question] + 1) % 4
        if position == 1:
            entry["time_spent_seconds"] = first_seconds
        if entry:
            answers[str(question)] = entry
    saved = client.put(f"/api/mock-tests/{card}/answers", json={"answers": answers}, headers=headers)
    assert saved.status_code == 200, saved.get_json()
    submitted = client.post(f"/api/mock-tests/{card}/submit", json={}, headers=headers)
    assert submitted.status_code == 200, submitted.get_json()
    return Taken(headers=headers, card=card, paper=sheet["paper"]["id"], question_ids=ids)


def named_student(client: FlaskClient, subject: int, full_name: str) -> dict[str, str]:
    headers = bearer(register(client, full_name=full_name)["access_token"])
    make_purchase(client, headers, [subject])
    return headers


def staff_customer(client: FlaskClient, subject: int) -> dict[str, str]:
    """An admin who became a customer and bought the subject."""
    headers = bearer(create_admin(phone_number="+919811100042"))
    assert client.post("/api/customers/upgrade", json={}, headers=headers).status_code == 201
    make_purchase(client, headers, [subject])
    return headers


def analysis(client: FlaskClient, taken: Taken) -> dict[str, Any]:
    response = client.get(f"/api/mock-tests/{taken.card}/analysis", headers=taken.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def scenario(client: FlaskClient, admin: dict[str, str], subject: int) -> dict[str, Taken]:
    """Six first attempts of paper 1 version 1, a staff attempt, a second attempt, a version 2.

    a 18 marks; c and b 15 marks, 0 wrong, c faster; p 6 marks 0 wrong, q 6 marks 3 wrong;
    r 0 marks first, 18 on its second attempt (after a refund and a rebuy); staff 18.
    """
    took: dict[str, Taken] = {}
    took["a"] = take(client, named_student(client, subject, "Priya Sharma"), subject, "rrrrrr", first_seconds=10)
    took["b"] = take(client, student_with(client, [subject]), subject, "rrrrr-", minutes_ago=20, first_seconds=20)
    took["c"] = take(client, student_with(client, [subject]), subject, "rrrrr-", minutes_ago=10, first_seconds=30)
    took["p"] = take(client, student_with(client, [subject]), subject, "rr----", first_seconds=40)
    took["q"] = take(client, student_with(client, [subject]), subject, "rrrwww", first_seconds=50)
    r_headers = bearer(register(client, full_name="Al")["access_token"])
    bought = make_purchase(client, r_headers, [subject])["purchase"]
    took["r"] = take(client, r_headers, subject, "------", first_seconds=60)
    assert client.post(f"/api/purchases/{bought['id']}/refund", json={}, headers=admin).status_code == 201
    make_purchase(client, r_headers, [subject])
    took["r_again"] = take(client, r_headers, subject, "rrrrrr", minutes_ago=8, first_seconds=1000)
    took["staff"] = take(client, staff_customer(client, subject), subject, "rrrrrr", minutes_ago=8, first_seconds=1000)
    assert client.post(f"/api/papers/{took['a'].paper}/versions", headers=admin).status_code == 201
    took["v2"] = take(client, student_with(client, [subject]), subject, "rrrrrr", first_seconds=5)
    return took


def test_analysis_ranks_first_attempts_of_one_paper_version(client: FlaskClient, scenario: dict[str, Taken]) -> None:
    a = analysis(client, scenario["a"])
    assert (a["marks"], a["max_marks"], a["percent"]) == ("18.00", "18.00", "100.00")
    assert (a["correct"], a["wrong"], a["unanswered"], a["partial"], a["attempted"]) == (6, 0, 0, 0, 6)
    assert a["accuracy"] == "100.00"
    assert 300 <= a["time_taken_seconds"] < 360

    standings = {name: analysis(client, scenario[name]) for name in ("a", "b", "c", "p", "q", "r")}
    ranks = {name: (s["rank"], s["percentile"], s["participants"], s["ranked"]) for name, s in standings.items()}
    assert ranks == {
        "a": (1, "100.00", 6, True),
        "c": (2, "83.33", 6, True),  # 15 marks, 0 wrong, 10 minutes
        "b": (3, "83.33", 6, True),  # 15 marks, 0 wrong, 20 minutes: less time wins the tie
        "p": (4, "50.00", 6, True),  # 6 marks, 0 wrong
        "q": (5, "50.00", 6, True),  # 6 marks, 3 wrong: fewer wrong answers win the tie
        "r": (6, "16.67", 6, True),  # the first attempt counts, not the second
    }
    q = standings["q"]
    assert (q["marks"], q["correct"], q["wrong"], q["attempted"], q["accuracy"]) == ("6.00", 3, 3, 6, "50.00")
    assert (standings["p"]["attempted"], standings["p"]["accuracy"]) == (2, "100.00")
    assert (standings["r"]["attempted"], standings["r"]["accuracy"], standings["r"]["unanswered"]) == (0, None, 6)

    # Unranked cards: where they would stand among the participants, who stay six.
    for name in ("r_again", "staff"):
        unranked = analysis(client, scenario[name])
        assert (unranked["ranked"], unranked["participants"], unranked["percentile"]) == (False, 6, "100.00")
        assert unranked["rank"] == 2  # 18 marks like a, in more time
    # Another version of the paper is never ranked with version 1.
    v2 = analysis(client, scenario["v2"])
    assert v2["paper"]["version"] == 2
    assert (v2["rank"], v2["participants"], v2["percentile"], v2["ranked"]) == (1, 1, "100.00", True)


def test_marks_per_difficulty_and_time_against_the_median(client: FlaskClient, scenario: dict[str, Taken]) -> None:
    q = analysis(client, scenario["q"])
    difficulty = dict(db.session.execute(select(Question.id, Question.difficulty)).all())
    expected: dict[str, dict[str, Any]] = {}
    for position, question in enumerate(scenario["q"].question_ids, 1):
        level = difficulty[question].value
        row = expected.setdefault(level, {"questions": 0, "marks": 0, "correct": 0, "wrong": 0})
        row["questions"] += 1
        right = position <= 3  # "rrrwww"
        row["marks"] += 3 if right else -1
        row["correct" if right else "wrong"] += 1
    assert {
        d["difficulty"]: {"questions": d["questions"], "marks": int(Decimal(d["marks"])), "correct": d["correct"]}
        | {"wrong": d["wrong"]}
        for d in q["by_difficulty"]
    } == expected
    assert all(d["max_marks"] == f"{3 * d['questions']}.00" for d in q["by_difficulty"])
    assert sum(Decimal(d["marks"]) for d in q["by_difficulty"]) == Decimal(q["marks"])

    questions = q["questions"]
    assert [x["id"] for x in questions] == scenario["q"].question_ids
    assert [x["outcome"] for x in questions] == ["correct"] * 3 + ["wrong"] * 3
    assert [x["marks"] for x in questions] == ["3.00"] * 3 + ["-1.00"] * 3
    # Position 1: the six participants spent 10, 20, 30, 40, 50, 60 s; the staff's and the
    # second attempt's 1000 s are not counted. The median of six is the mean of the middle two.
    assert (questions[0]["time_spent_seconds"], questions[0]["median_time_seconds"]) == (50, "35.0")
    assert {x["median_time_seconds"] for x in questions[1:]} == {"0.0"}
    assert "correct_option" not in str(q)
    assert "explanation" not in str(q)


def test_the_analysis_opens_after_submission_to_the_owner_only(
    client: FlaskClient, admin: dict[str, str], subject: int
) -> None:
    student = student_with(client, [subject])
    card = own_card(client, student, subject)
    assert client.get(f"/api/mock-tests/{card}/analysis", headers=student).status_code == 409
    client.post(f"/api/mock-tests/{card}/start", headers=student)
    early = client.get(f"/api/mock-tests/{card}/analysis", headers=student)
    assert early.status_code == 409
    assert early.get_json()["type"].endswith("test-not-submitted")
    assert "Because" not in early.get_data(as_text=True)  # no explanation, no key
    other = student_with(client, [subject])
    assert client.get(f"/api/mock-tests/{card}/analysis", headers=other).status_code == 404
    client.post(f"/api/mock-tests/{card}/submit", json={}, headers=student)
    assert client.get(f"/api/mock-tests/{card}/analysis", headers=other).status_code == 404
    assert client.get(f"/api/mock-tests/{card}/analysis", headers=student).status_code == 200
    assert client.get(f"/api/mock-tests/{card}/analysis", headers=admin).status_code == 200


def test_an_overdue_card_is_finalised_and_ranked_when_its_analysis_is_read(client: FlaskClient, subject: int) -> None:
    student = student_with(client, [subject])
    card = own_card(client, student, subject)
    client.post(f"/api/mock-tests/{card}/start", headers=student)
    key = keys()
    first = client.get(f"/api/mock-tests/{card}", headers=student).get_json()
    assert first["status"] == "in_progress"
    sheet = client.post(f"/api/mock-tests/{card}/start", headers=student).get_json()
    question = sheet["questions"][0]["id"]
    client.put(f"/api/mock-tests/{card}/answers", json={"answers": {str(question): key[question]}}, headers=student)
    move_start_back(card, timedelta(hours=2))
    result = client.get(f"/api/mock-tests/{card}/analysis", headers=student).get_json()
    assert (result["card"]["status"], result["marks"], result["rank"], result["participants"]) == (
        "expired",
        "3.00",
        1,
        1,
    )
    assert result["time_taken_seconds"] == 30 * 60  # the whole duration, not the two hours


def test_the_analysis_sends_as_many_statements_for_two_participants_as_for_six(
    client: FlaskClient, subject: int, query_counter: Callable[[], Any]
) -> None:
    first = take(client, student_with(client, [subject]), subject, "rrrw--", first_seconds=5)
    take(client, student_with(client, [subject]), subject, "rr----", first_seconds=7)

    def statements() -> int:
        with query_counter() as queries:
            assert client.get(f"/api/mock-tests/{first.card}/analysis", headers=first.headers).status_code == 200
        return queries.count

    before = statements()
    for outcomes in ("rrrrrr", "------", "wwwwww", "rrr---"):
        take(client, student_with(client, [subject]), subject, outcomes)
    assert analysis(client, first)["participants"] == 6
    assert statements() == before


def test_the_leaderboard_masks_names_and_gives_the_callers_rank(
    client: FlaskClient, admin: dict[str, str], scenario: dict[str, Taken]
) -> None:
    paper = scenario["a"].paper
    board = client.get(f"/api/papers/{paper}/leaderboard", headers=scenario["a"].headers).get_json()
    assert board["participants"] == 6
    assert [(e["rank"], e["marks"], e["wrong_count"]) for e in board["entries"]] == [
        (1, "18.00", 0),
        (2, "15.00", 0),
        (3, "15.00", 0),
        (4, "6.00", 0),
        (5, "6.00", 3),
        (6, "0.00", 0),
    ]
    assert board["entries"][0]["name"] == "Pri*** S."
    assert board["entries"][5]["name"] == "A***"
    assert [e["you"] for e in board["entries"]] == [True] + [False] * 5
    assert board["entries"][1]["time_taken_seconds"] < board["entries"][2]["time_taken_seconds"]
    assert (board["you"]["rank"], board["you"]["name"], board["percentile"], board["ranked"]) == (
        1,
        "Priya Sharma",
        "100.00",
        True,
    )
    text = str(board)
    for secret in ("answer", "correct_option", "explanation", "email", "Student"):
        assert secret not in text

    # The second attempt's owner is ranked by the first attempt.
    r = client.get(f"/api/papers/{paper}/leaderboard?limit=2", headers=scenario["r"].headers).get_json()
    assert [e["rank"] for e in r["entries"]] == [1, 2]
    assert (r["you"]["rank"], r["you"]["marks"], r["percentile"], r["ranked"]) == (6, "0.00", "16.67", True)
    # Staff see where they would stand; they are not on the board.
    staff = client.get(f"/api/papers/{paper}/leaderboard", headers=scenario["staff"].headers).get_json()
    assert (staff["ranked"], staff["participants"], staff["you"]["rank"]) == (False, 6, 2)
    as_admin = client.get(f"/api/papers/{paper}/leaderboard?limit=100", headers=admin).get_json()
    assert (len(as_admin["entries"]), as_admin["you"], as_admin["percentile"]) == (6, None, None)

    # Only for those who submitted this paper version.
    refused = client.get(f"/api/papers/{paper}/leaderboard", headers=scenario["v2"].headers)
    assert refused.status_code == 403
    assert refused.get_json()["type"].endswith("paper-not-submitted")
    v2 = client.get(f"/api/papers/{scenario['v2'].paper}/leaderboard", headers=scenario["v2"].headers).get_json()
    assert (v2["participants"], [e["you"] for e in v2["entries"]]) == (1, [True])
    assert client.get(f"/api/papers/{paper}/leaderboard?limit=101", headers=admin).status_code == 422
    assert client.get(f"/api/papers/{paper}/leaderboard?limit=0", headers=admin).status_code == 422
    assert client.get("/api/papers/999999/leaderboard", headers=admin).status_code == 404


def test_names_are_masked() -> None:
    assert [masked_name(n) for n in ("Priya Sharma", "Rahul Kumar Verma", "Al", "Bo Li", "Ann", "  ")] == [
        "Pri*** S.",
        "Rah*** V.",
        "A***",
        "B*** L.",
        "A***",
        "***",
    ]


def test_progress_reports_marks_and_percent_per_subject(client: FlaskClient, subject: int) -> None:
    student = student_with(client, [subject])
    take(client, student, subject, "rrrww-")
    progress = client.get("/api/mock-tests/progress", headers=student).get_json()["subjects"]
    assert [(s["subject_id"], s["completed"]) for s in progress] == [(subject, 1)]
    (row,) = progress
    assert (row["average_marks"], row["best_marks"]) == ("7.00", "7.00")  # 3 * 3 - 2
    assert (row["average_score"], row["best_score"]) == ("38.89", "38.89")  # 7 of 18


def test_bank_edits_after_a_submission_change_no_review_score_or_analysis(
    client: FlaskClient, admin: dict[str, str], subject: int
) -> None:
    """README: later changes to the bank change no started or finished test."""
    taken = take(client, student_with(client, [subject]), subject, "rrw-rw", first_seconds=12)
    paths = [f"/api/mock-tests/{taken.card}{suffix}" for suffix in ("", "/review", "/analysis")]

    def reads() -> list[Any]:
        return [client.get(path, headers=taken.headers).get_json() for path in paths]

    before = reads()
    assert before[0]["marks"] == "7.00"
    first, second = taken.question_ids[:2]
    edit = {
        "text": "Rewritten",
        "options": ["W", "X", "Y", "Z", "V"],
        "correct_option": 4,
        "explanation": "New",
        "difficulty": "hard",
    }
    assert client.patch(f"/api/subjects/{subject}/questions/{first}", json=edit, headers=admin).status_code == 200
    assert client.delete(f"/api/subjects/{subject}/questions/{second}", headers=admin).status_code == 204
    numerical = {"type": "numerical", "options": [], "answer": "2.5", "tolerance": "0.1"}
    changed = client.patch(f"/api/subjects/{subject}/questions/{taken.question_ids[2]}", json=numerical, headers=admin)
    assert changed.status_code == 200, changed.get_json()
    new_pattern = {**PATTERN, "single_correct": "4", "single_wrong": "-2", "questions_per_paper": 3}
    assert client.put(f"/api/subjects/{subject}/pattern", json=new_pattern, headers=admin).status_code == 200
    assert reads() == before


def test_ranking_columns_follow_the_stored_marks(client: FlaskClient, subject: int) -> None:
    """A rescore (a regrade) changes marks only: the rank reads them as they are stored."""
    low = take(client, student_with(client, [subject]), subject, "r-----")
    high = take(client, student_with(client, [subject]), subject, "rrr---")
    assert (analysis(client, low)["rank"], analysis(client, high)["rank"]) == (2, 1)
    db.session.execute(update(MockTestAttempt).where(MockTestAttempt.id == low.card).values(marks=Decimal("17")))
    db.session.commit()
    assert (analysis(client, low)["rank"], analysis(client, high)["rank"]) == (1, 2)


def two_started_cards_of_one_paper(client: FlaskClient) -> tuple[dict[str, str], list[int]]:
    """A student who started card 1, was refunded, bought the subject again and started the
    new card 1: two cards of one paper version."""
    admin = bearer(create_admin())
    subject = make_course(subjects=1).subject_ids[0]
    add_questions(subject, 6)
    student = bearer(register(client)["access_token"])
    bought = make_purchase(client, student, [subject])["purchase"]
    cards = [own_card(client, student, subject)]
    client.post(f"/api/mock-tests/{cards[0]}/start", headers=student)
    assert client.post(f"/api/purchases/{bought['id']}/refund", json={}, headers=admin).status_code == 201
    make_purchase(client, student, [subject])
    cards.append(own_card(client, student, subject))
    client.post(f"/api/mock-tests/{cards[1]}/start", headers=student)
    return student, cards


def test_a_customers_second_card_scored_on_a_stale_snapshot_stays_unranked(
    mariadb: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cards of one customer and paper scored at once: the unique index
    (paper_id, customer_id, ranked) refuses the second ranked row, and scoring goes on with
    that card unranked (the refused statement alone is undone)."""
    mariadb.test_client_class = CheckedClient
    client = mariadb.test_client()
    student, (first, second) = two_started_cards_of_one_paper(client)

    refused: list[bool] = []
    record = cards._record_ranking_columns

    def watched(session: Session, times: dict[int, int], ranked: set[int]) -> bool:
        refused.append(not record(session, times, ranked))
        return not refused[-1]

    monkeypatch.setattr(cards, "_record_ranking_columns", watched)
    with db.engine.connect() as connection, Session(bind=connection) as stale:
        stale.execute(select(MockTestAttempt.ranked).where(MockTestAttempt.id == second)).all()  # the snapshot
        assert client.post(f"/api/mock-tests/{first}/submit", json={}, headers=student).status_code == 200
        record_ranking(stale, [second])
        stale.commit()
    # The first submit ranked its card (in the statement that scored it); the stale snapshot
    # did not see it, the unique index did; then the time alone, and the card alone (refused again).
    assert refused == [True, False, True]
    db.session.remove()
    ranked = dict(db.session.execute(select(MockTestAttempt.id, MockTestAttempt.ranked)).all())
    assert (ranked[first], ranked[second]) == (True, None)


def submit_in_context(app: Flask, client: FlaskClient, path: str, headers: dict[str, str]) -> Any:
    with app.app_context():  # a thread of its own
        return client.post(path, json={}, headers=headers)


def test_a_submit_that_meets_a_ranking_not_yet_committed_leaves_its_card_unranked(mariadb: Flask) -> None:
    """A submit ranks its card in the statement that scores it. While another attempt of the
    customer's paper is being ranked by a transaction not yet committed, the unique index
    (paper_id, customer_id, ranked) makes that statement wait, then refuses it alone: the card
    is scored, unranked."""
    client = mariadb.test_client()
    student, (first, second) = two_started_cards_of_one_paper(client)
    db.session.remove()
    with db.engine.connect() as connection, ThreadPoolExecutor(1) as pool:
        connection.execute(update(MockTestAttempt).where(MockTestAttempt.id == first).values(ranked=True))
        submitted = pool.submit(submit_in_context, mariadb, client, f"/api/mock-tests/{second}/submit", student)
        scoring = text(
            "SELECT COUNT(*) FROM information_schema.processlist "
            "WHERE info LIKE 'UPDATE mock_test_attempts SET status%'"
        )
        for _ in range(200):  # until the submit runs the statement that ranks (and waits)
            if submitted.done() or db.session.execute(scoring).scalar_one():
                break
            db.session.remove()
            time.sleep(0.05)
        connection.commit()
        response = submitted.result(timeout=60)
    assert response.status_code == 200
    assert response.get_json()["status"] == "completed"
    db.session.remove()
    ranked = dict(db.session.execute(select(MockTestAttempt.id, MockTestAttempt.ranked)).all())
    assert (ranked[first], ranked[second]) == (True, None)


@pytest.mark.race
def test_two_cards_of_one_paper_submitted_at_once_rank_one(mariadb: Flask, live_server: LiveServer) -> None:
    """A customer holding two cards of one paper (bought again after a refund) submits both at
    once on gunicorn: both are scored, exactly one is ranked."""
    client = mariadb.test_client()
    student, cards = two_started_cards_of_one_paper(client)
    db.session.remove()

    def submit(index: int) -> requests.Response:
        return requests.post(
            live_server.url(f"/api/mock-tests/{cards[index]}/submit"), json={}, headers=student, timeout=60
        )

    assert [r.status_code for r in fire_concurrently(2, submit)] == [200, 200], live_server.log_tail()
    ranked = db.session.execute(
        select(MockTestAttempt.ranked).where(MockTestAttempt.id.in_(cards)).order_by(MockTestAttempt.id)
    ).scalars()
    assert sorted(ranked, key=str) == [None, True]
