"""JSON request bodies: parsed once, by one bounded parser, before anything else reads them.

Every reader of a body (webargs through `shared.openapi.RequestParser`, the login limiter's key function,
any view calling `request.get_json()`) gets the same parsed value or the same 400 problem.
The body is parsed in the first `before_request` hook, so a body no reader could use is
refused before rate limiting, authentication or any database work.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import Flask, Request, request
from flask.json.provider import DefaultJSONProvider

from shared.errors import BadRequest

# Our bodies nest 4 levels at most (an import: {questions: [{options: [...]}]}).
MAX_JSON_DEPTH = 32
# An id has 10 digits; without a bound, an integer of many thousand digits costs quadratic
# time to convert (or trips Python's own int max-str-digits limit, a ValueError).
MAX_JSON_INTEGER_DIGITS = 100

NOT_JSON = "The request body is not valid JSON."
TOO_DEEP = f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."
TOO_LONG_INTEGER = f"The request body has an integer of more than {MAX_JSON_INTEGER_DIGITS} digits."


class UnacceptableJson(ValueError):
    """Well-formed JSON this API refuses to read; its message is the problem's detail."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise UnacceptableJson(TOO_LONG_INTEGER)
    return int(text)


def _constant(name: str) -> NoReturn:
    # Python's json reads NaN, Infinity and -Infinity; JSON has no such numbers.
    raise ValueError(f"{name} is not a JSON value")


def _deeper_than(value: Any, limit: int) -> bool:
    """Does `value` nest lists and dicts more than `limit` levels deep? (No recursion.)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(data: str | bytes, **kwargs: Any) -> Any:
    """`json.loads` for request bodies: ValueError (or its subclass UnacceptableJson) for
    anything malformed, too deep or with too long an integer; never RecursionError."""
    try:
        value = json.loads(data, **{"parse_int": _integer, "parse_constant": _constant, **kwargs})
    except RecursionError:
        raise UnacceptableJson(TOO_DEEP) from None
    if isinstance(value, dict | list) and _deeper_than(value, MAX_JSON_DEPTH):
        raise UnacceptableJson(TOO_DEEP)
    return value


class BoundedJsonProvider(DefaultJSONProvider):
    """`app.json`, which `Request.get_json()` parses with: `loads` above."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)


class JsonBodyRequest(Request):
    """A request whose `get_json()` fails with a 400 problem telling what is wrong."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:  # not a JSON content type: Werkzeug's 415
            return super().on_json_loading_failed(e)
        raise BadRequest(str(e) if isinstance(e, UnacceptableJson) else NOT_JSON)


def _parse_json_body() -> None:
    # An unknown path or method stays a 404 or 405, whatever its body.
    if request.routing_exception is None and request.is_json and request.get_data(cache=True):
        request.get_json()


def init_request_body(app: Flask) -> None:
    app.json = BoundedJsonProvider(app)
    app.request_class = JsonBodyRequest
    # First of all before_request hooks: before the rate limiter's, which may read the body.
    app.before_request_funcs.setdefault(None, []).insert(0, _parse_json_body)
