"""The floors of scripts/bench_api.py, served by gunicorn exactly like the app.

- `GET /bare`, `POST /bare`: bare Flask, no database (the 304 and the purchase compare here).
- `GET /floor/courses`: the least work the public course list needs: one raw PyMySQL
  connection per thread, the count and the page with its subject figures, JSON.
- `GET /floor/mock-tests`: the least work a caller's card list needs: verify the token
  with PyJWT, check account and session and find the customer in one statement, the
  count and the page with subject names, JSON with the fields of the app's answer.
- `POST /floor/mock-tests/<id>/start`, `PUT .../answers`, `POST .../submit` (scripts/bench_exam.py):
  the least work of taking a test. The same token and account check, then in one
  transaction: the caller's card `SELECT ... FOR UPDATE`; for a start, the paper and the
  answer rows if it was not started, and the sheet (questions with text and options, and
  what is saved) as the app's start answers it; for a save, the paper's question
  types, one `UPDATE` of the card's answer rows, `COMMIT` and the saved answers as JSON;
  for a submit, the same and two set-based `UPDATE`s that score the answers and the card.

Settings from the environment: FLOOR_DATABASE_URL (mysql+pymysql://...), JWT_SECRET_KEY.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

import jwt
import pymysql
from flask import Flask, Response, abort, jsonify, request
from sqlalchemy.engine import make_url

app = Flask(__name__)
_local = threading.local()


def connection() -> pymysql.Connection:
    if getattr(_local, "connection", None) is None:
        url = make_url(os.environ["FLOOR_DATABASE_URL"])
        _local.connection = pymysql.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            autocommit=True,
            charset="utf8mb4",
        )
    return _local.connection


def query(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with connection().cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    if isinstance(value, datetime):
        return value.isoformat() + "+00:00"
    return value


def page_answer(items: list[dict[str, Any]], page: int, per_page: int, total: int) -> Response:
    body = {"items": items, "page": page, "per_page": per_page, "total": total, "pages": -(-total // per_page)}
    return Response(json.dumps(body, default=plain), mimetype="application/json")


def page_arguments() -> tuple[int, int]:
    return int(request.args.get("page", 1)), int(request.args.get("per_page", 20))


@app.get("/bare")
def bare_get() -> Response:
    return jsonify(status="ok")


@app.post("/bare")
def bare_post() -> tuple[Response, int]:
    return jsonify(received=request.get_json(silent=True)), 201


COURSE_FIELDS = ("id", "slug", "title", "description", "is_active", "subject_count", "min_price", "max_price")


@app.get("/floor/courses")
def floor_courses() -> Response:
    page, per_page = page_arguments()
    (total,) = query("SELECT COUNT(*) FROM courses WHERE is_active")[0]
    rows = query(
        "SELECT c.id, c.slug, c.title, c.description, c.is_active, COUNT(s.id), MIN(s.price), MAX(s.price) "
        "FROM courses c LEFT JOIN subjects s ON s.course_id = c.id AND s.is_active WHERE c.is_active "
        "GROUP BY c.id ORDER BY c.title, c.id LIMIT %s OFFSET %s",
        per_page,
        (page - 1) * per_page,
    )
    items = [{**dict(zip(COURSE_FIELDS, row, strict=True)), "currency": "INR"} for row in rows]
    for item in items:
        item["is_active"] = bool(item["is_active"])
    return page_answer(items, page, per_page, total)


CARD_FIELDS = (
    "id",
    "purchase_id",
    "subject_id",
    "subject_name",
    "test_number",
    "status",
    "paper_id",
    "question_count",
    "correct_count",
    "wrong_count",
    "unanswered_count",
    "marks",
    "score",
    "started_at",
    "deadline_at",
    "submitted_at",
)


def customer_of_token() -> int:
    """The caller's customer id: the token verified with PyJWT, account and session in one statement."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, os.environ["JWT_SECRET_KEY"], algorithms=["HS256"])
    except jwt.PyJWTError:
        abort(401)
    principal = query(
        "SELECT u.is_active, c.id FROM users u "
        "JOIN user_sessions s ON s.user_id = u.id AND s.id = %s AND s.ended_at IS NULL "
        "LEFT JOIN customers c ON c.user_id = u.id WHERE u.id = %s",
        claims.get("sid"),
        int(claims["sub"]),
    )
    if not principal or not principal[0][0] or principal[0][1] is None:
        abort(401)
    return principal[0][1]


