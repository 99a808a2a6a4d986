"""flask-smorest wired to our problem+json error contract."""

from __future__ import annotations

import functools
import http
from collections.abc import Callable
from typing import Any

import flask_smorest
import marshmallow as ma
import swagger_ui_bundle
from flask import Blueprint as FlaskBlueprint
from flask import Flask, Request, Response, send_from_directory
from flask_smorest.utils import prepare_response, unpack_tuple_response
from webargs.core import missing
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from shared.errors import PROBLEM_CONTENT_TYPE, UnsupportedMediaType
from shared.schemas.base import MAX_ID
from shared.schemas.common import ProblemSchema
from shared.schemas.fields import Currency, Money


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

    def _register_swagger_ui_rule(self, blueprint: FlaskBlueprint) -> None:
        """When OPENAPI_SWAGGER_UI_URL is a path of ours, serve Swagger UI's scripts and styles
        there from the pinned swagger-ui-bundle package: the docs need no CDN."""
        super()._register_swagger_ui_rule(blueprint)
        assets_url = self.config.get("OPENAPI_SWAGGER_UI_URL") or ""
        prefix = (self.config.get("OPENAPI_URL_PREFIX") or "").rstrip("/")
        if assets_url.startswith(prefix + "/"):
            blueprint.add_url_rule(
                assets_url[len(prefix) :] + "<path:filename>", endpoint="swagger_ui_assets", view_func=_swagger_ui_asset
            )

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


def _swagger_ui_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=24 * 3600)


class IdConverter(IntegerConverter):
    """`<id:name>` in a route: a positive INT id (anything larger is a 404, not an overflow)."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


def register_conventions(app: Flask, api: ProblemApi) -> None:
    """Our path converter and field types, in Flask's routing and in the OpenAPI document."""
    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, lambda _: {"type": "integer", "minimum": 1, "maximum": MAX_ID})
    api.register_field(Money, "string", "decimal")  # and its subclass Percent
    api.register_field(Currency, "string", None)
    api.ma_plugin.converter.add_attribute_function(_no_default_when_partial)
    api.ma_plugin.converter.add_attribute_function(_typed_enums_and_nullable_references)
    api.ma_plugin.converter.add_attribute_function(_decimals_as_strings)


def operation_id(view_name: str) -> str:
    """The operationId of a view: its function name in lower camel case (`create_purchase`
    -> `createPurchase`), which generated clients use as the method's name."""
    head, *rest = view_name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _decimals_as_strings(_converter: Any, field: ma.fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A `fields.Decimal(as_string=True)` is a JSON string ("12.50"), never a float: say so
    (apispec calls every Decimal a `number`, so clients typed marks and answers as numbers)."""
    if isinstance(field, ma.fields.Decimal) and field.as_string and ret.get("type") == "number":
        ret["type"] = "string"
        ret["format"] = "decimal"
    return {}


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _typed_enums_and_nullable_references(
    _converter: Any, field: ma.fields.Field, ret: dict[str, Any], **_: Any
) -> dict[str, Any]:
    """Two things apispec leaves to the client generators to guess, said in OpenAPI 3.0:

    - an enum's `type` (apispec gives only the values of a `fields.Enum(by_value=True)`);
    - a nullable reference as `allOf: [$ref]` with `nullable: true`, instead of an `anyOf`
      with a bare `{type: object, nullable: true}` that generators type as "any object".
    """
    if isinstance(field, ma.fields.Enum) and "type" not in ret:
        values = [member.value if field.by_value else member.name for member in field.enum]
        types = {_JSON_TYPES.get(type(value)) for value in values}
        if len(types) == 1 and None not in types:
            ret["type"] = types.pop()
    any_of = ret.get("anyOf")
    if any_of and {"type": "object", "nullable": True} in any_of:
        ret.pop("anyOf")
        ret["allOf"] = [item for item in any_of if item != {"type": "object", "nullable": True}]
        ret["nullable"] = True
    return {}


def _no_default_when_partial(_converter: Any, field: ma.fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A PATCH body (a schema loaded with partial=True) fills in no defaults: don't show any."""
    if getattr(field.parent, "partial", None) is True:
        ret.pop("default", None)
    return {}


class RequestParser(FlaskParser):
    """Reads a JSON body through `request.get_json()` (shared/request_body.py: parsed once,
    bounded, a 400 problem when unusable) instead of parsing it a second time its own way."""

    def _raw_load_json(self, req: Request) -> Any:
        if not req.get_data(cache=True):
            return missing  # as webargs answers for no body: then `required` fields say so
        if not req.is_json:
            # Else every required field would be reported missing, which hides the real mistake.
            raise UnsupportedMediaType(
                "The request body must be JSON, sent with the header Content-Type: application/json "
                f"(this one was sent {'as ' + req.mimetype if req.mimetype else 'without a Content-Type'})."
            )
        return req.get_json()


EXTRA_PARAMETERS = "extra_parameters"


def _prepare_extra_parameters_doc(doc: dict[str, Any], doc_info: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Parameters a decorator documents under `_apidoc[EXTRA_PARAMETERS]` join those of
    `@arguments`; a manual `parameters` list (`@blp.doc`) would replace them."""
    extra = doc_info.get(EXTRA_PARAMETERS)
    if extra:
        doc["parameters"] = [*doc.get("parameters", []), *extra]
    return doc


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint that reads bodies with `RequestParser` and can document
    the problems a view returns."""

    ARGUMENTS_PARSER = RequestParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(_prepare_extra_parameters_doc)

    def _store_endpoint_docs(self, endpoint: str, obj: Any, parameters: Any, tags: Any, **options: Any) -> None:
        """Every operation gets its operationId from one rule (`operation_id`)."""
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        methods = [method for method in self._docs[endpoint] if method != "parameters"]
        for method in methods:
            name = obj.__name__ if len(methods) == 1 else f"{method}_{obj.__name__}"
            self._docs[endpoint][method].setdefault("manual_doc", {}).setdefault("operationId", operation_id(name))

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Callable[..., Any]:
        """`flask_smorest.Blueprint.arguments`; a JSON body also documents its 415.

        A schema class is instantiated here, once: given a class, webargs makes an instance
        (and deep-copies its fields) on every request. Schemas keep no state between loads."""
        if isinstance(schema, type):
            schema = schema()
        decorator = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return decorator
        return lambda view: self.problems(415)(decorator(view))

    def response(
        self, status_code: int, schema: Any = None, *, location: Callable[..., str] | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """`flask_smorest.Blueprint.response`; a 201 also says where the new resource is:
        `location(result, **path_arguments)` is the URL of its `Location` header."""
        if int(status_code) == 201:
            if location is None:
                raise TypeError("a 201 response needs location=: the URL of what it created")
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Location": {"description": "The URL of what was created", "schema": {"type": "string"}},
            }
        decorator = super().response(status_code, schema, **kwargs)
        if location is None:
            return decorator

        def with_location(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def located(*args: Any, **path_arguments: Any) -> Any:
                result, status, headers = unpack_tuple_response(view(*args, **path_arguments))
                headers = dict(headers or {})
                if (status or status_code) == 201:
                    headers["Location"] = location(result, **path_arguments)
                return result, status or status_code, headers

            return decorator(located)

        return with_location

    def problems(self, *statuses: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Document the error statuses a view really returns, as problem+json."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            for status in statuses:
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator
