"""Settings read from the environment (and a `.env` file), turned into Flask config.

Every variable is listed and explained in `.env.example`. With nothing set the app runs
in development on an embedded SQLite file under `instance/`; production refuses to
start with the development JWT secret.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "instance" / "exam_shop.sqlite3"
DEVELOPMENT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"  # noqa: S105
PAYMENT_PROVIDERS = ("razorpay", "sandbox", "none")
# What the sandbox signs with when nothing is set (development and tests only).
SANDBOX_PAYMENT_KEYS = {
    "PAYMENT_KEY_ID": "rzp_test_sandbox",
    "PAYMENT_KEY_SECRET": "sandbox-key-secret-not-for-production",
    "PAYMENT_WEBHOOK_SECRET": "sandbox-webhook-secret-not-for-production",
}


class ConfigError(RuntimeError):
    """The environment describes a configuration the app must not run with."""


def load_dotenv_file() -> None:
    """`.env` fills in what the environment does not say, unless ENV_FILE=none (the test
    suite sets it: its settings must not depend on a developer's file)."""
    if os.environ.get("ENV_FILE", "").strip().lower() != "none":
        load_dotenv(PROJECT_ROOT / ".env", override=False)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def _env_list(name: str, default: list[str]) -> list[str]:
    value = _env(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_host(host: str) -> str | None:
    """The host as a browser writes it in `Origin` (IDNA as punycode, IPv6 in brackets), or
    None when it is not a host name or address (`local host`, `*.example.com`)."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return ascii_host if _HOST_NAME.fullmatch(ascii_host) else None


def normalise_origins(origins: str | list[str]) -> list[str]:
    """CORS_ORIGINS (a list, or text separated by commas) as browsers send `Origin`:
    `scheme://host[:port]`, lower case, no trailing slash (`https://shop.example/` would match
    nothing), no default port (`https://shop.example:443` is sent as `https://shop.example`),
    an international name in punycode. `*` allows every origin. Anything else (a path, a
    query, no scheme, a host that is not one, a wildcard inside a host) is refused, not
    silently never matched."""
    if isinstance(origins, str):
        origins = [item.strip() for item in origins.split(",") if item.strip()]
    normalised: list[str] = []
    for origin in origins:
        if origin == "*":
            normalised.append(origin)
            continue
        try:
            parts = urlsplit(origin.rstrip("/"))
            port = parts.port
        except ValueError:
            parts, port = None, None
        scheme = parts.scheme.lower() if parts else ""
        host = _origin_host(parts.hostname) if parts and parts.hostname else None
        if (
            parts is None
            or scheme not in _DEFAULT_PORTS
            or host is None
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ConfigError(
                f"CORS_ORIGINS: {origin!r} is not an origin; write scheme://host[:port], "
                "for example https://shop.example.com or http://localhost:5173 (or * for every origin)"
            )
        normalised.append(f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else ""))
    return list(dict.fromkeys(normalised))


def normalise_database_url(url: str) -> str:
    """Accept the usual spellings of a MySQL URL and always use the PyMySQL driver."""
    for prefix in ("mysql://", "mariadb://", "mariadb+pymysql://"):
        if url.startswith(prefix):
            return "mysql+pymysql://" + url[len(prefix) :]
    return url


def engine_options(
    database_url: str,
    *,
    connect_timeout: int,
    read_timeout: int,
    statement_timeout: int = 0,
    pool_timeout: int | None = None,
    pre_ping: bool = True,
) -> dict[str, Any]:
    """Engine options per dialect: utf8mb4, pool hygiene and timeouts for MySQL.

    `statement_timeout` (seconds, 0: none) is MariaDB's `max_statement_time`: the server
    aborts a statement that runs too long (error 1969) and the connection stays usable,
    whereas a read timeout only gives up on the socket and leaves the statement running.
    """
    if database_url.startswith("mysql"):
        connect_args: dict[str, Any] = {
            "charset": "utf8mb4",
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": read_timeout,
        }
        if statement_timeout:
            # /*M! ... */ is executed by MariaDB only; MySQL, which has no such variable, skips it.
            connect_args["init_command"] = (
                f"SET @statement_timeout = {statement_timeout}"
                f" /*M! , SESSION max_statement_time = {statement_timeout} */"
            )
        return {
            # Off saves a round trip per request; then a connection the server dropped fails
            # its request once (503) before SQLAlchemy renews the worker's pool.
            "pool_pre_ping": pre_ping,
            "pool_recycle": 280,
            # The pool's own ROLLBACK on return is replaced by one sent only when the
            # connection's last transaction did not end with a rollback: see
            # shared.extensions.roll_back_on_return_only_when_open, which create_app installs
            # for an engine with this option.
            "pool_reset_on_return": None,
            "pool_size": 10,
            "max_overflow": 10,
            "pool_timeout": connect_timeout if pool_timeout is None else pool_timeout,
            "connect_args": connect_args,
        }
    if database_url.startswith("sqlite"):
        # Several threads of the dev server (and gunicorn workers) share one file;
        # wait for a lock instead of failing at once.
        return {"connect_args": {"timeout": read_timeout, "check_same_thread": False}}
    return {"pool_pre_ping": True}


SENTINEL_SCHEMES = ("redis+sentinel://", "valkey+sentinel://")


def sentinel_address(url: str) -> tuple[list[tuple[str, int]], str]:
    """`redis+sentinel://host:port,host:port/service` (the form `limits` takes) as the
    sentinels and the service (master) name Flask-Caching's RedisSentinelCache takes."""
    hosts, _, service = url.split("://", 1)[1].partition("/")
    sentinels = []
    for host in filter(None, hosts.rpartition("@")[2].split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        sentinels.append((name, int(port)))
    if not sentinels or not service.strip("/"):
        raise ConfigError(f"{url!r}: write redis+sentinel://host:port[,host:port...]/service_name")
    return sentinels, service.strip("/")


def cache_settings(redis_url: str | None) -> dict[str, Any]:
    """Flask-Caching on Redis when CACHE_REDIS_URL is set (through Sentinel when it is a
    redis+sentinel:// URL), else no cache at all."""
    if not redis_url:
        return {"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True}
    # A hung Redis costs a quarter second, then the database answers.
    timeouts = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}
    shared = {
        "CACHE_KEY_PREFIX": _env("CACHE_KEY_PREFIX", "exam-shop:"),
        "CACHE_DEFAULT_TIMEOUT": _env_int("CACHE_DEFAULT_TIMEOUT", 5, minimum=1),
    }
    if redis_url.startswith(SENTINEL_SCHEMES):
        sentinels, service = sentinel_address(redis_url)
        return {
            "CACHE_TYPE": "RedisSentinelCache",
            "CACHE_REDIS_SENTINELS": sentinels,
            "CACHE_REDIS_SENTINEL_MASTER": service,
            **shared,
            # The sentinels answer within the same quarter second as the master.
            "CACHE_OPTIONS": {**timeouts, **{f"sentinel_{name}": value for name, value in timeouts.items()}},
        }
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, **shared, "CACHE_OPTIONS": timeouts}


# Left of the worker timeout once the database has given up: the app's own work and the answer.
RESPONSE_HEADROOM_SECONDS = 5


@dataclass(frozen=True)
class TimeLimits:
    """The time limits that must agree, in seconds: gunicorn.conf.py and the engine read them.

    A request on a stalled database (packets held, nothing refused) must answer 503 well
    inside gunicorn's worker timeout, which is also the deadline a proxy in front should give.
    """

    worker_timeout: int  # WORKER_TIMEOUT
    connect_timeout: int  # DB_CONNECT_TIMEOUT
    read_timeout: int  # DB_READ_TIMEOUT
    statement_timeout: int  # DB_STATEMENT_TIMEOUT, MariaDB max_statement_time (0: off)
    pool_timeout: int  # DB_POOL_TIMEOUT

    @property
    def database_worst_case(self) -> int:
        """The longest a request may wait on the database before its 503.

        Waiting for a pooled connection, its pre-ping timing out on the stalled socket, a
        reconnect (TCP connect), then the handshake or the statement timing out (measured
        on a stall: 2 x DB_READ_TIMEOUT for a pooled connection, 1 x for a new one).
        """
        return self.pool_timeout + self.read_timeout + self.connect_timeout + self.read_timeout

    def validate(self) -> None:
        if self.statement_timeout and self.statement_timeout >= self.read_timeout:
            raise ConfigError(
                f"DB_STATEMENT_TIMEOUT ({self.statement_timeout}) must be shorter than DB_READ_TIMEOUT "
                f"({self.read_timeout}): the server should abort a long statement before the client gives up"
            )
        budget = self.worker_timeout - RESPONSE_HEADROOM_SECONDS
        if self.database_worst_case > budget:
            raise ConfigError(
                f"A stalled database could hold a request {self.database_worst_case}s "
                f"(DB_POOL_TIMEOUT + 2 x DB_READ_TIMEOUT + DB_CONNECT_TIMEOUT), more than WORKER_TIMEOUT "
                f"({self.worker_timeout}) minus {RESPONSE_HEADROOM_SECONDS}s: shorten those or raise WORKER_TIMEOUT"
            )


def time_limits_from_env() -> TimeLimits:
    load_dotenv_file()
    return TimeLimits(
        worker_timeout=_env_int("WORKER_TIMEOUT", 30, minimum=1),
        connect_timeout=_env_int("DB_CONNECT_TIMEOUT", 3, minimum=1),
        read_timeout=_env_int("DB_READ_TIMEOUT", 5, minimum=1),
        statement_timeout=_env_int("DB_STATEMENT_TIMEOUT", 4),
        pool_timeout=_env_int("DB_POOL_TIMEOUT", 2, minimum=1),
    )


REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "redis+unix://",
    "valkey://",
    "valkeys://",
    "valkey+unix://",
    *SENTINEL_SCHEMES,
)


# flask-limiter writes its Retry-After on every response of a limited route (a successful
# login said `Retry-After: 0`); it writes this header instead, and only a 429 passes it on
# as Retry-After (shared/errors.py: retry_after_only_when_refused).
LIMITER_RETRY_AFTER = "X-Limiter-Retry-After"


def rate_limit_config() -> dict[str, Any]:
    """flask-limiter settings, and the limits of the account routes."""
    if _env("RATELIMIT_LOGIN_PER_ACCOUNT") is not None:
        raise ConfigError(
            "RATELIMIT_LOGIN_PER_ACCOUNT is gone: failed logins are limited per account and client "
            "(RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT) and, more loosely, per account "
            "(RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT); see .env.example"
        )
    storage_uri = _env("RATELIMIT_STORAGE_URI") or "memory://"
    storage_options: dict[str, Any] = {}
    if storage_uri.startswith(REDIS_SCHEMES):
        # redis-py waits 5 s per call by default: a hung Redis would hold every login that long.
        timeout = _env_int("RATELIMIT_STORAGE_TIMEOUT_MS", 250, minimum=1) / 1000
        storage_options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if storage_uri.startswith(SENTINEL_SCHEMES):
            # limits gives the sentinels themselves no timeout unless told.
            storage_options["sentinel_kwargs"] = dict(storage_options)
    return {
        "RATELIMIT_ENABLED": _env_bool("RATELIMIT_ENABLED", True),
        "RATELIMIT_STORAGE_URI": storage_uri,
        "RATELIMIT_STORAGE_OPTIONS": storage_options,
        "RATELIMIT_KEY_PREFIX": _env("RATELIMIT_KEY_PREFIX", ""),
        # When the storage fails, each worker counts in its own memory (the same limits, per
        # worker) and tries the storage again after 1, 2, 4 ... 32 s; errors never reach a client.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": _env_bool("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True),
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_HEADER_RETRY_AFTER": LIMITER_RETRY_AFTER,
        "RATELIMIT_LOGIN_PER_CLIENT": _env("RATELIMIT_LOGIN_PER_CLIENT", "20 per minute"),
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT": _env(
            "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT", "5 per minute"
        ),
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT": _env("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT", "100 per hour"),
        "RATELIMIT_REGISTER_PER_CLIENT": _env("RATELIMIT_REGISTER_PER_CLIENT", "10 per hour"),
        "RATELIMIT_PASSWORD_RESET_PER_CLIENT": _env("RATELIMIT_PASSWORD_RESET_PER_CLIENT", "10 per hour"),
        "RATELIMIT_PASSWORD_RESET_PER_ACCOUNT": _env("RATELIMIT_PASSWORD_RESET_PER_ACCOUNT", "3 per hour"),
        "RATELIMIT_VERIFICATION_RESEND_PER_ACCOUNT": _env("RATELIMIT_VERIFICATION_RESEND_PER_ACCOUNT", "3 per hour"),
        "RATELIMIT_PASSWORD_CHANGE_FAILURES_PER_ACCOUNT": _env(
            "RATELIMIT_PASSWORD_CHANGE_FAILURES_PER_ACCOUNT", "5 per 15 minutes"
        ),
    }


