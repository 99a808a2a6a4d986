"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from shared.openapi import Blueprint
from shared.schemas.common import HealthSchema, ReadinessSchema
from shared.services.health import HealthService

blp = Blueprint("health", __name__, url_prefix="/health", description="Liveness and readiness probes")


@blp.route("")
@blp.response(200, HealthSchema)
def liveness() -> dict[str, str]:
    """The process is alive (touches nothing else)."""
    return {"status": "ok"}


@blp.route("/ready")
@blp.response(200, ReadinessSchema)
@blp.problems(503)
def readiness() -> dict[str, str]:
    """The process can serve requests: the database answers."""
    HealthService.check_database()
    return {"status": "ok", "database": "ok"}
