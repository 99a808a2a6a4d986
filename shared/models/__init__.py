"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""

from shared.models.customer import Customer, Plan, Subscription, SubscriptionStatus
from shared.models.user import RevokedToken, Role, User

__all__ = ["Customer", "Plan", "RevokedToken", "Role", "Subscription", "SubscriptionStatus", "User"]