def payment_config(app_env: str) -> dict[str, Any]:
    """The payment provider and its keys (README "Payments")."""
    provider = _env("PAYMENT_PROVIDER", "razorpay" if app_env == "production" else "sandbox")
    if provider not in PAYMENT_PROVIDERS:
        raise ConfigError(f"PAYMENT_PROVIDER must be one of {', '.join(PAYMENT_PROVIDERS)}, not {provider!r}")
    keys_default = provider != "razorpay" and app_env != "production"
    return {
        "PAYMENT_PROVIDER": provider,
        **{name: _env(name, default if keys_default else None) for name, default in SANDBOX_PAYMENT_KEYS.items()},
        # Razorpay's API root; tests point it at a local fake. Empty: the SDK's own.
        "PAYMENT_API_BASE_URL": _env("PAYMENT_API_BASE_URL"),
        "PAYMENT_API_TIMEOUT": _env_int("PAYMENT_API_TIMEOUT", 5, minimum=1),
        "PAYMENT_PENDING_MINUTES": _env_int("PAYMENT_PENDING_MINUTES", 30, minimum=1),
        # How far back `flask reconcile-payments` looks at failed checkouts.
        "PAYMENT_RECONCILE_HOURS": _env_int("PAYMENT_RECONCILE_HOURS", 48, minimum=1),
    }


