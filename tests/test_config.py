"""Settings from the environment, and what production refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask_caching.backends.rediscache import RedisSentinelCache
from limits.storage import RedisSentinelStorage, storage_from_string

from shared.config import DEVELOPMENT_JWT_SECRET, PROJECT_ROOT, ConfigError, load_config

STRONG_SECRET = "s" * 48
MYSQL = "mysql://x@h/d"


def test_defaults_run_in_development_on_embedded_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APP_ENV", "DATABASE_URL", "JWT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = load_config()
    assert config["APP_ENV"] == "development"
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["SQLALCHEMY_DATABASE_URI"].endswith("instance/exam_shop.sqlite3")
    assert config["MOCK_TESTS_PER_SUBJECT"] == 50


def test_mysql_url_gets_utf8mb4_pool_hygiene_and_timeouts() -> None:
    config = load_config({"DATABASE_URL": "mysql://shop:pw@db.internal/shop"})
    assert config["SQLALCHEMY_DATABASE_URI"] == "mysql+pymysql://shop:pw@db.internal/shop"
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_pre_ping"] is True  # a dropped connection never fails a request
    assert options["pool_recycle"] < 3600
    assert options["connect_args"]["charset"] == "utf8mb4"
    assert options["connect_args"]["connect_timeout"] > 0
    assert options["connect_args"]["read_timeout"] > 0


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        load_config(
            {
                "APP_ENV": "production",
                "DATABASE_URL": MYSQL,
                "JWT_SECRET_KEY": DEVELOPMENT_JWT_SECRET,
            }
        )


def test_production_refuses_a_short_secret_and_sqlite() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        load_config({"APP_ENV": "production", "DATABASE_URL": MYSQL, "JWT_SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config({"APP_ENV": "production", "DATABASE_URL": "sqlite:///x.db", "JWT_SECRET_KEY": STRONG_SECRET})


RAZORPAY_KEYS = {
    "PAYMENT_KEY_ID": "rzp_live_0123456789",
    "PAYMENT_KEY_SECRET": "a-real-key-secret",
    "PAYMENT_WEBHOOK_SECRET": "a-real-webhook-secret",
}


def test_production_starts_with_a_real_secret_and_mysql() -> None:
    config = load_config(
        {"APP_ENV": "production", "DATABASE_URL": MYSQL, "JWT_SECRET_KEY": STRONG_SECRET, **RAZORPAY_KEYS}
    )
    assert config["APP_ENV"] == "production"
    assert config["PAYMENT_PROVIDER"] == "razorpay"


@pytest.mark.parametrize("provider", ["sandbox", "none"])
def test_production_refuses_the_sandbox_and_no_payments(provider: str) -> None:
    production = {"APP_ENV": "production", "DATABASE_URL": MYSQL, "JWT_SECRET_KEY": STRONG_SECRET, **RAZORPAY_KEYS}
    with pytest.raises(ConfigError, match="PAYMENT_PROVIDER=razorpay"):
        load_config({**production, "PAYMENT_PROVIDER": provider})


@pytest.mark.parametrize("missing", sorted(RAZORPAY_KEYS))
def test_production_refuses_missing_payment_secrets(missing: str) -> None:
    keys = {name: value for name, value in RAZORPAY_KEYS.items() if name != missing}
    with pytest.raises(ConfigError, match=missing):
        load_config({"APP_ENV": "production", "DATABASE_URL": MYSQL, "JWT_SECRET_KEY": STRONG_SECRET, **keys})


def test_development_pays_in_the_sandbox_with_nothing_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PAYMENT_PROVIDER", *RAZORPAY_KEYS):
        monkeypatch.delenv(name, raising=False)
    config = load_config({"APP_ENV": "development"})
    assert config["PAYMENT_PROVIDER"] == "sandbox"
    assert all(config[name] for name in RAZORPAY_KEYS)
    monkeypatch.setenv("PAYMENT_PROVIDER", "razorpay")
    with pytest.raises(ConfigError, match="PAYMENT_KEY_ID"):
        load_config({"APP_ENV": "development"})


def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_TESTS_PER_SUBJECT", "fifty")
    with pytest.raises(ConfigError, match="MOCK_TESTS_PER_SUBJECT"):
        load_config()
    monkeypatch.setenv("MOCK_TESTS_PER_SUBJECT", "50")
    monkeypatch.setenv("RATELIMIT_ENABLED", "perhaps")
    with pytest.raises(ConfigError, match="RATELIMIT_ENABLED"):
        load_config()


TIME_LIMIT_VARIABLES = (
    "WORKER_TIMEOUT",
    "DB_CONNECT_TIMEOUT",
    "DB_READ_TIMEOUT",
    "DB_STATEMENT_TIMEOUT",
    "DB_POOL_TIMEOUT",
)


@pytest.fixture
def default_time_limits(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in TIME_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_time_limits_end_a_stalled_request_well_inside_the_worker_timeout(
    default_time_limits: pytest.MonkeyPatch,
) -> None:
    config = load_config({"DATABASE_URL": MYSQL})
    limits = config["TIME_LIMITS"]
    assert limits.worker_timeout == 30
    assert limits.database_worst_case == 15  # 2 (pool) + 5 (pre-ping) + 3 (connect) + 5 (statement)
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_timeout"] == 2
    assert options["connect_args"]["connect_timeout"] == 3
    assert options["connect_args"]["read_timeout"] == 5
    assert "SESSION max_statement_time = 4" in options["connect_args"]["init_command"]


def test_database_limits_that_outlast_the_worker_timeout_are_refused(default_time_limits: pytest.MonkeyPatch) -> None:
    default_time_limits.setenv("DB_READ_TIMEOUT", "12")
    with pytest.raises(ConfigError, match="WORKER_TIMEOUT"):
        load_config({"DATABASE_URL": MYSQL})
    default_time_limits.setenv("WORKER_TIMEOUT", "60")
    assert load_config({"DATABASE_URL": MYSQL})["TIME_LIMITS"].database_worst_case == 29


def test_a_statement_timeout_not_shorter_than_the_read_timeout_is_refused(
    default_time_limits: pytest.MonkeyPatch,
) -> None:
    default_time_limits.setenv("DB_STATEMENT_TIMEOUT", "5")
    with pytest.raises(ConfigError, match="DB_STATEMENT_TIMEOUT"):
        load_config({"DATABASE_URL": MYSQL})
    default_time_limits.setenv("DB_STATEMENT_TIMEOUT", "0")  # off
    assert "init_command" not in load_config({"DATABASE_URL": MYSQL})["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]


def gunicorn_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "--print-config", "app:app"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gunicorn_conf_takes_its_timeouts_from_the_app_settings_and_refuses_disagreeing_ones() -> None:
    shipped = gunicorn_settings({"WORKER_TIMEOUT": "45"})
    assert shipped.returncode == 0, shipped.stderr
    settings = dict(line.split(" = ", 1) for line in shipped.stdout.splitlines() if " = " in line)
    settings = {name.strip(): value.strip() for name, value in settings.items()}
    assert settings["worker_class"] == "gthread"
    assert (settings["timeout"], settings["graceful_timeout"]) == ("45", "45")
    assert int(settings["threads"]) >= 4
    assert settings["max_requests_jitter"] != "0"
    refused = gunicorn_settings({"DB_READ_TIMEOUT": "20"})
    assert refused.returncode != 0
    assert "WORKER_TIMEOUT" in refused.stderr


def test_a_redis_rate_limit_store_gets_short_timeouts_and_a_memory_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("RATELIMIT_STORAGE_TIMEOUT_MS", "300")
    config = load_config()
    assert config["RATELIMIT_STORAGE_OPTIONS"] == {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}
    assert config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] is True
    assert config["RATELIMIT_SWALLOW_ERRORS"] is True
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "memory://")
    assert load_config()["RATELIMIT_STORAGE_OPTIONS"] == {}


def test_redis_behind_sentinel_gets_the_same_timeouts_for_limits_and_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/shop")
    monkeypatch.setenv("RATELIMIT_STORAGE_TIMEOUT_MS", "300")
    monkeypatch.setenv("CACHE_REDIS_URL", "redis+sentinel://10.0.0.1:26379,10.0.0.2/shop")
    config = load_config()
    timeouts = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}
    assert config["RATELIMIT_STORAGE_OPTIONS"] == {**timeouts, "sentinel_kwargs": timeouts}
    assert config["CACHE_TYPE"] == "RedisSentinelCache"
    assert config["CACHE_REDIS_SENTINELS"] == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert config["CACHE_REDIS_SENTINEL_MASTER"] == "shop"
    assert config["CACHE_OPTIONS"]["sentinel_socket_timeout"] == 0.25
    monkeypatch.setenv("CACHE_REDIS_URL", "redis+sentinel://10.0.0.1:26379")
    with pytest.raises(ConfigError, match="service_name"):
        load_config()


def test_redis_behind_sentinel_settings_are_the_ones_limits_and_flask_caching_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis+sentinel://127.0.0.1:1/shop")
    monkeypatch.setenv("CACHE_REDIS_URL", "redis+sentinel://127.0.0.1:1/shop")
    config = load_config()
    storage = storage_from_string(config["RATELIMIT_STORAGE_URI"], **config["RATELIMIT_STORAGE_OPTIONS"])
    assert isinstance(storage, RedisSentinelStorage)
    assert storage.service_name == "shop"
    cache = RedisSentinelCache.factory(Flask(__name__), config, [], dict(config["CACHE_OPTIONS"]))
    assert cache._write_client.connection_pool.service_name == "shop"


def test_the_old_per_account_login_limit_is_refused_with_its_replacements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATELIMIT_LOGIN_PER_ACCOUNT", "5 per minute")
    with pytest.raises(ConfigError, match="RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT"):
        load_config()


def test_cors_origins_are_normalised_and_malformed_ones_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://Shop.Example.com/, http://localhost:5173 ,http://[::1]:8080/")
    assert load_config()["CORS_ORIGINS"] == ["https://shop.example.com", "http://localhost:5173", "http://[::1]:8080"]
    # Browsers leave out the default port and write international names in punycode.
    monkeypatch.setenv("CORS_ORIGINS", "https://shop.example.com:443,http://LOCALHOST:80,https://bücher.example")
    assert load_config()["CORS_ORIGINS"] == [
        "https://shop.example.com",
        "http://localhost",
        "https://xn--bcher-kva.example",
    ]
    monkeypatch.setenv("CORS_ORIGINS", "https://shop.example.com, https://SHOP.example.com/,http://[0:0::1]:8080")
    assert load_config()["CORS_ORIGINS"] == ["https://shop.example.com", "http://[::1]:8080"]
    for malformed in (
        "localhost:5173",
        "https://shop.example.com/app",
        "ftp://shop.example.com",
        "http://",
        "http://x:99999",
        "http://local host:5173",
        "https://*.example.com",
        "http://shop..example",
        "http://[::g]:8080",
        "null",
    ):
        monkeypatch.setenv("CORS_ORIGINS", malformed)
        with pytest.raises(ConfigError, match="CORS_ORIGINS"):
            load_config()


def test_mail_is_logged_in_development_and_sent_over_smtp_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    development = load_config({"APP_ENV": "development"})
    assert (development["MAIL_BACKEND"], development["MAIL_PORT"]) == ("log", 25)
    production = load_config(
        {"APP_ENV": "production", "DATABASE_URL": MYSQL, "JWT_SECRET_KEY": STRONG_SECRET, **RAZORPAY_KEYS}
    )
    assert production["MAIL_BACKEND"] == "smtp"
    monkeypatch.setenv("MAIL_USE_TLS", "true")
    assert load_config()["MAIL_PORT"] == 587
    monkeypatch.setenv("MAIL_USE_SSL", "true")
    with pytest.raises(ConfigError, match="MAIL_USE_TLS"):
        load_config()
    monkeypatch.delenv("MAIL_USE_TLS")
    assert load_config()["MAIL_PORT"] == 465
    monkeypatch.setenv("MAIL_BACKEND", "carrier-pigeon")
    with pytest.raises(ConfigError, match="MAIL_BACKEND"):
        load_config()
    monkeypatch.setenv("MAIL_BACKEND", "smtp")
    monkeypatch.setenv("MAIL_LEASE_SECONDS", "20")
    with pytest.raises(ConfigError, match="MAIL_LEASE_SECONDS"):
        load_config()
