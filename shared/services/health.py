"""Readiness: can we reach the database right now?"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.errors import database_unavailable
from shared.extensions import db

log = logging.getLogger(__name__)


class HealthService:
    @staticmethod
    def check_database() -> None:
        """Raise ServiceUnavailable unless the database answers a trivial query."""
        try:
            db.session.execute(text("SELECT 1")).scalar_one()
        except DBAPIError as exc:
            db.session.rollback()
            log.error("readiness check failed: %s", exc.orig)
            raise database_unavailable() from exc
        finally:
            db.session.close()