MAIL_BACKENDS = ("log", "smtp")


def mail_config(app_env: str) -> dict[str, Any]:
    """How `flask send-mail` sends the outbox (README "Mail"): Flask-Mail's setting names.
    `log` (the default outside production) writes each message to the log instead."""
    backend = _env("MAIL_BACKEND", "smtp" if app_env == "production" else "log")
    if backend not in MAIL_BACKENDS:
        raise ConfigError(f"MAIL_BACKEND must be one of {', '.join(MAIL_BACKENDS)}, not {backend!r}")
    use_tls, use_ssl = _env_bool("MAIL_USE_TLS", False), _env_bool("MAIL_USE_SSL", False)
    if use_tls and use_ssl:
        raise ConfigError("MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL (implicit TLS) exclude each other: choose one")
    return {
        "MAIL_BACKEND": backend,
        "MAIL_SERVER": _env("MAIL_SERVER", "localhost"),
        "MAIL_PORT": _env_int("MAIL_PORT", 465 if use_ssl else 587 if use_tls else 25, minimum=1),
        "MAIL_USE_TLS": use_tls,
        "MAIL_USE_SSL": use_ssl,
        "MAIL_USERNAME": _env("MAIL_USERNAME"),
        "MAIL_PASSWORD": _env("MAIL_PASSWORD"),
        "MAIL_DEFAULT_SENDER": _env("MAIL_DEFAULT_SENDER", "Exam-prep shop <no-reply@localhost>"),
        "MAIL_TIMEOUT": _env_int("MAIL_TIMEOUT", 10, minimum=1),
        "MAIL_BATCH_SIZE": _env_int("MAIL_BATCH_SIZE", 20, minimum=1),
        # A claimed batch is a worker's for this long; a crashed worker's messages are due again after it.
        "MAIL_LEASE_SECONDS": _env_int("MAIL_LEASE_SECONDS", 300, minimum=1),
        "MAIL_MAX_ATTEMPTS": _env_int("MAIL_MAX_ATTEMPTS", 8, minimum=1),
        "MAIL_RETRY_SECONDS": _env_int("MAIL_RETRY_SECONDS", 60),
        # The SPA's address: mailed links point at its pages (/verify-email, /reset-password).
        "FRONTEND_URL": (_env("FRONTEND_URL", "http://localhost:5173") or "").rstrip("/"),
        "EMAIL_VERIFICATION_HOURS": _env_int("EMAIL_VERIFICATION_HOURS", 48, minimum=1),
        "PASSWORD_RESET_MINUTES": _env_int("PASSWORD_RESET_MINUTES", 30, minimum=1),
    }


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment, then apply overrides."""
    load_dotenv_file()
    overrides = dict(overrides or {})

    app_env = overrides.pop("APP_ENV", None) or _env("APP_ENV", "development")
    if app_env not in {"development", "production", "testing"}:
        raise ConfigError(f"APP_ENV must be development, production or testing, not {app_env!r}")

    database_url = normalise_database_url(
        overrides.pop("DATABASE_URL", None) or _env("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    )
    limits = time_limits_from_env()

    config: dict[str, Any] = {
        "APP_ENV": app_env,
        "TESTING": app_env == "testing",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(
            database_url,
            connect_timeout=limits.connect_timeout,
            read_timeout=limits.read_timeout,
            statement_timeout=limits.statement_timeout,
            pool_timeout=limits.pool_timeout,
            pre_ping=_env_bool("DB_POOL_PRE_PING", True),
        ),
        # Attempts of a unit of work that lost a lock conflict (a deadlock, a lock wait timeout,
        # on Galera a lost certification) before the request gets its 503.
        "DB_LOCK_ATTEMPTS": _env_int("DB_LOCK_ATTEMPTS", 3, minimum=1),
        "TIME_LIMITS": limits,
        "JWT_SECRET_KEY": _env("JWT_SECRET_KEY", DEVELOPMENT_JWT_SECRET),
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=_env_int("JWT_ACCESS_MINUTES", 15, 1)),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=_env_int("JWT_REFRESH_DAYS", 30, 1)),
        "JWT_TOKEN_LOCATION": ["headers"],
        # Tokens travel in the Authorization header only: no cookie, so no CSRF claim in them.
        "JWT_COOKIE_CSRF_PROTECT": False,
        "CORS_ORIGINS": _env_list("CORS_ORIGINS", ["http://localhost:5173", "http://127.0.0.1:5173"]),
        **rate_limit_config(),
        "TRUSTED_PROXY_COUNT": _env_int("TRUSTED_PROXY_COUNT", 0),
        # Catalog reads: ETag from the catalog version, and how long clients may reuse them.
        "CATALOG_MAX_AGE": _env_int("CATALOG_MAX_AGE", 30),
        "CATALOG_STALE_WHILE_REVALIDATE": _env_int("CATALOG_STALE_WHILE_REVALIDATE", 60),
        # Each worker remembers the catalog version this long (0: asks every time), so that a
        # 304 needs no round trip; well inside CATALOG_MAX_AGE, which clients may reuse anyway.
        "CATALOG_VERSION_WORKER_SECONDS": _env_int("CATALOG_VERSION_WORKER_SECONDS", 1),
        # Optional shared cache (Flask-Caching on Redis) of the catalog version.
        **cache_settings(_env("CACHE_REDIS_URL")),
        "MAX_CONTENT_LENGTH": _env_int("MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1024),
        "MOCK_TESTS_PER_SUBJECT": _env_int("MOCK_TESTS_PER_SUBJECT", 50, minimum=1),
        "MOCK_TEST_QUESTION_COUNT": _env_int("MOCK_TEST_QUESTION_COUNT", 10, minimum=1),
        "MOCK_TEST_DURATION_MINUTES": _env_int("MOCK_TEST_DURATION_MINUTES", 30, minimum=1),
        "MOCK_TEST_GRACE_SECONDS": _env_int("MOCK_TEST_GRACE_SECONDS", 30),
        "CURRENCY": _env("CURRENCY", "INR"),
        "DEFAULT_PHONE_REGION": _env("DEFAULT_PHONE_REGION", "IN"),
        "RETRY_AFTER_SECONDS": _env_int("RETRY_AFTER_SECONDS", 5, minimum=1),
        # Seconds after which a claimed Idempotency-Key without an outcome may be taken over
        # by a retry (README "Purchases"): by then the claiming request has had a connection
        # and a full read timeout for its transaction, and a late one can no longer commit.
        # A request holds its key at most until the deadline of every request; a slower one
        # loses the key (the claim is its fencing token) and rolls back.
        "IDEMPOTENCY_CLAIM_TIMEOUT": _env_int("IDEMPOTENCY_CLAIM_TIMEOUT", limits.worker_timeout, minimum=1),
        **payment_config(app_env),
        **mail_config(app_env),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO"),
        # flask-smorest / OpenAPI
        "API_TITLE": "Exam-prep shop API",
        "API_VERSION": "1.0",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        # Served by the app from the swagger-ui-bundle package (shared/openapi.py): no CDN.
        "OPENAPI_SWAGGER_UI_URL": "/api/docs/assets/",
    }
    config.update(overrides)
    config["CORS_ORIGINS"] = normalise_origins(config["CORS_ORIGINS"])
    validate_config(config)
    return config


def validate_config(config: dict[str, Any]) -> None:
    """Refuse configurations that are unsafe outside development."""
    config["TIME_LIMITS"].validate()
    if config["MAIL_LEASE_SECONDS"] < 3 * config["MAIL_TIMEOUT"]:
        raise ConfigError(
            f"MAIL_LEASE_SECONDS ({config['MAIL_LEASE_SECONDS']}) must be at least 3 x MAIL_TIMEOUT "
            f"({config['MAIL_TIMEOUT']}): a message must be sent well inside its worker's claim"
        )
    if config["APP_ENV"] == "production":
        secret = config["JWT_SECRET_KEY"]
        if secret == DEVELOPMENT_JWT_SECRET or len(secret) < 32:
            raise ConfigError(
                "APP_ENV=production needs JWT_SECRET_KEY set to a random value of at least "
                "32 characters (for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            raise ConfigError("APP_ENV=production needs DATABASE_URL pointing at MySQL/MariaDB")
        if config["PAYMENT_PROVIDER"] != "razorpay":
            raise ConfigError(
                "APP_ENV=production takes payments through PAYMENT_PROVIDER=razorpay, "
                f"not {config['PAYMENT_PROVIDER']!r}"
            )
        missing = [name for name, sandbox in SANDBOX_PAYMENT_KEYS.items() if config.get(name) in {None, "", sandbox}]
        if missing:
            raise ConfigError(f"APP_ENV=production needs {', '.join(missing)} (from the Razorpay dashboard)")
    elif config["PAYMENT_PROVIDER"] == "razorpay":
        missing = [name for name in SANDBOX_PAYMENT_KEYS if not config.get(name)]
        if missing:
            raise ConfigError(f"PAYMENT_PROVIDER=razorpay needs {', '.join(missing)}")