@app.get("/floor/mock-tests")
def floor_cards() -> Response:
    customer_id = customer_of_token()
    page, per_page = page_arguments()
    (total,) = query("SELECT COUNT(*) FROM mock_test_attempts WHERE customer_id = %s", customer_id)[0]
    rows = query(
        "SELECT a.id, a.purchase_id, a.subject_id, s.name, a.test_number, a.status, a.paper_id, a.question_count, "
        "a.correct_count, a.wrong_count, a.unanswered_count, a.marks, a.score, a.started_at, a.deadline_at, "
        "a.submitted_at "
        "FROM mock_test_attempts a JOIN subjects s ON s.id = a.subject_id WHERE a.customer_id = %s "
        "ORDER BY a.subject_id, a.test_number, a.id LIMIT %s OFFSET %s",
        customer_id,
        per_page,
        (page - 1) * per_page,
    )
    return page_answer([dict(zip(CARD_FIELDS, row, strict=True)) for row in rows], page, per_page, total)


# ---------------------------------------------------------------- taking a test (bench_exam)


def locked_card(card_id: int, customer_id: int) -> tuple[Any, ...]:
    """(id, status, paper_id, subject_id, test_number) of the caller's card, locked; 404 otherwise."""
    rows = query(
        "SELECT id, status, paper_id, subject_id, test_number FROM mock_test_attempts "
        "WHERE id = %s AND customer_id = %s FOR UPDATE",
        card_id,
        customer_id,
    )
    if not rows:
        abort(404)
    return rows[0]


def write_answers(card_id: int, paper_id: int, answers: dict[str, Any]) -> dict[str, Any]:
    """Check each answer against its question's type, then one UPDATE of the answer rows."""
    questions = {
        str(question_id): (position, kind, options)
        for question_id, position, kind, options in query(
            "SELECT question_id, position, type, option_count FROM paper_questions WHERE paper_id = %s", paper_id
        )
    }
    masks, values, marked, spent = {}, {}, {}, {}
    for question_id, given in answers.items():
        entry = given if isinstance(given, dict) else {"answer": given}
        if question_id not in questions:
            abort(422)
        position, kind, options = questions[question_id]
        answer = entry.get("answer")
        if "answer" in entry:
            if answer is None:
                masks[position], values[position] = None, None
            elif kind == "numerical":
                masks[position], values[position] = None, Decimal(answer)
            elif kind == "single":
                if not 0 <= answer < options:
                    abort(422)
                masks[position], values[position] = 1 << answer, None
            else:
                if not all(0 <= option < options for option in answer):
                    abort(422)
                masks[position], values[position] = sum(1 << option for option in set(answer)) or None, None
        if entry.get("marked_for_review") is not None:
            marked[position] = bool(entry["marked_for_review"])
        if entry.get("time_spent_seconds") is not None:
            spent[position] = int(entry["time_spent_seconds"])
    sets, args = [], []
    for name, given in (
        ("choice_mask", masks),
        ("value", values),
        ("marked_for_review", marked),
        ("time_spent_seconds", spent),
    ):
        if given:
            sets.append(f"{name} = CASE position {' '.join('WHEN %s THEN %s' for _ in given)} ELSE {name} END")
            args += [item for pair in given.items() for item in pair]
    positions = sorted(set(masks) | set(marked) | set(spent))
    if sets:
        in_list = ",".join(["%s"] * len(positions))
        query(
            f"UPDATE attempt_answers SET {', '.join(sets)} WHERE card_id = %s AND position IN ({in_list})",  # noqa: S608
            *args,
            card_id,
            *positions,
        )
    return answers


@app.post("/floor/mock-tests/<int:card_id>/start")
def floor_start(card_id: int) -> Response:
    customer_id = customer_of_token()
    connection().begin()
    try:
        _, status, paper_id, subject_id, number = locked_card(card_id, customer_id)
        if status == "available":
            paper_id, minutes = query(
                "SELECT id, duration_minutes FROM papers WHERE subject_id = %s AND test_number = %s "
                "ORDER BY version DESC LIMIT 1",
                subject_id,
                number,
            )[0]
            query(
                "UPDATE mock_test_attempts SET status = 'in_progress', paper_id = %s, started_at = UTC_TIMESTAMP(6), "
                "deadline_at = UTC_TIMESTAMP(6) + INTERVAL %s MINUTE, "
                "question_count = (SELECT question_count FROM papers WHERE id = %s) WHERE id = %s",
                paper_id,
                minutes,
                paper_id,
                card_id,
            )
            query(
                "INSERT INTO attempt_answers (card_id, position, marked_for_review, time_spent_seconds) "
                "SELECT %s, position, 0, 0 FROM paper_questions WHERE paper_id = %s",
                card_id,
                paper_id,
            )
        sheet = query(
            "SELECT q.question_id, q.position, q.type, v.text, v.options, q.marks_correct, q.marks_wrong, "
            "q.marks_unanswered, a.choice_mask, a.value, a.marked_for_review, a.time_spent_seconds "
            "FROM paper_questions q JOIN question_versions v ON v.id = q.question_version_id "
            "LEFT JOIN attempt_answers a ON a.card_id = %s AND a.position = q.position "
            "WHERE q.paper_id = %s ORDER BY q.position",
            card_id,
            paper_id,
        )
        connection().commit()
    except BaseException:
        connection().rollback()
        raise
    questions = [
        {"id": row[0], "position": row[1], "type": row[2], "text": row[3], "options": json.loads(row[4] or "null"),
         "marks_correct": row[5], "marks_wrong": row[6], "marks_unanswered": row[7]}
        for row in sheet
    ]  # fmt: skip
    answers = {str(row[0]): row[8] if row[9] is None else row[9] for row in sheet if row[8] or row[9] is not None}
    body = {"id": card_id, "status": "in_progress", "paper_id": paper_id, "questions": questions, "answers": answers}
    return Response(json.dumps(body, default=plain), mimetype="application/json")


