"""The catalog: courses, subjects and bundles. Reads are public; changes are for admins."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, url_for

from shared.conditional import conditional_read
from shared.models import Bundle, Course, Subject
from shared.openapi import Blueprint
from shared.schemas.catalog import (
    BUNDLE_ITEMS,
    COURSE_ITEMS,
    SUBJECT_ITEMS,
    BundleCreateSchema,
    BundleListQuerySchema,
    BundlePageSchema,
    BundleSchema,
    BundleSubjectsSchema,
    BundleUpdateSchema,
    CourseCreateSchema,
    CourseDetailSchema,
    CourseListQuerySchema,
    CoursePageSchema,
    CourseUpdateSchema,
    SubjectCreateSchema,
    SubjectSchema,
    SubjectUpdateSchema,
)
from shared.schemas.lean import json_response, page_response
from shared.security import admin_required, viewer_is_admin
from shared.services.catalog import CatalogService

blp = Blueprint(
    "courses",
    __name__,
    url_prefix="/api",
    description="The catalog: courses, subjects and bundles. Inactive items are shown to admins only.",
)


def catalog_etag() -> str:
    """Every catalog read changes with the catalog version; admins see more than the public."""
    return f"catalog-{CatalogService.version()}{'-admin' if viewer_is_admin() else ''}"


def catalog_cache_control() -> str:
    if viewer_is_admin():
        return "private, no-cache"
    max_age, stale = current_app.config["CATALOG_MAX_AGE"], current_app.config["CATALOG_STALE_WHILE_REVALIDATE"]
    return f"public, max-age={max_age}, stale-while-revalidate={stale}"


catalog_read = conditional_read(catalog_etag, catalog_cache_control)


@blp.route("/courses")
@catalog_read.without_query  # no query, nothing to refuse: its 304 needs no parsing
@blp.arguments(CourseListQuerySchema, location="query")  # an invalid query is a 422, never a 304
@catalog_read
@blp.response(200, CoursePageSchema)  # documents the answer, which the view dumps itself
@blp.problems(401, 422)
def list_courses(query: dict[str, Any]) -> Response:
    """Courses by title, with their subject count and price range."""
    found = CatalogService.list_courses(query["page"], query["per_page"], query.get("q"), viewer_is_admin())
    return page_response(found, COURSE_ITEMS)


@blp.route("/courses/<id:course_id>")
@catalog_read
@blp.response(200, CourseDetailSchema)
@blp.problems(401, 404)
def get_course(course_id: int) -> Course:
    """A course with its subjects, prices and bundles."""
    return CatalogService.get_course(course_id, viewer_is_admin())


@blp.route("/courses/<id:course_id>/subjects")
@catalog_read
@blp.response(200, SubjectSchema(many=True))  # documents the answer, which the view dumps itself
@blp.problems(401, 404)
def list_subjects(course_id: int) -> Response:
    return json_response(SUBJECT_ITEMS.many(CatalogService.list_subjects(course_id, viewer_is_admin())))


@blp.route("/bundles")
@catalog_read.without_query  # no query, nothing to refuse: its 304 needs no parsing
@blp.arguments(BundleListQuerySchema, location="query")  # an invalid query is a 422, never a 304
@catalog_read
@blp.response(200, BundlePageSchema)  # documents the answer, which the view dumps itself
@blp.problems(401, 422)
def list_bundles(query: dict[str, Any]) -> Response:
    """Bundles with their subjects, price, the subjects' total and the saving."""
    found = CatalogService.list_bundles(query["page"], query["per_page"], query.get("course_id"), viewer_is_admin())
    return page_response(found, BUNDLE_ITEMS)


@blp.route("/bundles/<id:bundle_id>")
@catalog_read
@blp.response(200, BundleSchema)
@blp.problems(401, 404)
def get_bundle(bundle_id: int) -> Bundle:
    return CatalogService.get_bundle(bundle_id, viewer_is_admin())


