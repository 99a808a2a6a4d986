"""Conditional reads (RFC 9110 and 9111): an ETag and Cache-Control on each answer, and a
304 without building the body again when the client already holds the current one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

from flask import Response, current_app, request
from flask_smorest.utils import deepupdate

P = ParamSpec("P")

# `extra_parameters`: see shared/openapi.py (a manual list would hide the query parameters).
_DOC = {
    "extra_parameters": [
        {
            "in": "header",
            "name": "If-None-Match",
            "required": False,
            "schema": {"type": "string"},
            "description": "The ETag of the copy the client holds: 304 while it is current.",
        }
    ],
    "manual_doc": {
        "responses": {"304": {"description": "Not Modified: the copy named by If-None-Match is current."}},
    },
}


def conditional_read(
    etag: Callable[[], str], cache_control: Callable[[], str]
) -> Callable[[Callable[P, Response]], Callable[P, Response]]:
    """`etag()` must be cheap and change whenever the answer may: it is asked first."""

    def decorator(view: Callable[P, Response]) -> Callable[P, Response]:
        @functools.wraps(view)
        def read(*args: P.args, **kwargs: P.kwargs) -> Response:
            tag = etag()
            if request.if_none_match.contains(tag):
                response = current_app.response_class(status=304)
            else:
                response = view(*args, **kwargs)
            response.set_etag(tag)
            response.headers["Cache-Control"] = cache_control()
            response.vary.add("Authorization")
            return response

        read._apidoc = deepupdate(getattr(view, "_apidoc", {}), _DOC)  # type: ignore[attr-defined]
        return read

    return decorator
