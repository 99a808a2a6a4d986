"""On a Galera cluster (`make test-galera`): every node takes writes, and a transaction that
loses certification fails at COMMIT with a deadlock (1213), which the unit of work runs again.

The race suite itself (tests/test_races_*.py) runs with one gunicorn per node; these tests
check the cluster it runs on and the one behaviour that differs from a single server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from app import create_app
from shared.errors import is_lock_error
from shared.extensions import db
from shared.services.base import retry_on_lock_conflict, transactional
from tests.conftest import app_config
from tests.support.databases import galera_urls

pytestmark = pytest.mark.skipif(
    len(galera_urls()) < 2, reason="needs a Galera cluster: run `make test-galera` (sets TEST_GALERA_URLS)"
)

BUMP = text("UPDATE catalog_version SET version = version + 1")


def node_status(url: str) -> dict[str, str]:
    parsed = make_url(url)
    connection = pymysql.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password or ""
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_ready')")
            status = {name: str(value) for name, value in cursor.fetchall()}
            cursor.execute("SELECT @@wsrep_node_name")
            status["node"] = cursor.fetchone()[0]
    finally:
        connection.close()
    return status


def test_the_race_servers_reach_every_node_of_one_cluster(mariadb: Flask) -> None:
    nodes = [node_status(url) for url in galera_urls()]
    assert all(node["wsrep_cluster_size"] == str(len(nodes)) and node["wsrep_ready"] == "ON" for node in nodes)
    assert len({node["node"] for node in nodes}) == len(nodes), "each server must use its own node"


@pytest.fixture
def other_node(mariadb: Flask) -> Iterator[Engine]:
    """An engine on the second node, while the test's app uses the first."""
    engine = create_engine(galera_urls()[1])
    yield engine
    engine.dispose()


def test_a_write_that_loses_certification_fails_at_commit_as_a_deadlock(mariadb: Flask, other_node: Engine) -> None:
    with mariadb.app_context():
        db.session.execute(BUMP)  # a row lock on this node only
        with other_node.begin() as connection:
            connection.execute(BUMP)  # commits first, on the other node: not blocked by our lock
        with pytest.raises(OperationalError) as lost:
            db.session.commit()
        db.session.rollback()
    assert lost.value.orig.args[0] == 1213
    assert is_lock_error(lost.value)


def test_a_unit_of_work_that_loses_certification_runs_again(mariadb: Flask, other_node: Engine) -> None:
    attempts: list[int] = []

    @retry_on_lock_conflict
    @transactional
    def bump() -> None:
        attempts.append(1)
        db.session.execute(BUMP)
        if len(attempts) == 1:
            with other_node.begin() as connection:
                connection.execute(BUMP)

    with mariadb.app_context():
        before = db.session.execute(text("SELECT version FROM catalog_version")).scalar_one()
        db.session.commit()
        bump()
        after = db.session.execute(text("SELECT version FROM catalog_version")).scalar_one()
    assert len(attempts) == 2
    assert after == before + 2  # the other node's write and ours, once


def test_every_node_takes_writes_and_sees_the_others(mariadb: Flask) -> None:
    apps = [create_app(app_config(url)) for url in galera_urls()]
    for index, flask_app in enumerate(apps):
        with flask_app.app_context():
            db.session.execute(BUMP)
            db.session.commit()
            seen = {db.session.execute(text("SELECT version FROM catalog_version")).scalar_one()}
            db.session.commit()
        for other in apps[index + 1 :]:
            with other.app_context():
                seen.add(db.session.execute(text("SELECT version FROM catalog_version")).scalar_one())
                db.session.remove()
        assert len(seen) == 1, "a node read before applying a commit of another (wsrep_sync_wait)"
    for flask_app in apps:
        with flask_app.app_context():
            db.engine.dispose()
