"""The migrations build exactly the schema the models declare, and walk both ways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from shared.extensions import db
from tests.conftest import app_config
from tests.support.databases import DatabaseUnderTest, recreate_mariadb_database, sibling_url


def test_models_match_the_migrated_schema(app: Flask) -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


@pytest.fixture(params=["sqlite", "mariadb"])
def scratch_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on an empty database of its own, for walking the migration history."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('scratch')}/scratch.sqlite3"
    else:
        main: DatabaseUnderTest = request.getfixturevalue("mariadb_database")
        url = sibling_url(main.url, "exam_shop_test_scratch")
        recreate_mariadb_database(url)
    flask_app = create_app(app_config(url))
    with flask_app.app_context():
        yield flask_app
        db.engine.dispose()


def test_upgrade_downgrade_to_base_and_upgrade_again(scratch_app: Flask) -> None:
    upgrade()
    tables = set(inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables
    downgrade(revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade()
    assert set(db.metadata.tables) <= set(inspect(db.engine).get_table_names())
