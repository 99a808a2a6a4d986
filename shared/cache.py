"""Answers kept in each worker's memory, and dropped by every worker the moment their data changes.

Two kinds of reads are cached when CACHE_REDIS_URL is set (without it nothing is):

- `cached_catalog_read`: public catalog reads without a token;
- `cached_caller_read`: a caller's reads of its own data, once the same token has passed the
  full check against the database (signature, expiry, revocation, active account).

Every entry names the topics it was built from: "catalog", "user:<id>", "customer:<id>". Every
ORM flush announces the topics of the rows it touched (`topics_of`) on a Redis pub/sub channel,
before the commit and again after it, and each worker applies the announcements waiting on its
own subscription before it looks anything up. After the second announcement the writer makes one
more round trip to Redis: Redis has then written the announcement to every subscriber's socket, so
once a write has answered its client, no worker serves what the write replaced. A logout writes a
revoked-token row, which announces its user: the revoked token is refused at once everywhere.

A worker trusts its entries only while its subscription works: a broken connection drops them
all, and a subscription that has not answered a ping for HEARTBEAT_SECONDS is not used until it
does. A change to an account or a token that cannot be announced is refused (503), because a
worker that missed it could go on accepting a revoked token; other changes are committed and
logged, and their stale entries expire (CALLER_ENTRY_SECONDS, CATALOG_ENTRY_SECONDS).
Changes made outside the ORM (Core UPDATE/DELETE, SQL by hand) are not announced: after such a
change, `flask clear-cache` makes every worker drop everything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

import redis
from flask import Flask, Response, current_app, has_app_context, request
from flask_jwt_extended import current_user, get_jwt
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from shared.errors import ServiceUnavailable
from shared.models import Bundle, Course, Customer, RevokedToken, Subject, User

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

CATALOG = "catalog"
EVERYTHING = "*"  # announced by `flask clear-cache`, after changes made outside the ORM
CATALOG_MODELS = (Course, Subject, Bundle)
# The query parameters the cached reads take; others (ignored by the API) must not multiply entries.
CATALOG_QUERY = ("page", "per_page", "q", "course_id")
CATALOG_ENTRY_SECONDS = 300
CALLER_ENTRY_SECONDS = 60
MAX_ENTRIES = 4096
HEARTBEAT_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 0.1  # a Redis that stops answering costs a request 0.1 s, not a hang
_TOPICS = "announced_topics"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def customer_topic(customer_id: int) -> str:
    return f"customer:{customer_id}"


def topics_of(instance: object, is_new: bool) -> tuple[set[str], bool]:
    """The topics a flushed row changes, and whether they concern authentication (critical)."""
    if isinstance(instance, CATALOG_MODELS):
        return {CATALOG}, False
    if isinstance(instance, RevokedToken):
        return {user_topic(instance.user_id)}, True
    if isinstance(instance, User):  # nothing is cached for an account before it exists
        return (set(), False) if is_new else ({user_topic(instance.id)}, True)
    if isinstance(instance, Customer):
        return {user_topic(instance.user_id), customer_topic(instance.id)}, False
    customer_id = getattr(instance, "customer_id", None)  # purchases, their items, test cards
    return ({customer_topic(customer_id)} if customer_id is not None else set()), False


@dataclass(frozen=True)
class Entry:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    topics: frozenset[str]
    expires_at: float

    def response(self) -> Response:
        return Response(self.body, status=self.status, headers=self.headers)


class Entries:
    """A bounded least-recently-used map of answers, indexed by topic."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Any, Entry] = OrderedDict()
        self._keys_by_topic: dict[str, set[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Any, entry: Entry) -> None:
        self._remove(key)
        self._entries[key] = entry
        for topic in entry.topics:
            self._keys_by_topic.setdefault(topic, set()).add(key)
        while len(self._entries) > self.capacity:
            self._remove(next(iter(self._entries)))

    def drop(self, topics: Iterable[str]) -> None:
        topics = list(topics)
        if EVERYTHING in topics:
            self.clear()
            return
        for topic in topics:
            for key in self._keys_by_topic.pop(topic, set()):
                self._remove(key)

    def clear(self) -> None:
        self._entries.clear()
        self._keys_by_topic.clear()

    def _remove(self, key: Any) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for topic in entry.topics:
            keys = self._keys_by_topic.get(topic)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_by_topic[topic]


class ResponseCache:
    """One per app and process: the entries, the subscription that keeps them exact, and the
    announcements this process makes."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.entries = Entries(MAX_ENTRIES)
        self._lock = threading.Lock()
        self._pid = 0
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._last_heard = 0.0
        self._last_ping = 0.0
        self._next_attempt = 0.0
        # Announcements are numbered as they arrive, so that an answer built while one of its
        # topics was announced is not stored (it may have read the data before the change).
        self._received = 0
        self._received_by_topic: dict[str, int] = {}
        self._forgotten_before = 0

    # -- reading --------------------------------------------------------------------------
    def lookup(self, key: Any) -> tuple[Response | None, int | None]:
        """The cached answer, if any, and a mark to pass to `store` (None: do not store)."""
        with self._lock:
            if not self._subscription_ready():
                return None, None
            entry = self.entries.get(key, time.monotonic())
            return (entry.response() if entry else None), self._received

    def store(self, key: Any, mark: int | None, response: Response, topics: frozenset[str], seconds: float) -> None:
        if mark is None or seconds <= 0 or response.status_code != 200 or response.direct_passthrough:
            return
        with self._lock:
            if not self._subscription_ready() or mark < self._forgotten_before:
                return
            if any(self._received_by_topic.get(topic, 0) > mark for topic in (*topics, EVERYTHING)):
                return
            headers = [(name, value) for name, value in response.headers.items() if name.lower() != "content-length"]
            entry = Entry(response.status_code, headers, response.get_data(), topics, time.monotonic() + seconds)
            self.entries.put(key, entry)

    # -- writing --------------------------------------------------------------------------
    def announce(self, topics: Iterable[str], *, confirm: bool) -> None:
        """Tell every worker, this one included, to drop the entries of these topics.
        With `confirm`, return only once Redis has passed the announcement to every subscriber."""
        names = sorted(set(topics))
        with self._lock:
            self.entries.drop(names)
            client = self._redis()
        client.publish(self.channel, " ".join(names))
        if confirm:
            client.ping()  # answered on a later turn of Redis' event loop, after it wrote to subscribers

    # -- the subscription -----------------------------------------------------------------
    def _redis(self) -> redis.Redis:
        if self._pid != os.getpid():  # a forked worker must not share its parent's sockets
            self._pid, self._client, self._pubsub = os.getpid(), None, None
            self.entries.clear()
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    def _subscription_ready(self) -> bool:
        """Apply the announcements waiting on the subscription; may the entries be used?"""
        now = time.monotonic()
        try:
            client = self._redis()
            if self._pubsub is None:
                if now < self._next_attempt:
                    return False
                self._next_attempt = now + HEARTBEAT_SECONDS
                pubsub = client.pubsub()
                pubsub.subscribe(self.channel)
                self._pubsub = pubsub
                confirmation = pubsub.get_message(timeout=REDIS_TIMEOUT_SECONDS)
                if confirmation is not None:
                    self._receive(confirmation, now)
            while (message := self._pubsub.get_message(timeout=0.0)) is not None:
                self._receive(message, now)
            if now - self._last_heard > HEARTBEAT_SECONDS and now - self._last_ping > HEARTBEAT_SECONDS:
                self._pubsub.ping()
                self._last_ping = now
        except (redis.RedisError, OSError) as exc:
            log.warning("response cache off until Redis answers again: %s", exc)
            self._forget_everything()
            self._next_attempt = now + HEARTBEAT_SECONDS
            return False
        return now - self._last_heard <= 2 * HEARTBEAT_SECONDS

    def _receive(self, message: dict[str, Any], now: float) -> None:
        self._last_heard = now
        if message["type"] == "subscribe":  # (re)subscribed: what was announced before is unknown
            self._forget_everything(keep_subscription=True)
        elif message["type"] == "message":
            self._received += 1
            topics = message["data"].decode().split()
            self.entries.drop(topics)
            if len(self._received_by_topic) > MAX_ENTRIES:
                self._received_by_topic.clear()
                self._forgotten_before = self._received
            for topic in topics:
                self._received_by_topic[topic] = self._received

    def _forget_everything(self, *, keep_subscription: bool = False) -> None:
        self.entries.clear()
        self._received += 1
        self._received_by_topic.clear()
        self._forgotten_before = self._received
        if not keep_subscription:
            if self._pubsub is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    self._pubsub.close()
            self._pubsub = None
            self._last_heard = 0.0


def init_cache(app: Flask) -> None:
    url = app.config["CACHE_REDIS_URL"]
    app.extensions["response_cache"] = ResponseCache(url, f"{app.config['CACHE_KEY_PREFIX']}changes") if url else None


def response_cache() -> ResponseCache | None:
    return current_app.extensions.get("response_cache") if has_app_context() else None


def _query() -> str:
    return urlencode(sorted(request.args.items(multi=True)))


def _cached(
    view: Callable[P, R],
    key_of: Callable[[], Any],
    topics_of_answer: Callable[[], frozenset[str]],
    lifetime: Callable[[], float],
) -> Callable[P, R]:
    @functools.wraps(view)
    def cached(*args: P.args, **kwargs: P.kwargs) -> R:
        cache = response_cache()
        key = key_of() if cache is not None else None
        if cache is None or key is None:
            return view(*args, **kwargs)
        hit, mark = cache.lookup(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code == 200:
            cache.store(key, mark, response, topics_of_answer(), lifetime())
        return response  # type: ignore[return-value]

    return cached


def _catalog_key() -> Any:
    # With a token the answer may show inactive items (admins): never shared.
    if "Authorization" in request.headers:
        return None
    query = sorted((k, v) for k, v in request.args.items(multi=True) if k in CATALOG_QUERY)
    return ("catalog", request.path, urlencode(query))


def cached_catalog_read(view: Callable[P, R]) -> Callable[P, R]:
    """Answer a public catalog read (no token) from memory while the catalog is unchanged."""
    return _cached(view, _catalog_key, lambda: frozenset({CATALOG}), lambda: CATALOG_ENTRY_SECONDS)


def _caller_key() -> Any:
    """The bearer token itself: an entry is only ever served to the exact token that passed the
    full check when it was stored. None (no cache) without a bearer token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not token:
        return None
    return ("caller", token, request.path, _query())


def _caller_topics() -> frozenset[str]:
    user: User = current_user
    topics = {user_topic(user.id), CATALOG}  # answers name subjects and courses
    if user.customer is not None:
        topics.add(customer_topic(user.customer.id))
    return frozenset(topics)


def _caller_lifetime() -> float:
    """No entry outlives its token."""
    return min(CALLER_ENTRY_SECONDS, get_jwt()["exp"] - time.time())


def cached_caller_read(view: Callable[P, R]) -> Callable[P, R]:
    """Answer a caller's repeated read of its own data from memory. Goes outside the
    authentication guard: the first read of a token takes the full check, and only its 200
    answer is kept, for that token alone, until the caller's account, tokens or data change."""
    return _cached(view, _caller_key, _caller_topics, _caller_lifetime)


# -- announcing ORM changes -------------------------------------------------------------------
@event.listens_for(Session, "after_flush")
def _announce_before_commit(session: Session, _flush_context: UOWTransaction) -> None:
    cache = response_cache()
    if cache is None:
        return
    topics: set[str] = set()
    critical = False
    for instances, is_new in ((session.new, True), (session.dirty, False), (session.deleted, False)):
        for instance in instances:
            names, is_critical = topics_of(instance, is_new)
            topics |= names
            critical = critical or (is_critical and bool(names))
    if not topics:
        return
    session.info.setdefault(_TOPICS, set()).update(topics)
    try:
        cache.announce(topics, confirm=False)
    except (redis.RedisError, OSError) as exc:
        if critical:
            raise ServiceUnavailable(
                "This change cannot be made while the cache cannot be told about it. Please retry shortly.",
                headers={"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])},
            ) from exc
        log.error("could not announce %s before commit: %s", sorted(topics), exc)


@event.listens_for(Session, "after_commit")
def _announce_after_commit(session: Session) -> None:
    topics = session.info.pop(_TOPICS, None)
    cache = response_cache()
    if not topics or cache is None:
        return
    try:
        cache.announce(topics, confirm=True)
    except (redis.RedisError, OSError) as exc:
        log.error(
            "could not announce %s after commit; their entries expire within %ss", sorted(topics), CALLER_ENTRY_SECONDS
        )
        log.debug("announcement failure", exc_info=exc)


@event.listens_for(Session, "after_soft_rollback")
def _forget_topics(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_TOPICS, None)
