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


class ConditionalRead:
    """`etag()` must be cheap and change whenever the answer may: it is asked first.

    Used as a decorator below `@blp.arguments`: a request is answered 304 once its query is
    valid (RFC 9110 13.2.1: a request that would be refused ignores its preconditions).
    `without_query`, above `@blp.arguments`, answers a request that has no query string,
    and so nothing to refuse, before its (absent) query is parsed."""

    def __init__(self, etag: Callable[[], str], cache_control: Callable[[], str]) -> None:
        self.etag = etag
        self.cache_control = cache_control

    def _answer(self, tag: str, response: Response) -> Response:
        response.set_etag(tag)
        response.headers["Cache-Control"] = self.cache_control()
        response.vary.add("Authorization")
        return response

    def __call__(self, view: Callable[P, Response]) -> Callable[P, Response]:
        @functools.wraps(view)
        def read(*args: P.args, **kwargs: P.kwargs) -> Response:
            tag = self.etag()
            if request.if_none_match.contains(tag):
                return self._answer(tag, current_app.response_class(status=304))
            return self._answer(tag, view(*args, **kwargs))

        read._apidoc = deepupdate(getattr(view, "_apidoc", {}), _DOC)  # type: ignore[attr-defined]
        return read

    def without_query(self, view: Callable[P, Response]) -> Callable[P, Response]:
        @functools.wraps(view)
        def read(*args: P.args, **kwargs: P.kwargs) -> Response:
            if not request.query_string and request.if_none_match:
                tag = self.etag()
                if request.if_none_match.contains(tag):
                    return self._answer(tag, current_app.response_class(status=304))
            return view(*args, **kwargs)

        return read


def conditional_read(etag: Callable[[], str], cache_control: Callable[[], str]) -> ConditionalRead:
    return ConditionalRead(etag, cache_control)
