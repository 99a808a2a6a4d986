"""Answers kept in each worker's memory, and dropped by every worker the moment their data changes.

Two kinds of reads are cached when CACHE_REDIS_URL is set (without it nothing is):

- `cached_catalog_read`: public catalog reads without a token;
- `cached_caller_read`: a caller's reads of its own data, once the same token has passed the
  full check against the database (signature, expiry, revocation, active account).

Every entry names the topics it was built from: "catalog", "user:<id>", "customer:<id>". Every
ORM flush announces the topics of the rows it touched (`topics_of`) on a Redis pub/sub channel:
BEGIN before the commit, END after it, and each worker applies the announcements waiting on its
own subscription before it looks anything up. Between the two, no worker stores an answer on
those topics. After END the writer makes one more round trip to Redis: Redis has then written
the announcement to every subscriber's socket, so once a write has answered its client, no
worker on that host serves what the write replaced (a worker on another host reads it as soon
as the network delivers it). A logout writes a revoked-token row, which announces its user:
the revoked token is refused at once by every worker.

A worker trusts its entries only while its subscription works: a broken connection drops them
all, and entries are used only while the subscription has answered a ping within
HEARTBEAT_SECONDS (once a second, a lookup waits for that answer). A change to an account or a
token whose BEGIN cannot be announced is refused (503): a worker that missed it could go on
accepting a revoked token. Other changes are committed and logged, and their stale entries
expire (CALLER_ENTRY_SECONDS, CATALOG_ENTRY_SECONDS). Changes made outside the ORM (Core
UPDATE/DELETE, SQL by hand) are not announced: after such a change, `flask clear-cache` makes
every worker drop everything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

import marshmallow as ma
import redis
from flask import Flask, Response, current_app, has_app_context, request
from flask_jwt_extended import current_user, get_jwt
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, UOWTransaction

from shared.errors import ServiceUnavailable
from shared.models import Bundle, Course, Customer, RevokedToken, Subject, User

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

CATALOG = "catalog"
EVERYTHING = "*"  # announced by `flask clear-cache`, after changes made outside the ORM
CATALOG_MODELS = (Course, Subject, Bundle)
ACCESS_ATTRIBUTES = ("is_active", "role")  # of a User: who may read what
CATALOG_ENTRY_SECONDS = 300
CALLER_ENTRY_SECONDS = 60
PENDING_SECONDS = 60  # the longest a write may stay between its two announcements
MAX_BYTES = 64 * 1024 * 1024  # of answers, per worker
MAX_TRACKED = 10_000  # topics remembered as recently announced
BEGIN, END = "begin", "end"
HEARTBEAT_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 0.1  # a Redis that stops answering costs a request 0.1 s, not a hang
_WRITE = "announced_write"  # session.info: (write id, topics announced so far)


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def customer_topic(customer_id: int) -> str:
    return f"customer:{customer_id}"


def topics_of(instance: object, change: str) -> tuple[set[str], bool]:
    """The topics a flushed row ("new", "dirty" or "deleted") changes, and whether the change
    decides who may read (critical: it must reach every worker before it is committed)."""
    if isinstance(instance, CATALOG_MODELS):
        return {CATALOG}, False
    if isinstance(instance, RevokedToken):
        return {user_topic(instance.user_id)}, True
    if isinstance(instance, User):  # nothing is cached for an account before it exists
        if change == "new":
            return set(), False
        state = inspect(instance)
        access_changed = change == "deleted" or any(
            state.attrs[name].history.has_changes() for name in ACCESS_ATTRIBUTES
        )
        return {user_topic(instance.id)}, access_changed
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
    """A least-recently-used map of answers, bounded in bytes and indexed by topic."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
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
        self.size += len(entry.body)
        for topic in entry.topics:
            self._keys_by_topic.setdefault(topic, set()).add(key)
        while self.size > self.max_bytes:
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
        self.size = 0

    def _remove(self, key: Any) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.size -= len(entry.body)
        for topic in entry.topics:
            keys = self._keys_by_topic.get(topic)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_by_topic[topic]


