"""The two databases the suite runs on: MariaDB (production dialect) and SQLite."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pymysql
from sqlalchemy.engine import make_url

DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/exam_shop_test"


def mariadb_url() -> str:
    return os.environ.get("TEST_MARIADB_URL") or DEFAULT_MARIADB_URL


def galera_urls() -> list[str]:
    """TEST_GALERA_URLS: one URL per node of a Galera cluster, separated by commas, all naming
    the test database (`make test-galera`). The race servers then run one per node."""
    return [url.strip() for url in os.environ.get("TEST_GALERA_URLS", "").split(",") if url.strip()]


def mariadb_required() -> bool:
    """Under CI (or when asked) a missing MariaDB fails the run instead of skipping."""
    flags = (os.environ.get("REQUIRE_MARIADB", ""), os.environ.get("CI", ""))
    return any(flag.lower() in {"1", "true", "yes"} for flag in flags)


@dataclass(frozen=True)
class DatabaseUnderTest:
    backend: str
    url: str


def sibling_url(url: str, suffix: str) -> str:
    """The same server, another database named after this one (runs on other test
    databases, side by side, keep apart)."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{suffix}").render_as_string(hide_password=False)


def recreate_mariadb_database(url: str) -> str:
    """Drop and create the test database; return the server version."""
    parsed = make_url(url)
    connection = pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        connect_timeout=5,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")
            cursor.execute(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cursor.execute("SELECT VERSION()")
            (version,) = cursor.fetchone()
    finally:
        connection.close()
    return version
