"""Fuzzing from our own OpenAPI document (schemathesis), on MariaDB.

Every operation is called with data generated from its documented schema, valid and
invalid, as a student and as an admin. A bounded, seeded run: no 5xx, and every answer
conforms to the documented status codes, content types and response schemas.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from shared.extensions import db
from shared.models import Bundle
from shared.services.accounts import AuthService
from shared.services.demo import DemoDataService
from tests.support.accounts import bearer, create_admin, register
from tests.support.purchases import make_purchase

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Logouts and deactivations would end the sessions the rest of the run uses; they have their own tests.
SKIPPED = {"POST /api/auth/logout", "POST /api/auth/logout-all", "PATCH /api/users/{user_id}"}


def _roles(app: Flask) -> dict[str, dict[str, dict[str, str]]]:
    """A student who owns a demo bundle's cards, and an admin: each one's access and refresh headers."""
    client = app.test_client()
    student = register(client)
    headers = bearer(student["access_token"])
    bundle_id = db.session.execute(select(Bundle.id).where(Bundle.slug == "jee-main-complete")).scalar_one()
    make_purchase(client, headers, bundle_id=bundle_id)
    admin = create_admin(phone_number="+919800000099")
    admin_refresh = AuthService.start_session(admin)["refresh_token"]
    return {
        "student": {"access": headers, "refresh": bearer(student["refresh_token"])},
        "admin": {"access": bearer(admin), "refresh": bearer(admin_refresh)},
    }


def _fuzz(operation: Any, headers: dict[str, str], mode: GenerationMode) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: Any) -> None:
        response = case.call()
        case.validate_response(response, checks=CHECKS)

    run()


def test_every_operation_conforms_to_the_openapi_document(mariadb: Flask) -> None:
    DemoDataService.seed()
    roles = _roles(mariadb)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", mariadb)
    # Unknown query parameters are ignored (as HTTP APIs do); the token is ours to send.
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in SKIPPED:
            continue
        operations += 1
        for role, tokens in roles.items():
            headers = tokens["refresh"] if operation.label == "POST /api/auth/refresh" else tokens["access"]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, headers, mode)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # no input to spoil: nothing to send
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every failure together
                    failures.append(f"{operation.label} as {role}, {mode.value} data:\n{exc}")
    assert operations >= 40
    assert not failures, "\n\n".join(failures)