@app.put("/floor/mock-tests/<int:card_id>/answers")
def floor_save(card_id: int) -> Response:
    customer_id = customer_of_token()
    answers = request.get_json()["answers"]
    connection().begin()
    try:
        _, status, paper_id, _, _ = locked_card(card_id, customer_id)
        if status != "in_progress":
            abort(409)
        saved = write_answers(card_id, paper_id, answers)
        connection().commit()
    except BaseException:
        connection().rollback()
        raise
    return jsonify(id=card_id, status=status, answers=saved)


# The outcome and the marks of an answer row `a` joined to its paper question `q`.
RIGHT = (
    "(q.type = 'numerical' AND ABS(a.value - q.key_answer) <= q.key_tolerance + 0.0000001) "
    "OR (q.type <> 'numerical' AND a.choice_mask = q.key_mask)"
)
ANSWERED = "(a.choice_mask IS NOT NULL OR a.value IS NOT NULL)"
PARTIAL = "(q.type = 'multiple' AND q.marks_partial <> 0 AND (a.choice_mask | q.key_mask) = q.key_mask)"
SCORE_ANSWERS = (
    "UPDATE attempt_answers a JOIN paper_questions q ON q.paper_id = %s AND q.position = a.position "  # noqa: S608
    f"SET a.outcome = CASE WHEN q.dropped THEN 'correct' WHEN NOT {ANSWERED} THEN 'unanswered' "
    f"WHEN {RIGHT} THEN 'correct' WHEN {PARTIAL} THEN 'partial' ELSE 'wrong' END, "
    f"a.marks = CASE WHEN q.dropped THEN q.marks_correct WHEN NOT {ANSWERED} THEN q.marks_unanswered "
    f"WHEN {RIGHT} THEN q.marks_correct WHEN {PARTIAL} THEN q.marks_partial * BIT_COUNT(a.choice_mask) "
    "ELSE q.marks_wrong END WHERE a.card_id = %s"
)
SCORE_CARD = (
    "UPDATE mock_test_attempts c JOIN (SELECT SUM(marks) AS total, SUM(outcome = 'correct') AS correct, "
    "SUM(outcome = 'wrong') AS wrong, SUM(outcome = 'unanswered') AS unanswered, "
    "SUM(outcome = 'partial') AS partial FROM attempt_answers WHERE card_id = %s) s "
    "JOIN papers p ON p.id = c.paper_id "
    "SET c.status = 'completed', c.submitted_at = UTC_TIMESTAMP(6), c.marks = s.total, "
    "c.correct_count = s.correct, c.wrong_count = s.wrong, c.unanswered_count = s.unanswered, "
    "c.partial_count = s.partial, c.score = ROUND(s.total * 100 / NULLIF(p.max_marks, 0), 2) WHERE c.id = %s"
)
SUBMITTED_CARD = (
    "id",
    "status",
    "paper_id",
    "question_count",
    "correct_count",
    "wrong_count",
    "unanswered_count",
    "marks",
    "score",
    "submitted_at",
)


@app.post("/floor/mock-tests/<int:card_id>/submit")
def floor_submit(card_id: int) -> Response:
    customer_id = customer_of_token()
    answers = (request.get_json(silent=True) or {}).get("answers") or {}
    connection().begin()
    try:
        _, status, paper_id, _, _ = locked_card(card_id, customer_id)
        if status != "in_progress":
            abort(409)
        if answers:
            write_answers(card_id, paper_id, answers)
        query(SCORE_ANSWERS, paper_id, card_id)
        query(SCORE_CARD, card_id, card_id)
        card = query(f"SELECT {', '.join(SUBMITTED_CARD)} FROM mock_test_attempts WHERE id = %s", card_id)[0]  # noqa: S608
        connection().commit()
    except BaseException:
        connection().rollback()
        raise
    return Response(
        json.dumps(dict(zip(SUBMITTED_CARD, card, strict=True)), default=plain), mimetype="application/json"
    )
