"""What the benchmarks share: a database of their own, and customers with minted tokens."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pymysql
import requests
from flask import Flask
from flask_jwt_extended import create_access_token
from sqlalchemy.engine import URL, make_url

from shared.extensions import db
from shared.models import Customer, Role, User, UserSession
from shared.models.base import utcnow

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET = "bench-only-secret-long-enough-for-hs256-signing-0123456789"  # noqa: S105


def connect(url: URL, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=database,
    )


def create_database(url: URL, *, fresh: bool) -> None:
    """The benchmark's database (dropped first when `fresh`)."""
    with connect(url) as raw, raw.cursor() as cursor:
        if fresh:
            cursor.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
        cursor.execute(
            f"CREATE DATABASE IF NOT EXISTS `{url.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )


def app_settings(database_url: str, **extra: str) -> dict[str, str]:
    """The app's environment in a benchmark: its own database, a minted-token secret, no
    rate limits, no payment provider (purchases are owned at once), quiet logs."""
    return {
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": BENCH_SECRET,
        "RATELIMIT_ENABLED": "false",
        "PAYMENT_PROVIDER": "none",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def migrated_app(database_url: str) -> Flask:
    """The app on a fresh, migrated benchmark database, with the benchmarks' settings
    (`PAYMENT_PROVIDER=none`: purchases are owned at once)."""
    create_database(make_url(database_url), fresh=True)
    os.environ.setdefault("APP_ENV", "testing")
    from flask_migrate import upgrade

    from app import create_app

    app = create_app(
        {
            "DATABASE_URL": database_url,
            "JWT_SECRET_KEY": BENCH_SECRET,
            "LOG_LEVEL": "WARNING",
            "PAYMENT_PROVIDER": "none",
        }
    )
    with app.app_context():
        upgrade()
    return app


def bench_customer(email: str, phone_number: str) -> tuple[Customer, str]:
    """A student with a customer profile and a session (flushed, not committed) and an access
    token: the benchmarks mint tokens instead of logging in."""
    user = User(email=email, full_name="Bench", role=Role.STUDENT, is_active=True)
    user.password_hash = "!"  # noqa: S105 - matches no password
    db.session.add(user)
    db.session.flush()
    customer = Customer(user_id=user.id, email=email, phone_number=phone_number)
    db.session.add(customer)
    session = UserSession(id=secrets.token_hex(16), user_id=user.id, expires_at=utcnow() + timedelta(days=1))
    db.session.add(session)
    db.session.flush()
    return customer, create_access_token(identity=str(user.id), additional_claims={"sid": session.id})


def gunicorn(module: str, port: int, workers: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
        # No worker recycling (gunicorn.conf.py's max_requests) while measuring: a restart
        # costs the app its import time, which is no request's work, and the floor far less.
        "--max-requests", "0",
        module,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{module} did not start; see {log}")
