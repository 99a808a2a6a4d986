"""Every route, called anonymously, as the owning student, as another student and as an
admin, answers the status the contract gives. No customer sees another's objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.extensions import db
from shared.models import Customer, MockTestAttempt, Question
from shared.services.cards import PaperService
from tests.support.accounts import bearer, create_admin, login, register
from tests.support.catalog import make_course
from tests.support.mock_tests import add_questions
from tests.support.purchases import make_purchase

ROLES = ("anonymous", "owner", "other", "admin")
CONFIRMATION = {"provider_order_id": "order_other", "provider_payment_id": "pay_other", "signature": "0" * 64}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expected: tuple[int, int, int, int]  # anonymous, owner, other student, admin
    body: dict[str, Any] | None = None
    session: str = "main"  # each caller has two sessions: "main" and "spare"


def matrix(ids: dict[str, int]) -> list[Row]:
    """In call order: calls that change state come after the reads they would disturb."""
    course, subject, bundle = ids["course"], ids["subject"], ids["bundle"]
    card, purchase, question = ids["card"], ids["purchase"], ids["question"]
    return [
        Row("GET", "/health", (200, 200, 200, 200)),
        Row("GET", "/health/ready", (200, 200, 200, 200)),
        Row("POST", "/api/auth/register", (422, 422, 422, 422), {}),
        Row("POST", "/api/auth/login", (422, 422, 422, 422), {}),
        Row("POST", "/api/auth/refresh", (401, 401, 401, 401)),  # an access token is not a refresh token
        Row("GET", "/api/auth/me", (401, 200, 200, 200)),
        Row("GET", "/api/customers", (401, 403, 403, 200)),
        Row("GET", f"/api/customers/{ids['customer']}", (401, 403, 403, 200)),
        Row("GET", "/api/customers/me", (401, 200, 200, 403)),
        Row("PATCH", "/api/customers/me", (401, 200, 200, 403), {}),
        Row("GET", "/api/users", (401, 403, 403, 200)),
        Row("GET", f"/api/users/{ids['user']}", (401, 403, 403, 200)),
        Row("PATCH", f"/api/users/{ids['user']}", (401, 403, 403, 200), {}),  # nothing to change
        Row("GET", "/api/courses", (200, 200, 200, 200)),
        Row("GET", f"/api/courses/{course}", (200, 200, 200, 200)),
        Row("GET", f"/api/courses/{course}/subjects", (200, 200, 200, 200)),
        Row("GET", "/api/bundles", (200, 200, 200, 200)),
        Row("GET", f"/api/bundles/{bundle}", (200, 200, 200, 200)),
        Row("POST", "/api/courses", (401, 403, 403, 422), {}),
        Row("PATCH", f"/api/courses/{course}", (401, 403, 403, 200), {}),
        Row("DELETE", f"/api/courses/{course}", (401, 403, 403, 409)),  # bought: deactivate instead
        Row("POST", f"/api/courses/{course}/subjects", (401, 403, 403, 422), {}),
        Row("PATCH", f"/api/subjects/{subject}", (401, 403, 403, 200), {}),
        Row("DELETE", f"/api/subjects/{subject}", (401, 403, 403, 409)),
        Row("POST", "/api/bundles", (401, 403, 403, 422), {}),
        Row("PATCH", f"/api/bundles/{bundle}", (401, 403, 403, 200), {}),
        Row("PUT", f"/api/bundles/{bundle}/subjects", (401, 403, 403, 422), {}),
        Row("DELETE", f"/api/bundles/{bundle}", (401, 403, 403, 409)),
        Row("GET", f"/api/subjects/{subject}/questions", (401, 403, 403, 200)),
        Row("POST", f"/api/subjects/{subject}/questions", (401, 403, 403, 422), {}),
        Row("POST", f"/api/subjects/{subject}/questions/import", (401, 403, 403, 422), {}),
        Row("PATCH", f"/api/subjects/{subject}/questions/{question}", (401, 403, 403, 200), {}),
        Row("POST", "/api/purchases", (401, 422, 422, 422), {}),
        Row("GET", "/api/purchases", (401, 200, 200, 200)),
        Row("GET", f"/api/purchases/{purchase}", (401, 200, 404, 200)),
        # Well-formed, but not this purchase's order (owner), not theirs (other), not a customer (admin).
        Row("POST", f"/api/purchases/{purchase}/payment", (401, 422, 404, 403), CONFIRMATION),
        Row("POST", "/api/payments/webhook", (400, 400, 400, 400), {}),  # unsigned, whoever sends it
        Row("POST", f"/api/payments/sandbox/orders/{ids['order']}/pay", (401, 409, 404, 403), {"outcome": "captured"}),
        Row("GET", "/api/mock-tests", (401, 200, 200, 403)),
        Row("GET", "/api/mock-tests/progress", (401, 200, 200, 403)),
        Row("GET", f"/api/mock-tests/{card}", (401, 200, 404, 200)),
        Row("POST", f"/api/mock-tests/{card}/start", (401, 200, 404, 403)),
        Row("PUT", f"/api/mock-tests/{card}/answers", (401, 200, 404, 403), {"answers": {}}),
        Row("GET", f"/api/mock-tests/{card}/review", (401, 409, 404, 409)),  # not submitted yet
        Row("POST", f"/api/mock-tests/{card}/submit", (401, 200, 404, 403), {}),
        Row("GET", f"/api/mock-tests/{card}/review", (401, 200, 404, 200)),
        Row("GET", f"/api/subjects/{subject}/pattern", (401, 403, 403, 200)),
        Row("PUT", f"/api/subjects/{subject}/pattern", (401, 403, 403, 422), {}),
        Row("GET", f"/api/subjects/{subject}/papers", (401, 403, 403, 200)),
        Row("POST", f"/api/papers/{ids['paper']}/versions", (401, 403, 403, 201)),
        Row("DELETE", f"/api/subjects/{subject}/questions/{question}", (401, 403, 403, 204)),
        Row("POST", f"/api/purchases/{purchase}/refund", (401, 403, 403, 201), {}),  # then it is refunded:
        Row("POST", f"/api/purchases/{purchase}/refund", (401, 403, 403, 409), {}),  # nothing left to refund
        Row("POST", "/api/customers/upgrade", (401, 403, 403, 201), {}),
        # Last: they end sessions. A logout ends only its own; the spare one is still live.
        Row("POST", "/api/auth/logout", (401, 204, 204, 204)),
        Row("POST", "/api/auth/logout-all", (401, 204, 204, 204), session="spare"),
    ]


def _world(client: FlaskClient) -> tuple[dict[str, int], dict[str, dict[str, dict[str, str]]]]:
    course = make_course(subjects=2)
    add_questions(course.subject_ids[0], 12)
    owner = register(client)
    other = register(client)
    owner_headers = bearer(owner["access_token"])
    bought = make_purchase(client, owner_headers, bundle_id=course.bundle_id)["purchase"]
    card = (
        db.session.execute(
            select(MockTestAttempt.id).where(
                MockTestAttempt.purchase_id == bought["id"], MockTestAttempt.subject_id == course.subject_ids[0]
            )
        )
        .scalars()
        .first()
    )
    ids = {
        "course": course.id,
        "subject": course.subject_ids[0],
        "bundle": course.bundle_id,
        "purchase": bought["id"],
        "order": bought["provider_order_id"],
        "card": card,
        "customer": db.session.execute(select(Customer.id).where(Customer.user_id == owner["user"]["id"])).scalar_one(),
        "user": owner["user"]["id"],
        "question": db.session.execute(select(Question.id).limit(1)).scalar_one(),
        "paper": PaperService.compose(course.subject_ids[0], 1, 1),
    }
    admin = create_admin(phone_number="+919811100001")
    main = {"anonymous": {}, "owner": owner_headers, "other": bearer(other["access_token"]), "admin": bearer(admin)}
    spare = {
        "anonymous": {},
        "owner": bearer(login(client, owner["user"]["email"])["access_token"]),
        "other": bearer(login(client, other["user"]["email"])["access_token"]),
        "admin": bearer(admin),
    }
    return ids, {"main": main, "spare": spare}


def test_every_route_answers_each_caller_as_the_contract_says(app: Flask, client: FlaskClient) -> None:
    ids, headers = _world(client)
    rows = matrix(ids)
    mismatches = []
    for row in rows:
        for role, expected in zip(ROLES, row.expected, strict=True):
            response = client.open(row.path, method=row.method, json=row.body, headers=headers[row.session][role])
            if response.status_code != expected:
                mismatches.append(f"{row.method} {row.path} as {role}: {response.status_code}, expected {expected}")
            if response.status_code >= 400:
                assert response.mimetype == "application/problem+json"
    assert not mismatches, "\n".join(mismatches)

    documented = {
        (method, rule.rule.replace("<id:", "<"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in {"static", "api-docs"}
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    templates = {(row.method, _template(row.path)) for row in rows}
    assert documented - templates == set(), "routes missing from the authorization matrix"


def _template(path: str) -> str:
    names = {
        "courses": "course_id",
        "subjects": "subject_id",
        "bundles": "bundle_id",
        "purchases": "purchase_id",
        "mock-tests": "card_id",
        "customers": "customer_id",
        "questions": "question_id",
        "papers": "paper_id",
        "users": "user_id",
    }
    parts = path.split("/")
    for index, part in enumerate(parts):
        if part.isdigit() and index > 0 and parts[index - 1] in names:
            parts[index] = f"<{names[parts[index - 1]]}>"
        elif index > 0 and parts[index - 1] == "orders":
            parts[index] = "<provider_order_id>"
    return "/".join(parts)