class ResponseCache:
    """One per app and process: the entries, the subscription that keeps them exact, and the
    announcements this process makes.

    A write announces BEGIN before its commit and END after it (or after its rollback), under
    one write id. Between the two, no worker stores an answer on the write's topics: such an
    answer may have read the data before the commit, and if the END were lost, nothing would
    drop it. A BEGIN whose END never comes holds for PENDING_SECONDS.
    """

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.entries = Entries(MAX_BYTES)
        self._lock = threading.Lock()
        self._pid = 0
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._last_heard = 0.0
        self._next_attempt = 0.0
        # Announcements are numbered as they arrive, so that an answer built while one of its
        # topics was announced is not stored (it may have read the data before the change).
        self._received = 0
        self._received_by_topic: dict[str, int] = {}
        self._forgotten_before = 0
        self._pending: dict[str, tuple[float, frozenset[str]]] = {}  # write id -> (until, topics)

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
            if not self._subscription_ready() or mark < self._forgotten_before or self._touched(topics, mark):
                return
            headers = [(name, value) for name, value in response.headers.items() if name.lower() != "content-length"]
            entry = Entry(response.status_code, headers, response.get_data(), topics, time.monotonic() + seconds)
            self.entries.put(key, entry)

    def _touched(self, topics: frozenset[str], mark: int) -> bool:
        """Was one of these topics announced after `mark`, or is a write on one under way?"""
        if any(self._received_by_topic.get(topic, 0) > mark for topic in (*topics, EVERYTHING)):
            return True
        now = time.monotonic()
        for write_id, (until, pending) in list(self._pending.items()):
            if until <= now:
                del self._pending[write_id]
            elif not pending.isdisjoint(topics):
                return True
        return False

    # -- writing --------------------------------------------------------------------------
    def announce(self, phase: str, write_id: str, topics: Iterable[str], *, confirm: bool = False) -> None:
        """Tell every worker, this one included, to drop the entries of these topics.
        With `confirm`, return only once Redis has passed the announcement to every subscriber."""
        names = sorted(set(topics))
        with self._lock:
            self.entries.drop(names)
            client = self._redis()
        client.publish(self.channel, " ".join([phase, write_id, *names]))
        if confirm:
            client.ping()  # answered on a later turn of Redis' event loop, after it wrote to subscribers

    # -- the subscription -----------------------------------------------------------------
    def _redis(self) -> redis.Redis:
        if self._pid != os.getpid():  # a forked worker must not use its parent's sockets
            self._pid, self._client, self._pubsub = os.getpid(), None, None
            self._forget_everything()
            self._next_attempt = 0.0
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url,
                # RESP2: RESP3 connections may reconnect on their own (maintenance
                # notifications), and a silent reconnect would lose announcements.
                protocol=2,
                client_name=self.channel,
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
            if now - self._last_heard > HEARTBEAT_SECONDS:
                # Only the answer to our own ping proves that we have read everything Redis
                # sent before it: once a second, a lookup waits for one.
                self._pubsub.ping()
                deadline = now + REDIS_TIMEOUT_SECONDS
                while self._last_heard != now and (left := deadline - time.monotonic()) > 0:
                    if (message := self._pubsub.get_message(timeout=left)) is not None:
                        self._receive(message, now)
        except (redis.RedisError, OSError) as exc:
            log.warning("response cache off until Redis answers again: %s", exc)
            self._forget_everything()
            self._next_attempt = now + HEARTBEAT_SECONDS
            return False
        return now - self._last_heard <= HEARTBEAT_SECONDS

    def _receive(self, message: dict[str, Any], now: float) -> None:
        kind = message["type"]
        if kind in ("subscribe", "pong"):
            self._last_heard = now
        if kind == "subscribe":  # (re)subscribed: what was announced before is unknown
            self._forget_everything(keep_subscription=True)
        elif kind == "message":
            phase, _, rest = message["data"].decode().partition(" ")
            write_id, _, names = rest.partition(" ")
            topics = names.split() or [EVERYTHING]  # not one of ours: forget everything
            self._received += 1
            self.entries.drop(topics)
            if phase == BEGIN:
                self._pending[write_id] = (now + PENDING_SECONDS, frozenset(topics))
            else:
                self._pending.pop(write_id, None)
            if len(self._received_by_topic) > MAX_TRACKED:
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
            hit.headers["X-Cache"] = "hit"
            return hit  # type: ignore[return-value]
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code == 200:
            cache.store(key, mark, response, topics_of_answer(), lifetime())
        return response  # type: ignore[return-value]

    return cached


