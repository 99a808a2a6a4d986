"""Request and response shapes of the catalog."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from shared.models.catalog import DEFAULT_ACCESS_DAYS
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import SLUG, Currency, Id, Money, Name, validate_price
from shared.schemas.lean import LeanDump
from shared.schemas.pagination import PageQuerySchema, page_schema

MAX_BUNDLE_SUBJECTS = 100
ACCESS_DAYS = "Days of access a purchase gives, from its payment (a bundle's apply to all its subjects)"


def access_days_field() -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        load_default=DEFAULT_ACCESS_DAYS,
        validate=ma.validate.Range(min=1, max=3650),
        metadata={"description": ACCESS_DAYS},
    )


def description_field(**kwargs: object) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Length(max=5000), **kwargs)


class SubjectSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    course_id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    price = Money(dump_only=True)
    currency = Currency()
    is_active = ma.fields.Boolean(dump_only=True)
    access_days = ma.fields.Integer(dump_only=True, metadata={"description": ACCESS_DAYS})


class BundleSubjectSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(dump_only=True)
    price = Money(dump_only=True)


class BundleSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    slug = ma.fields.String(dump_only=True)
    title = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    course_id = ma.fields.Integer(dump_only=True)
    price = Money(dump_only=True)
    currency = Currency()
    subjects_total = Money(dump_only=True, metadata={"description": "What the subjects cost one by one"})
    saving = Money(dump_only=True, metadata={"description": "subjects_total - price"})
    is_active = ma.fields.Boolean(dump_only=True)
    access_days = ma.fields.Integer(dump_only=True, metadata={"description": ACCESS_DAYS})
    subjects = ma.fields.List(ma.fields.Nested(BundleSubjectSchema), dump_only=True)


class CourseSummarySchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    slug = ma.fields.String(dump_only=True)
    title = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    is_active = ma.fields.Boolean(dump_only=True)
    subject_count = ma.fields.Integer(dump_only=True)
    min_price = Money(dump_only=True, allow_none=True)
    max_price = Money(dump_only=True, allow_none=True)
    currency = Currency()


class CourseDetailSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    slug = ma.fields.String(dump_only=True)
    title = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    is_active = ma.fields.Boolean(dump_only=True)
    currency = Currency()
    subjects = ma.fields.List(ma.fields.Nested(SubjectSchema), dump_only=True)
    bundles = ma.fields.List(ma.fields.Nested(BundleSchema), dump_only=True)


class CourseListQuerySchema(PageQuerySchema):
    q = ma.fields.String(validate=ma.validate.Length(min=1, max=100), metadata={"description": "Search in titles"})


class BundleListQuerySchema(PageQuerySchema):
    course_id = Id(strict=False)


class CourseCreateSchema(Schema):
    slug = ma.fields.String(required=True, validate=[ma.validate.Length(max=80), SLUG])
    title = Name(max_length=200, required=True)
    description = description_field(load_default="")
    is_active = ma.fields.Boolean(load_default=True)


class CourseUpdateSchema(CourseCreateSchema):
    """The same fields, all optional: load it with `partial=True` (no defaults filled in)."""


class SubjectCreateSchema(Schema):
    name = Name(required=True)
    description = description_field(load_default="")
    price = Money(required=True, validate=validate_price)
    is_active = ma.fields.Boolean(load_default=True)
    access_days = access_days_field()


class SubjectUpdateSchema(SubjectCreateSchema):
    """The same fields, all optional: load it with `partial=True` (no defaults filled in)."""


def _unique_ids(ids: list[int]) -> None:
    if len(set(ids)) != len(ids):
        raise ma.ValidationError("Each subject may appear only once.")


def subject_ids_field(**kwargs: Any) -> ma.fields.List:
    """2 to MAX_BUNDLE_SUBJECTS distinct subject ids."""
    kwargs.setdefault(
        "metadata", {"description": f"2 to {MAX_BUNDLE_SUBJECTS} distinct subjects of the bundle's course"}
    )
    return ma.fields.List(
        Id(),
        validate=[ma.validate.Length(min=2, max=MAX_BUNDLE_SUBJECTS), _unique_ids],
        **kwargs,
    )


class BundleCreateSchema(Schema):
    slug = ma.fields.String(required=True, validate=[ma.validate.Length(max=80), SLUG])
    title = Name(max_length=200, required=True)
    description = description_field(load_default="")
    course_id = Id(required=True)
    price = Money(required=True, validate=validate_price)
    subject_ids = subject_ids_field(required=True)
    is_active = ma.fields.Boolean(load_default=True)
    access_days = access_days_field()


class BundleUpdateSchema(BundleCreateSchema):
    """The same fields but the course and the subjects (PUT .../subjects), all optional:
    load it with `partial=True` (no defaults filled in)."""

    class Meta:
        exclude = ("course_id", "subject_ids")


class BundleSubjectsSchema(Schema):
    subject_ids = subject_ids_field(required=True)


CoursePageSchema = page_schema(CourseSummarySchema, "CoursePage")
COURSE_ITEMS = LeanDump(CourseSummarySchema())
BundlePageSchema = page_schema(BundleSchema, "BundlePage")
BUNDLE_ITEMS = LeanDump(BundleSchema())
SUBJECT_ITEMS = LeanDump(SubjectSchema())
