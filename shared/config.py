"""Settings read from the environment (and a `.env` file), turned into Flask config.

Every variable is listed and explained in `.env.example`. With nothing set the app runs
in development on an embedded SQLite file under `instance/`; production refuses to
start with the development JWT secret.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "instance" / "exam_shop.sqlite3"
DEVELOPMENT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"  # noqa: S105


class ConfigError(RuntimeError):
    """The environment describes a configuration the app must not run with."""


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


def normalise_database_url(url: str) -> str:
    """Accept the usual spellings of a MySQL URL and always use the PyMySQL driver."""
    for prefix in ("mysql://", "mariadb://", "mariadb+pymysql://"):
        if url.startswith(prefix):
            return "mysql+pymysql://" + url[len(prefix) :]
    return url


def engine_options(database_url: str, *, connect_timeout: int, read_timeout: int) -> dict[str, Any]:
    """Engine options per dialect: utf8mb4, pool hygiene and timeouts for MySQL."""
    if database_url.startswith("mysql"):
        return {
            "pool_pre_ping": True,
            "pool_recycle": 280,
            "pool_size": 10,
            "max_overflow": 10,
            "pool_timeout": connect_timeout,
            "connect_args": {
                "charset": "utf8mb4",
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "write_timeout": read_timeout,
            },
        }
    if database_url.startswith("sqlite"):
        # Several threads of the dev server (and gunicorn workers) share one file;
        # wait for a lock instead of failing at once.
        return {"connect_args": {"timeout": read_timeout, "check_same_thread": False}}
    return {"pool_pre_ping": True}


REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "valkey://", "valkeys://", "valkey+unix://")


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
        "RATELIMIT_LOGIN_PER_CLIENT": _env("RATELIMIT_LOGIN_PER_CLIENT", "20 per minute"),
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT": _env(
            "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT", "5 per minute"
        ),
        "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT": _env("RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT", "100 per hour"),
        "RATELIMIT_REGISTER_PER_CLIENT": _env("RATELIMIT_REGISTER_PER_CLIENT", "10 per hour"),
    }


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment, then apply overrides."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    overrides = dict(overrides or {})

    app_env = overrides.pop("APP_ENV", None) or _env("APP_ENV", "development")
    if app_env not in {"development", "production", "testing"}:
        raise ConfigError(f"APP_ENV must be development, production or testing, not {app_env!r}")

    database_url = normalise_database_url(
        overrides.pop("DATABASE_URL", None) or _env("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    )
    connect_timeout = _env_int("DB_CONNECT_TIMEOUT", 5, minimum=1)
    read_timeout = _env_int("DB_READ_TIMEOUT", 30, minimum=1)

    config: dict[str, Any] = {
        "APP_ENV": app_env,
        "TESTING": app_env == "testing",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(
            database_url, connect_timeout=connect_timeout, read_timeout=read_timeout
        ),
        "JWT_SECRET_KEY": _env("JWT_SECRET_KEY", DEVELOPMENT_JWT_SECRET),
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=_env_int("JWT_ACCESS_MINUTES", 15, 1)),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=_env_int("JWT_REFRESH_DAYS", 30, 1)),
        "JWT_TOKEN_LOCATION": ["headers"],
        "CORS_ORIGINS": _env_list("CORS_ORIGINS", ["http://localhost:5173", "http://127.0.0.1:5173"]),
        **rate_limit_config(),
        "TRUSTED_PROXY_COUNT": _env_int("TRUSTED_PROXY_COUNT", 0),
        "MAX_CONTENT_LENGTH": _env_int("MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1024),
        "MOCK_TESTS_PER_SUBJECT": _env_int("MOCK_TESTS_PER_SUBJECT", 50, minimum=1),
        "MOCK_TEST_QUESTION_COUNT": _env_int("MOCK_TEST_QUESTION_COUNT", 10, minimum=1),
        "MOCK_TEST_DURATION_MINUTES": _env_int("MOCK_TEST_DURATION_MINUTES", 30, minimum=1),
        "MOCK_TEST_GRACE_SECONDS": _env_int("MOCK_TEST_GRACE_SECONDS", 30),
        "CURRENCY": _env("CURRENCY", "INR"),
        "DEFAULT_PHONE_REGION": _env("DEFAULT_PHONE_REGION", "IN"),
        "RETRY_AFTER_SECONDS": _env_int("RETRY_AFTER_SECONDS", 5, minimum=1),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO"),
        # flask-smorest / OpenAPI
        "API_TITLE": "Exam-prep shop API",
        "API_VERSION": "1.0",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
    }
    config.update(overrides)
    validate_config(config)
    return config


def validate_config(config: dict[str, Any]) -> None:
    """Refuse configurations that are unsafe outside development."""
    if config["APP_ENV"] == "production":
        secret = config["JWT_SECRET_KEY"]
        if secret == DEVELOPMENT_JWT_SECRET or len(secret) < 32:
            raise ConfigError(
                "APP_ENV=production needs JWT_SECRET_KEY set to a random value of at least "
                "32 characters (for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            raise ConfigError("APP_ENV=production needs DATABASE_URL pointing at MySQL/MariaDB")