def _query_names(schema: type[ma.Schema] | None) -> frozenset[str]:
    """The query parameters a read takes, from its arguments schema: others (ignored by the
    API) must not multiply the entries."""
    if schema is None:
        return frozenset()
    return frozenset(field.data_key or name for name, field in schema().fields.items())


def _query(names: frozenset[str]) -> str:
    return urlencode(sorted((k, v) for k, v in request.args.items(multi=True) if k in names))


def cached_catalog_read(query: type[ma.Schema] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Answer a public catalog read (no token) from memory while the catalog is unchanged;
    `query` is the read's query-arguments schema."""
    names = _query_names(query)

    def key() -> Any:
        # With a token the answer may show inactive items (admins): never shared.
        if "Authorization" in request.headers:
            return None
        return ("catalog", request.path, _query(names))

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        return _cached(view, key, lambda: frozenset({CATALOG}), lambda: CATALOG_ENTRY_SECONDS)

    return decorator


def _caller_topics() -> frozenset[str]:
    user: User = current_user
    topics = {user_topic(user.id), CATALOG}  # answers name subjects and courses
    if user.customer is not None:
        topics.add(customer_topic(user.customer.id))
    return frozenset(topics)


def _caller_lifetime() -> float:
    """No entry outlives its token."""
    return min(CALLER_ENTRY_SECONDS, get_jwt()["exp"] - time.time())


def cached_caller_read(query: type[ma.Schema] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Answer a caller's repeated read of its own data from memory; `query` is the read's
    query-arguments schema. Goes outside the authentication guard: the first read with a
    token takes the full check, and only its 200 answer is kept, for that exact token alone,
    until the caller's account, tokens or data change."""
    names = _query_names(query)

    def key() -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return None
        return ("caller", token, request.path, _query(names))

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        return _cached(view, key, _caller_topics, _caller_lifetime)

    return decorator


# -- announcing ORM changes -------------------------------------------------------------------
@event.listens_for(Session, "after_flush")
def _announce_before_commit(session: Session, _flush_context: UOWTransaction) -> None:
    cache = response_cache()
    if cache is None:
        return
    topics: set[str] = set()
    critical = False
    for instances, change in ((session.new, "new"), (session.dirty, "dirty"), (session.deleted, "deleted")):
        for instance in instances:
            names, is_critical = topics_of(instance, change)
            topics |= names
            critical = critical or (is_critical and bool(names))
    if not topics:
        return
    write_id, announced = session.info.setdefault(_WRITE, (uuid.uuid4().hex, set()))
    announced.update(topics)
    try:
        cache.announce(BEGIN, write_id, topics)
    except (redis.RedisError, OSError) as exc:
        if critical:
            raise ServiceUnavailable(
                "This change cannot be made while the cache cannot be told about it. Please retry shortly."
            ) from exc
        log.error("could not announce a change of %s: %s", sorted(topics), exc)


@event.listens_for(Session, "after_commit")
def _announce_after_commit(session: Session) -> None:
    _announce_end(session, confirm=True)


@event.listens_for(Session, "after_soft_rollback")
def _announce_after_rollback(session: Session, _previous_transaction: Any) -> None:
    _announce_end(session, confirm=False)


def _announce_end(session: Session, *, confirm: bool) -> None:
    write = session.info.pop(_WRITE, None)
    cache = response_cache()
    if write is None or cache is None:
        return
    write_id, topics = write
    try:
        cache.announce(END, write_id, topics, confirm=confirm)
    except (redis.RedisError, OSError) as exc:
        log.error(
            "could not announce the end of a change of %s: workers cache none of it for %ss (%s)",
            sorted(topics),
            PENDING_SECONDS,
            exc,
        )
