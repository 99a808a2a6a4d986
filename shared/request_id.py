"""Request ids: taken from `X-Request-ID` when a client or proxy sends a sane one,
made up otherwise; echoed on every response and stamped on every log line."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    if not has_request_context():
        return "-"
    if "request_id" not in g:
        sent = request.headers.get(HEADER, "")
        g.request_id = sent if _ACCEPTABLE.match(sent) else uuid.uuid4().hex
    return g.request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


def configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_exam_shop", False)]
    handler._exam_shop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])


def init_request_id(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        current_request_id()

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers[HEADER] = current_request_id()
        return response
