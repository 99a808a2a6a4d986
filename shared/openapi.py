"""flask-smorest wired to our problem+json error contract."""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import Flask, Request
from flask_smorest.utils import prepare_response
from webargs.core import missing
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from shared.errors import PROBLEM_CONTENT_TYPE
from shared.schemas.base import MAX_ID
from shared.schemas.common import ProblemSchema
from shared.schemas.fields import Money


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


class IdConverter(IntegerConverter):
    """`<id:name>` in a route: a positive INT id (anything larger is a 404, not an overflow)."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


def register_conventions(app: Flask, api: ProblemApi) -> None:
    """Our path converter and field types, in Flask's routing and in the OpenAPI document."""
    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, lambda _: {"type": "integer", "minimum": 1, "maximum": MAX_ID})
    api.register_field(Money, "string", "decimal")  # and its subclass Percent
    api.ma_plugin.converter.add_attribute_function(_no_default_when_partial)


def _no_default_when_partial(_converter: Any, field: ma.fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A PATCH body (a schema loaded with partial=True) fills in no defaults: don't show any."""
    if getattr(field.parent, "partial", None) is True:
        ret.pop("default", None)
    return {}


class RequestParser(FlaskParser):
    """Reads a JSON body through `request.get_json()` (shared/request_body.py: parsed once,
    bounded, a 400 problem when unusable) instead of parsing it a second time its own way."""

    def _raw_load_json(self, req: Request) -> Any:
        if not req.is_json or not req.get_data(cache=True):
            return missing  # as webargs answers for no body: then `required` fields say so
        return req.get_json()


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint that reads bodies with `RequestParser` and can document
    the problems a view returns."""

    ARGUMENTS_PARSER = RequestParser()

    def problems(self, *statuses: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Document the error statuses a view really returns, as problem+json."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            for status in statuses:
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator
