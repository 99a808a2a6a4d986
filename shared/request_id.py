"""Request ids: taken from `X-Request-ID` when a client or proxy sends a sane one,
made up otherwise; echoed on every response and stamped on every log line."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, has_request_context, request

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


_ENVIRON_KEY = "exam_shop.request_id"


def current_request_id() -> str:
    """The id of the request being handled (kept in its WSGI environ, so it lives and dies
    with the request), or "-" outside one."""
    if not has_request_context():
        return "-"
    request_id = request.environ.get(_ENVIRON_KEY)
    if request_id is None:
        sent = request.headers.get(HEADER, "")
        request_id = request.environ[_ENVIRON_KEY] = sent if _ACCEPTABLE.match(sent) else uuid.uuid4().hex
    return request_id


def _install_record_factory() -> None:
    """Stamp the request id on every log record, whichever handler ends up writing it."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "_stamps_request_id", False):
        return

    def stamped_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.request_id = current_request_id()
        return record

    stamped_record._stamps_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(stamped_record)


def configure_logging(app: Flask) -> None:
    _install_record_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_exam_shop", False)]
    handler._exam_shop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])


def init_request_id(app: Flask) -> None:
    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers[HEADER] = current_request_id()
        return response
