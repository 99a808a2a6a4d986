"""The application factory: `flask --app app run` and `gunicorn app:app` both start here."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from blueprints import register_blueprints
from shared import models  # noqa: F401 - registers every table on db.metadata
from shared.cli import register_cli
from shared.config import PROJECT_ROOT, load_config
from shared.errors import register_error_handlers, retry_after_only_when_refused
from shared.extensions import (
    cache,
    cors,
    db,
    frozen_papers,
    jwt,
    limiter,
    migrate,
    roll_back_on_return_only_when_open,
    worker_cache,
)
from shared.openapi import ProblemApi, register_conventions
from shared.request_body import init_request_body
from shared.request_id import configure_logging, init_request_id
from shared.security import register_jwt_callbacks


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.config.update(load_config(config))
    init_request_body(app)
    app.json.sort_keys = False  # type: ignore[attr-defined] - keep `type, title, status` first
    configure_logging(app)
    trust_proxies(app)
    init_extensions(app)
    init_request_id(app)
    register_jwt_callbacks()
    register_error_handlers(app)
    api = ProblemApi(app)
    register_conventions(app, api)
    register_blueprints(api)
    register_cli(app)
    return app


def trust_proxies(app: Flask) -> None:
    """Behind N reverse proxies, take the client address from X-Forwarded-For."""
    hops = app.config["TRUSTED_PROXY_COUNT"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


# The response headers a browser client may read (CORS hides the others from JavaScript).
EXPOSED_HEADERS = [
    "X-Request-ID",
    "Location",
    "ETag",
    "Retry-After",
    "Idempotent-Replayed",
    "Preference-Applied",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]


PREFLIGHT_MAX_AGE = 7200


def literal_origins(origins: list[str]) -> list[str | re.Pattern[str]]:
    """flask-cors reads an origin holding a regex character as a regular expression: the
    brackets of `http://[::1]:8080` would match `http://1:8080` and never the origin itself.
    Normalised origins (shared/config.py) are meant literally; `*` is every origin."""
    return [
        origin if origin == "*" or "[" not in origin else re.compile(re.escape(origin) + r"\Z", re.IGNORECASE)
        for origin in origins
    ]


def vary_by_origin(response: Response) -> Response:
    """Whether an answer carries Access-Control-Allow-Origin depends on the request's Origin, so
    a cache (the browser's, a CDN holding the public catalog) must key on it. flask-cors says
    so only when several origins are configured."""
    if request.path.startswith("/api/") and current_app.config["CORS_ORIGINS"] != ["*"]:
        response.vary.add("Origin")
    return response


def only_when_cross_origin(hook: Callable[[Response], Response]) -> Callable[[Response], Response]:
    """flask-cors's after-request hook, run only for requests that carry an Origin header:
    for the others (curl, servers, caches revalidating) it adds no header at all, yet it
    costs every answer (a 304 most of all) a tenth of its time."""

    @functools.wraps(hook)
    def cross_origin_only(response: Response) -> Response:
        return hook(response) if "Origin" in request.headers else response

    return cross_origin_only


def init_extensions(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        (PROJECT_ROOT / "instance").mkdir(exist_ok=True)
    db.init_app(app)
    if app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_reset_on_return", "rollback") is None:
        with app.app_context():
            roll_back_on_return_only_when_open(db.engine)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    jwt.init_app(app)
    hooks = app.after_request_funcs.setdefault(None, [])
    known = list(hooks)
    cors.init_app(
        app,
        resources={r"/api/*": {"origins": literal_origins(app.config["CORS_ORIGINS"])}},
        expose_headers=EXPOSED_HEADERS,
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID", "If-None-Match", "Prefer"],
        # Browsers may keep a preflight's answer this long (Chromium at most 2 hours) instead of
        # sending an OPTIONS before every authenticated or JSON request.
        max_age=PREFLIGHT_MAX_AGE,
    )
    hooks[:] = [hook if hook in known else only_when_cross_origin(hook) for hook in hooks]
    app.after_request(vary_by_origin)
    # Flask runs after-request functions in reverse order: this one runs after the limiter's.
    app.after_request(retry_after_only_when_refused)
    limiter.init_app(app)
    cache.init_app(app)
    seconds = app.config["CATALOG_VERSION_WORKER_SECONDS"]
    worker_cache.init_app(
        app,
        # Its own settings only: the shared cache's (a Redis URL, socket options) are not for it.
        config={
            "CACHE_TYPE": "SimpleCache",
            "CACHE_DEFAULT_TIMEOUT": seconds,
            "CACHE_THRESHOLD": 16,
            "CACHE_OPTIONS": {},
        }
        if seconds
        else {"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True},
    )
    frozen_papers.init_app(
        app,
        config={
            "CACHE_TYPE": "SimpleCache",
            "CACHE_DEFAULT_TIMEOUT": 3600,
            "CACHE_THRESHOLD": 500,
            "CACHE_OPTIONS": {},
        },
    )


app = create_app()
