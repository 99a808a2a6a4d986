"""Make users and tokens for tests, through the same services the API uses."""

from __future__ import annotations

import itertools
from typing import Any

from flask.testing import FlaskClient

from shared.models import User
from shared.phone import normalise_phone
from shared.services.accounts import AuthService
from tests.support.mail import verify_email

PASSWORD = "correct-horse-42"
_sequence = itertools.count(1)


def unique_phone() -> str:
    """A valid Indian mobile number, different on every call."""
    return f"+9198{next(_sequence):08d}"


def registration(**overrides: Any) -> dict[str, Any]:
    n = next(_sequence)
    return {
        "email": f"student{n}@example.com",
        "password": PASSWORD,
        "full_name": f"Student {n}",
        "phone_number": unique_phone(),
        **overrides,
    }


def register(client: FlaskClient, *, verified: bool = True, **overrides: Any) -> dict[str, Any]:
    """A new student through the register route; `verified`: then the owner also follows the
    verification mail from the outbox (POST /api/auth/verify-email), so that it may pay."""
    response = client.post("/api/auth/register", json=registration(**overrides))
    assert response.status_code == 201, response.get_json()
    session = response.get_json()
    if verified:
        session["user"]["email_verified_at"] = verify_email(client, session["user"]["email"])["email_verified_at"]
    return session


def login(client: FlaskClient, email: str, password: str = PASSWORD, **kwargs: Any) -> dict[str, Any]:
    """A new session of an account through the login route."""
    response = client.post("/api/auth/login", json={"email": email, "password": password}, **kwargs)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def create_admin(email: str | None = None, phone_number: str | None = None, **extra: Any) -> User:
    n = next(_sequence)
    return AuthService.create_admin(
        {
            "email": email or f"admin{n}@example.com",
            "password": PASSWORD,
            "full_name": f"Admin {n}",
            "phone_number": normalise_phone(phone_number, "IN") if phone_number else None,
            **extra,
        }
    )


def bearer(user_or_token: User | str) -> dict[str, str]:
    """The Authorization header of a token, or of a new session of a user."""
    if isinstance(user_or_token, str):
        return {"Authorization": f"Bearer {user_or_token}"}
    token = AuthService.start_session(user_or_token)["access_token"]
    return {"Authorization": f"Bearer {token}"}
