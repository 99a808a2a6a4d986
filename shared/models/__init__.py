"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""

from shared.models.course import Bundle, CatalogVersion, Course, Subject, bundle_subjects
from shared.models.customer import Customer, Plan, Subscription, SubscriptionStatus
from shared.models.purchase import (
    CardStatus,
    IdempotencyKey,
    MockTestAttempt,
    Purchase,
    PurchaseItem,
    PurchaseType,
)
from shared.models.question import Difficulty, Question
from shared.models.user import Role, User, UserSession

__all__ = [
    "Bundle",
    "CardStatus",
    "CatalogVersion",
    "Course",
    "Customer",
    "Difficulty",
    "IdempotencyKey",
    "MockTestAttempt",
    "Plan",
    "Purchase",
    "PurchaseItem",
    "PurchaseType",
    "Question",
    "Role",
    "Subject",
    "Subscription",
    "SubscriptionStatus",
    "User",
    "UserSession",
    "bundle_subjects",
]
