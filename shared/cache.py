"""A shared response cache for public catalog reads, kept exact by version keys.

With CACHE_REDIS_URL set, token-less GETs of the catalog are answered from Redis without
touching the database. Every cache key carries the catalog's version; any committed ORM
change to a course, subject or bundle increments that version after the commit, so every
worker on every host stops using the old entries at once. (Changes made with Core
INSERT/UPDATE/DELETE or by hand in SQL are not seen: catalog writes go through the ORM.)
When Redis is slow or away, requests skip the cache. Without CACHE_REDIS_URL nothing is
cached (Flask-Caching's NullCache).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Flask, current_app, has_app_context, request
from flask_caching import Cache
from sqlalchemy import event
from sqlalchemy.orm import Session

from shared.models import Bundle, Course, Subject

log = logging.getLogger(__name__)

cache = Cache()
CATALOG = "catalog"
CATALOG_MODELS = (Course, Subject, Bundle)
ENTRY_SECONDS = 300
_CHANGED = "changed_cache_namespaces"


def init_cache(app: Flask) -> None:
    url = app.config["CACHE_REDIS_URL"]
    cache.init_app(
        app,
        config={
            "CACHE_TYPE": "RedisCache" if url else "NullCache",
            "CACHE_REDIS_URL": url,
            "CACHE_KEY_PREFIX": app.config["CACHE_KEY_PREFIX"],
            "CACHE_DEFAULT_TIMEOUT": ENTRY_SECONDS,
            "CACHE_IGNORE_ERRORS": True,
            # A Redis that stops answering must cost a request 0.1 s, not hang it.
            "CACHE_OPTIONS": {"socket_timeout": 0.1, "socket_connect_timeout": 0.1},
            "CACHE_NO_NULL_WARNING": True,
        },
    )


# The query parameters the cached reads take; others (ignored by the API) must not
# multiply the entries.
CATALOG_QUERY = ("page", "per_page", "q", "course_id")
_VERSION_KEY = "exam_shop.catalog_version"


def _version(namespace: str) -> int | None:
    try:
        value = cache.get(f"{namespace}:version")
    except Exception:  # noqa: BLE001 - a cache outage must not fail the request
        log.warning("cache unavailable; answering without it")
        return None
    return int(value or 0)


def _bypass_cache() -> bool:
    """Never cache requests with a token (an admin sees inactive items), nor any request
    while the catalog version cannot be read (an entry must never outlive its version)."""
    if "Authorization" in request.headers:
        return True
    request.environ[_VERSION_KEY] = _version(CATALOG)
    return request.environ[_VERSION_KEY] is None


def _catalog_key(*_view_args: Any, **_view_kwargs: Any) -> str:
    query = urlencode(sorted((k, v) for k, v in request.args.items(multi=True) if k in CATALOG_QUERY))
    return f"{CATALOG}:v{request.environ[_VERSION_KEY]}:{request.path}?{query}"


def cached_catalog_read(view: Callable[..., Any]) -> Callable[..., Any]:
    """Cache a public catalog read's 200 answers under the current catalog version."""
    return cache.cached(
        timeout=ENTRY_SECONDS,
        make_cache_key=_catalog_key,
        unless=_bypass_cache,
        response_filter=lambda response: getattr(response, "status_code", 200) == 200,
    )(view)


@event.listens_for(Session, "after_flush")
def _note_catalog_changes(session: Session, _flush_context: Any) -> None:
    if any(isinstance(item, CATALOG_MODELS) for item in (*session.new, *session.dirty, *session.deleted)):
        session.info.setdefault(_CHANGED, set()).add(CATALOG)


@event.listens_for(Session, "after_commit")
def _bump_changed_versions(session: Session) -> None:
    changed = session.info.pop(_CHANGED, set())
    if not changed or not has_app_context() or not current_app.config["CACHE_REDIS_URL"]:
        return
    for namespace in changed:
        try:
            if cache.cache.inc(f"{namespace}:version") is None:
                raise RuntimeError("the cache did not count")
        except Exception:  # noqa: BLE001 - entries then expire after ENTRY_SECONDS
            log.error("could not invalidate the %s cache; entries expire within %ss", namespace, ENTRY_SECONDS)


@event.listens_for(Session, "after_soft_rollback")
def _forget_changes(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_CHANGED, None)