@blp.route("/courses", methods=["POST"])
@admin_required
@blp.arguments(CourseCreateSchema)
@blp.response(201, CourseDetailSchema, location=lambda course: url_for("courses.get_course", course_id=course.id))
@blp.problems(401, 403, 409, 422)
def create_course(data: dict[str, Any]) -> Course:
    """Create a course (a taken slug is a 409 on `slug`)."""
    return CatalogService.create_course(data)


@blp.route("/courses/<id:course_id>", methods=["PATCH"])
@admin_required
@blp.arguments(CourseUpdateSchema(partial=True))
@blp.response(200, CourseDetailSchema)
@blp.problems(401, 403, 404, 409, 422)
def update_course(data: dict[str, Any], course_id: int) -> Course:
    return CatalogService.update_course(course_id, data)


@blp.route("/courses/<id:course_id>", methods=["DELETE"])
@admin_required
@blp.response(204)
@blp.problems(401, 403, 404, 409)
def delete_course(course_id: int) -> None:
    """Delete a course with its subjects and bundles; 409 when any of them was bought."""
    CatalogService.delete_course(course_id)


@blp.route("/courses/<id:course_id>/subjects", methods=["POST"])
@admin_required
@blp.arguments(SubjectCreateSchema)
@blp.response(
    201, SubjectSchema, location=lambda subject, **_: url_for("courses.update_subject", subject_id=subject.id)
)
@blp.problems(401, 403, 404, 409, 422)
def create_subject(data: dict[str, Any], course_id: int) -> Subject:
    """Add a subject (names are unique within a course: 409 on `name`)."""
    return CatalogService.create_subject(course_id, data)


@blp.route("/subjects/<id:subject_id>", methods=["PATCH"])
@admin_required
@blp.arguments(SubjectUpdateSchema(partial=True))
@blp.response(200, SubjectSchema)
@blp.problems(401, 403, 404, 409, 422)
def update_subject(data: dict[str, Any], subject_id: int) -> Subject:
    return CatalogService.update_subject(subject_id, data)


@blp.route("/subjects/<id:subject_id>", methods=["DELETE"])
@admin_required
@blp.response(204)
@blp.problems(401, 403, 404, 409)
def delete_subject(subject_id: int) -> None:
    """Delete a subject; 409 when it was bought or belongs to a bundle."""
    CatalogService.delete_subject(subject_id)


@blp.route("/bundles", methods=["POST"])
@admin_required
@blp.arguments(BundleCreateSchema)
@blp.response(201, BundleSchema, location=lambda bundle: url_for("courses.get_bundle", bundle_id=bundle.id))
@blp.problems(401, 403, 409, 422)
def create_bundle(data: dict[str, Any]) -> Bundle:
    """Create a bundle of subjects of one course (others are a 422 on `subject_ids`)."""
    return CatalogService.create_bundle(data)


@blp.route("/bundles/<id:bundle_id>", methods=["PATCH"])
@admin_required
@blp.arguments(BundleUpdateSchema(partial=True))
@blp.response(200, BundleSchema)
@blp.problems(401, 403, 404, 409, 422)
def update_bundle(data: dict[str, Any], bundle_id: int) -> Bundle:
    return CatalogService.update_bundle(bundle_id, data)


@blp.route("/bundles/<id:bundle_id>/subjects", methods=["PUT"])
@admin_required
@blp.arguments(BundleSubjectsSchema)
@blp.response(200, BundleSchema)
@blp.problems(401, 403, 404, 422)
def set_bundle_subjects(data: dict[str, Any], bundle_id: int) -> Bundle:
    """Replace the bundle's subjects."""
    return CatalogService.set_bundle_subjects(bundle_id, data["subject_ids"])


@blp.route("/bundles/<id:bundle_id>", methods=["DELETE"])
@admin_required
@blp.response(204)
@blp.problems(401, 403, 404, 409)
def delete_bundle(bundle_id: int) -> None:
    """Delete a bundle; 409 when it was bought."""
    CatalogService.delete_bundle(bundle_id)
