"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""
