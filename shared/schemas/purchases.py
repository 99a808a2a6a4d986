"""Request and response shapes of purchases."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from shared.models import PurchaseType
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.catalog import MAX_BUNDLE_SUBJECTS, subject_ids_field
from shared.schemas.fields import Currency, Id, Money, UtcDateTime
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


class PurchaseResultSchema(ResponseSchema):
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["created", "already_owned"]),
        metadata={"description": "`created` (201) or `already_owned` (200: nothing was bought)"},
    )
    purchase = ma.fields.Nested(PurchaseSchema, allow_none=True, metadata={"description": "The new purchase"})
    purchases = ma.fields.List(
        ma.fields.Nested(PurchaseSchema),
        metadata={"description": "The new purchase, or those that own the subjects"},
    )
    cards_created = ma.fields.Integer(required=True)
    currency = Currency()


class PurchaseListQuerySchema(PageQuerySchema):
    customer_id = Id(strict=False, metadata={"description": "Admins only: one customer's purchases"})


PurchasePageSchema = page_schema(PurchaseSchema, "PurchasePage")
