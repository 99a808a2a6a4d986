"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""

from shared.models.accounts import Customer, Plan, Role, Subscription, SubscriptionStatus, User, UserSession
from shared.models.cards import (
    AttemptAnswer,
    CardStatus,
    ExamPattern,
    MockTestAttempt,
    Outcome,
    Paper,
    PaperQuestion,
)
from shared.models.catalog import Bundle, CatalogVersion, Course, Subject, bundle_subjects
from shared.models.idempotency import IdempotencyKey
from shared.models.purchases import (
    ItemState,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Provider,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
    PurchaseType,
    Refund,
    RefundStatus,
)
from shared.models.questions import Difficulty, Question, QuestionType, QuestionVersion
from shared.models.results import Bookmark

__all__ = [
    "AttemptAnswer",
    "Bookmark",
    "Bundle",
    "CardStatus",
    "CatalogVersion",
    "Course",
    "Customer",
    "Difficulty",
    "ExamPattern",
    "IdempotencyKey",
    "ItemState",
    "MockTestAttempt",
    "Outcome",
    "Paper",
    "PaperQuestion",
    "Payment",
    "PaymentEvent",
    "PaymentStatus",
    "Plan",
    "Provider",
    "Purchase",
    "PurchaseItem",
    "PurchaseStatus",
    "PurchaseType",
    "Question",
    "QuestionType",
    "QuestionVersion",
    "Refund",
    "RefundStatus",
    "Role",
    "Subject",
    "Subscription",
    "SubscriptionStatus",
    "User",
    "UserSession",
    "bundle_subjects",
]
