"""Request and response shapes of purchases."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from shared.models import ItemState, Provider, PurchaseStatus, PurchaseType, RefundStatus
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.catalog import MAX_BUNDLE_SUBJECTS, subject_ids_field
from shared.schemas.fields import Currency, Id, Money, UtcDateTime
from shared.schemas.lean import LeanDump
from shared.schemas.pagination import PageQuerySchema, page_schema

# Which id fields each purchase type takes; the others must be absent.
FIELDS_BY_TYPE = {
    PurchaseType.SINGLE_SUBJECT: "subject_id",
    PurchaseType.MULTIPLE_SUBJECTS: "subject_ids",
    PurchaseType.BUNDLE: "bundle_id",
}


class PurchaseRequestSchema(Schema):
    purchase_type = ma.fields.Enum(PurchaseType, by_value=True, required=True)
    course_id = Id(
        metadata={"description": "Optional: when given, every subject must belong to this course"},
    )
    subject_id = Id(metadata={"description": "For single_subject"})
    subject_ids = subject_ids_field(
        metadata={"description": f"For multiple_subjects: 2 to {MAX_BUNDLE_SUBJECTS} distinct subjects"}
    )
    bundle_id = Id(metadata={"description": "For bundle"})
    cost = Money(
        validate=ma.validate.Range(min=0),
        metadata={"description": "Optional: the price the client expects; a different price is a 409"},
    )
    customer_id = Id(
        metadata={"description": "Admins only: grant the subjects to this customer without payment (a comp)"}
    )

    @ma.validates_schema
    def ids_match_the_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        purchase_type = data.get("purchase_type")
        if purchase_type is None:
            return
        needed = FIELDS_BY_TYPE[purchase_type]
        errors: dict[str, list[str]] = {}
        if data.get(needed) is None:
            errors[needed] = [f"Required for purchase_type {purchase_type.value}."]
        for other in FIELDS_BY_TYPE.values():
            if other != needed and other in data:
                errors[other] = [f"Not used with purchase_type {purchase_type.value}."]
        if errors:
            raise ma.ValidationError(errors)


class PurchasedSubjectSchema(ResponseSchema):
    subject_id = ma.fields.Integer()
    name = ma.fields.String()
    price = Money()
    cards = ma.fields.Integer(metadata={"description": "Test cards of this subject in this purchase"})
    state = ma.fields.Enum(
        ItemState,
        by_value=True,
        metadata={
            "description": "pending (awaiting payment), active (owned), surplus (paid for but owned already: "
            "due for refund), refunded, expired (access ended, bought again)"
        },
    )
    access_until = UtcDateTime(allow_none=True, metadata={"description": "Owned until then (null: no end)"})


class PurchaseSchema(ResponseSchema):
    id = ma.fields.Integer()
    customer_id = ma.fields.Integer()
    purchase_type = ma.fields.Enum(PurchaseType, by_value=True)
    course_id = ma.fields.Integer(allow_none=True)
    bundle_id = ma.fields.Integer(allow_none=True)
    total_cost = Money()
    currency = ma.fields.String()
    created_at = UtcDateTime()
    subjects = ma.fields.List(ma.fields.Nested(PurchasedSubjectSchema))
    cards_total = ma.fields.Integer()
    status = ma.fields.Enum(PurchaseStatus, by_value=True)
    provider = ma.fields.Enum(Provider, by_value=True)
    provider_order_id = ma.fields.String(allow_none=True)
    expires_at = UtcDateTime(allow_none=True, metadata={"description": "A pending checkout expires then"})
    paid_at = UtcDateTime(allow_none=True)
    refund_due = Money(metadata={"description": "Paid for subjects owned already: to be refunded by an admin"})
    granted_by_id = ma.fields.Integer(allow_none=True, metadata={"description": "The admin who granted a comp"})


class PaymentInstructionsSchema(ResponseSchema):
    provider = ma.fields.String()
    provider_order_id = ma.fields.String(metadata={"description": "Razorpay Checkout's `order_id`"})
    amount = ma.fields.Integer(metadata={"description": "In paise"})
    currency = ma.fields.String()
    key_id = ma.fields.String(metadata={"description": "Razorpay Checkout's `key`"})


class PurchaseResultSchema(ResponseSchema):
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["created", "pending_payment", "paid", "already_owned"]),
        metadata={
            "description": "`pending_payment` (201: pay with `payment`), `created` (201: no payment needed), "
            "`paid` (a confirmed payment) or `already_owned` (200: nothing was bought)"
        },
    )
    purchase = ma.fields.Nested(PurchaseSchema, allow_none=True, metadata={"description": "The new purchase"})
    purchases = ma.fields.List(
        ma.fields.Nested(PurchaseSchema),
        metadata={"description": "The new purchase, or those that own the subjects"},
    )
    cards_created = ma.fields.Integer(required=True)
    currency = Currency()
    payment = ma.fields.Nested(
        PaymentInstructionsSchema, allow_none=True, metadata={"description": "For `pending_payment`: what to pay"}
    )


class PaymentConfirmationSchema(Schema):
    """What Razorpay Checkout hands the SPA's handler (razorpay_order_id, _payment_id, _signature)."""

    provider_order_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    provider_payment_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    signature = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))


class WebhookOutcomeSchema(ResponseSchema):
    status = ma.fields.String(metadata={"description": "processed, duplicate or ignored"})
    event = ma.fields.String()
    detail = ma.fields.String()


class SandboxPaymentSchema(Schema):
    outcome = ma.fields.String(required=True, validate=ma.validate.OneOf(["captured", "failed"]))
    deliver_webhook = ma.fields.Boolean(
        load_default=True, metadata={"description": "Deliver the signed webhook too (false: only the SPA's handler)"}
    )


class SandboxCheckoutSchema(ResponseSchema):
    provider_order_id = ma.fields.String()
    provider_payment_id = ma.fields.String()
    signature = ma.fields.String(allow_none=True, metadata={"description": "Null when the payment failed"})
    outcome = ma.fields.String()
    webhook = ma.fields.Nested(WebhookOutcomeSchema, allow_none=True)


class PurchaseListQuerySchema(PageQuerySchema):
    customer_id = Id(strict=False, metadata={"description": "Admins only: one customer's purchases"})


PurchasePageSchema = page_schema(PurchaseSchema, "PurchasePage")
PURCHASE_ITEMS = LeanDump(PurchaseSchema())


class RefundRequestSchema(Schema):
    subject_ids = ma.fields.List(
        Id(),
        validate=ma.validate.Length(min=1, max=MAX_BUNDLE_SUBJECTS),
        metadata={"description": "The subjects to refund; absent: everything still refundable"},
    )


class RefundSchema(ResponseSchema):
    id = ma.fields.Integer()
    status = ma.fields.Enum(RefundStatus, by_value=True, metadata={"description": "pending, processed or failed"})
    amount = Money()
    subject_ids = ma.fields.List(ma.fields.Integer())
    provider_refund_id = ma.fields.String(allow_none=True)
    requested_by_id = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class RefundResultSchema(ResponseSchema):
    refund = ma.fields.Nested(RefundSchema)
    purchase = ma.fields.Nested(PurchaseSchema)
