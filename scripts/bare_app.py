"""The floors of scripts/bench_api.py, served by gunicorn exactly like the app.

- `GET /bare`, `POST /bare`: bare Flask, no database (the 304 and the purchase compare here).
- `GET /floor/courses`: the least work the public course list needs: one raw PyMySQL
  connection per thread, the count and the page with its subject figures, JSON.
- `GET /floor/mock-tests`: the least work a caller's card list needs: verify the token
  with PyJWT, check account and session and find the customer in one statement, the
  count and the page with subject names, JSON.

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
from flask import Flask, Response, jsonify, request
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
    "question_count",
    "correct_count",
    "score",
    "started_at",
    "deadline_at",
    "submitted_at",
)


@app.get("/floor/mock-tests")
def floor_cards() -> Response | tuple[Response, int]:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, os.environ["JWT_SECRET_KEY"], algorithms=["HS256"])
    except jwt.PyJWTError:
        return jsonify(status=401), 401
    principal = query(
        "SELECT u.is_active, c.id FROM users u "
        "JOIN user_sessions s ON s.user_id = u.id AND s.id = %s AND s.ended_at IS NULL "
        "LEFT JOIN customers c ON c.user_id = u.id WHERE u.id = %s",
        claims.get("sid"),
        int(claims["sub"]),
    )
    if not principal or not principal[0][0] or principal[0][1] is None:
        return jsonify(status=401), 401
    customer_id = principal[0][1]
    page, per_page = page_arguments()
    (total,) = query("SELECT COUNT(*) FROM mock_test_attempts WHERE customer_id = %s", customer_id)[0]
    rows = query(
        "SELECT a.id, a.purchase_id, a.subject_id, s.name, a.test_number, a.status, a.question_count, "
        "a.correct_count, a.score, a.started_at, a.deadline_at, a.submitted_at "
        "FROM mock_test_attempts a JOIN subjects s ON s.id = a.subject_id WHERE a.customer_id = %s "
        "ORDER BY a.subject_id, a.test_number, a.id LIMIT %s OFFSET %s",
        customer_id,
        per_page,
        (page - 1) * per_page,
    )
    return page_answer([dict(zip(CARD_FIELDS, row, strict=True)) for row in rows], page, per_page, total)
