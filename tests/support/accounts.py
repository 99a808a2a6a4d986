"""Make users and tokens for tests, through the same services the API uses."""

from __future__ import annotations

import itertools
from typing import Any

from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token

from shared.models import User
from shared.phone import normalise_phone
from shared.services.auth import AuthService

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


def register(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/auth/register", json=registration(**overrides))
    assert response.status_code == 201, response.get_json()
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
    token = (
        user_or_token
        if isinstance(user_or_token, str)
        else create_access_token(identity=str(user_or_token.id), additional_claims={"role": user_or_token.role.value})
    )
    return {"Authorization": f"Bearer {token}"}
