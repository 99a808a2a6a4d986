"""flask-smorest wired to our problem+json error contract."""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any

import flask_smorest
from flask_smorest.utils import prepare_response

from shared.schemas.common import ProblemSchema

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemApi(flask_smorest.Api):
    """Documents every error response as `application/problem+json`.

    Error handlers are registered by `shared.errors`, not by flask-smorest, so that
    one module owns the error format.
    """

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        self.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})

    def _register_error_handlers(self) -> None:
        return None

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Unexpected error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint that can document the problems a view returns."""

    def problems(self, *statuses: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Document the error statuses a view really returns, as problem+json."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            for status in statuses:
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator
