"""The catalog: public reads (a fixed number of statements each) and admin management."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import redis
from sqlalchemy import ColumnElement, Select, and_, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import aliased, selectinload

from shared.errors import Conflict, NotFound, ValidationFailed
from shared.extensions import cache, db, worker_cache
from shared.models import Bundle, CatalogVersion, Course, Purchase, PurchaseItem, Subject
from shared.models.catalog import bundle_subjects
from shared.services.base import Page, RowPager, apply_changes, escape_like, require, transactional

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

COURSE_NOT_FOUND = "There is no course with this id."
CATALOG_VERSION_KEY = "catalog-version"
# A shared cache that is away costs a database read, never an error.
_CACHE_ERRORS = (redis.RedisError, OSError)
SUBJECT_NOT_FOUND = "There is no subject with this id."
BUNDLE_NOT_FOUND = "There is no bundle with this id."


def bump_catalog_version() -> None:
    """Inside a transaction that changes the catalog: every catalog read gets a new ETag."""
    db.session.execute(update(CatalogVersion).values(version=CatalogVersion.version + 1))


def forget_catalog_version() -> None:
    """After the commit: this worker and the shared cache read the new version at once
    (other workers within CATALOG_VERSION_WORKER_SECONDS)."""
    worker_cache.delete(CATALOG_VERSION_KEY)
    try:
        cache.delete(CATALOG_VERSION_KEY)
    except _CACHE_ERRORS:
        log.warning("could not drop the cached catalog version; it expires by itself", exc_info=True)


def changes_catalog(method: Callable[P, R]) -> Callable[P, R]:
    """A catalog write: one transaction that also moves the catalog version."""

    @functools.wraps(method)
    def write(*args: P.args, **kwargs: P.kwargs) -> R:
        result = method(*args, **kwargs)
        bump_catalog_version()
        return result

    committed = transactional(write)

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        result = committed(*args, **kwargs)
        forget_catalog_version()
        return result

    return run


# What is for sale is exactly what the public catalog shows: the catalog reads and the
# checkout both filter with these predicates. Each is a condition on its own row (with
# correlated subqueries on aliases), so it adds no statement and no join to a query.


@functools.cache  # an immutable expression: built once, reused by every statement
def course_for_sale() -> ColumnElement[bool]:
    return Course.is_active.is_(True)


@functools.cache
def subject_for_sale() -> ColumnElement[bool]:
    """An active subject of an active course."""
    course = aliased(Course)
    return and_(
        Subject.is_active.is_(True),
        select(course.id).where(course.id == Subject.course_id, course.is_active.is_(True)).exists(),
    )


@functools.cache
def bundle_for_sale() -> ColumnElement[bool]:
    """An active bundle of an active course whose subjects are all active: its price and
    saving are never shown over a subject that is no longer sold."""
    course = aliased(Course)
    subject = aliased(Subject)
    return and_(
        Bundle.is_active.is_(True),
        select(course.id).where(course.id == Bundle.course_id, course.is_active.is_(True)).exists(),
        ~select(bundle_subjects.c.subject_id)
        .join(subject, subject.id == bundle_subjects.c.subject_id)
        .where(bundle_subjects.c.bundle_id == Bundle.id, subject.is_active.is_(False))
        .exists(),
    )


@functools.cache
def _course_pager(by_title: bool, include_inactive: bool) -> RowPager:
    """Courses by title, each with its subject count and price range."""
    courses = select(Course.id).order_by(Course.title, Course.id)
    subjects = Subject.course_id == Course.id
    if not include_inactive:
        courses = courses.where(course_for_sale())
        subjects = and_(subjects, Subject.is_active.is_(True))  # the course is for sale already
    if by_title:
        courses = courses.where(Course.title.like(bindparam("title"), escape="\\"))
    page = courses.with_only_columns(
        Course.id,
        Course.slug,
        Course.title,
        Course.description,
        Course.is_active,
        func.count(Subject.id).label("subject_count"),
        func.min(Subject.price).label("min_price"),
        func.max(Subject.price).label("max_price"),
    ).outerjoin(Subject, subjects)
    return RowPager(page.group_by(Course.id), counting=courses)


SUBJECT_COLUMNS = (
    Subject.id,
    Subject.course_id,
    Subject.name,
    Subject.description,
    Subject.price,
    Subject.is_active,
    Subject.access_days,
)
BUNDLE_FIELDS = ("id", "slug", "title", "description", "course_id", "price", "is_active", "access_days")


@dataclass(frozen=True)
class BundleListing:
    """A bundle as the bundle list shows it, made of selected columns; its figures follow
    the model's own rules."""

    id: int
    slug: str
    title: str
    description: str
    course_id: int
    price: Decimal
    is_active: bool
    access_days: int
    subjects: list[Row[Any]]  # id, name, price

    subjects_total = Bundle.subjects_total
    saving = Bundle.saving


@functools.cache
def _bundle_pager(of_course: bool, include_inactive: bool) -> RowPager:
    bundles = select(Bundle.id) if include_inactive else select(Bundle.id).where(bundle_for_sale())
    if of_course:
        bundles = bundles.where(Bundle.course_id == bindparam("course_id"))
    columns = [getattr(Bundle, name) for name in BUNDLE_FIELDS]
    return RowPager(bundles.with_only_columns(*columns).order_by(Bundle.id), counting=bundles)


def _bundle_loading() -> Any:
    # A bundle for sale has only active subjects, so the public and admins load them all.
    return selectinload(Bundle.subjects)


class CatalogService:
    # ---------------------------------------------------------------- public reads

    @staticmethod
    def version() -> int:
        """The catalog's version: what this worker remembers, else the shared cache's, else
        one primary-key read."""
        remembered = worker_cache.get(CATALOG_VERSION_KEY)
        if remembered is not None:
            return int(remembered)
        try:
            shared = cache.get(CATALOG_VERSION_KEY)
        except _CACHE_ERRORS:
            shared = None
        version = int(shared) if shared is not None else CatalogService._read_version()
        worker_cache.set(CATALOG_VERSION_KEY, version)
        return version

    @staticmethod
    def _read_version() -> int:
        version = db.session.execute(select(CatalogVersion.version).where(CatalogVersion.id == 1)).scalar_one()
        try:
            cache.set(CATALOG_VERSION_KEY, version)
        except _CACHE_ERRORS:
            log.warning("could not cache the catalog version", exc_info=True)
        return version

    @staticmethod
    def list_courses(page: int, per_page: int, search: str | None, include_inactive: bool) -> Page[Row[Any]]:
        """One statement: the page, each course with its subject figures (the columns of
        `CourseSummarySchema`), and the total."""
        pager = _course_pager(search is not None, include_inactive)
        return pager(page, per_page, title=f"%{escape_like(search)}%" if search else None)

    @staticmethod
    def get_course(course_id: int, include_inactive: bool) -> Course:
        """Four statements: the course, its subjects, its bundles, the bundles' subjects."""
        subjects = Course.subjects if include_inactive else Course.subjects.and_(subject_for_sale())
        bundles = Course.bundles if include_inactive else Course.bundles.and_(bundle_for_sale())
        statement = select(Course).where(Course.id == course_id)
        if not include_inactive:
            statement = statement.where(course_for_sale())
        course = db.session.execute(
            statement.options(selectinload(subjects), selectinload(bundles).options(_bundle_loading()))
        ).scalar_one_or_none()
        if course is None:
            raise NotFound(COURSE_NOT_FOUND)
        return course

    @staticmethod
    def list_subjects(course_id: int, include_inactive: bool) -> list[Row[Any]]:
        """Two statements: is the course visible, and its subjects (the columns of `SubjectSchema`)."""
        course = select(Course.id).where(Course.id == course_id)
        subjects = select(*SUBJECT_COLUMNS).where(Subject.course_id == course_id).order_by(Subject.id)
        if not include_inactive:
            course = course.where(course_for_sale())
            subjects = subjects.where(subject_for_sale())
        if db.session.execute(course).first() is None:
            raise NotFound(COURSE_NOT_FOUND)
        return list(db.session.execute(subjects))

    @staticmethod
    def list_bundles(page: int, per_page: int, course_id: int | None, include_inactive: bool) -> Page[BundleListing]:
        """Two statements: the page of bundles with the total, and their subjects."""
        found = _bundle_pager(course_id is not None, include_inactive)(page, per_page, course_id=course_id)
        subjects: dict[int, list[Row[Any]]] = {row.id: [] for row in found.items}
        if subjects:
            for subject in db.session.execute(
                select(bundle_subjects.c.bundle_id, Subject.id, Subject.name, Subject.price)
                .join(Subject, Subject.id == bundle_subjects.c.subject_id)
                .where(bundle_subjects.c.bundle_id.in_(list(subjects)))
                .order_by(Subject.id)
            ):
                subjects[subject.bundle_id].append(subject)
        listings = [
            BundleListing(**{name: getattr(row, name) for name in BUNDLE_FIELDS}, subjects=subjects[row.id])
            for row in found.items
        ]
        return Page(items=listings, page=found.page, per_page=found.per_page, total=found.total)

    @staticmethod
    def get_bundle(bundle_id: int, include_inactive: bool) -> Bundle:
        statement = CatalogService._visible_bundles(include_inactive).where(Bundle.id == bundle_id)
        bundle = db.session.execute(statement.options(_bundle_loading())).scalar_one_or_none()
        if bundle is None:
            raise NotFound(BUNDLE_NOT_FOUND)
        return bundle

    @staticmethod
    def _visible_bundles(include_inactive: bool) -> Select[tuple[Bundle]]:
        statement = select(Bundle)
        return statement if include_inactive else statement.where(bundle_for_sale())

    # ---------------------------------------------------------------- management

    @staticmethod
    @changes_catalog
    def create_course(data: dict[str, Any]) -> Course:
        course = Course(**data)
        db.session.add(course)
        db.session.flush()
        return CatalogService.get_course(course.id, include_inactive=True)

    @staticmethod
    @changes_catalog
    def update_course(course_id: int, data: dict[str, Any]) -> Course:
        apply_changes(require(Course, course_id, COURSE_NOT_FOUND), data)
        return CatalogService.get_course(course_id, include_inactive=True)

    @staticmethod
    @changes_catalog
    def delete_course(course_id: int) -> None:
        course = require(Course, course_id, COURSE_NOT_FOUND)
        subject_ids = list(db.session.execute(select(Subject.id).where(Subject.course_id == course_id)).scalars())
        bundle_ids = list(db.session.execute(select(Bundle.id).where(Bundle.course_id == course_id)).scalars())
        CatalogService._refuse_if_bought(subject_ids=subject_ids, bundle_ids=bundle_ids, what="course")
        db.session.delete(course)

    @staticmethod
    @changes_catalog
    def create_subject(course_id: int, data: dict[str, Any]) -> Subject:
        require(Course, course_id, COURSE_NOT_FOUND)
        subject = Subject(course_id=course_id, **data)
        db.session.add(subject)
        db.session.flush()
        return subject

    @staticmethod
    @changes_catalog
    def update_subject(subject_id: int, data: dict[str, Any]) -> Subject:
        return apply_changes(require(Subject, subject_id, SUBJECT_NOT_FOUND), data)

    @staticmethod
    @changes_catalog
    def delete_subject(subject_id: int) -> None:
        subject = require(Subject, subject_id, SUBJECT_NOT_FOUND)
        CatalogService._refuse_if_bought(subject_ids=[subject_id], bundle_ids=[], what="subject")
        in_bundles = list(
            db.session.execute(
                select(Bundle.slug).join(Bundle.subjects).where(Subject.id == subject_id).order_by(Bundle.slug)
            ).scalars()
        )
        if in_bundles:
            raise Conflict(
                f"This subject is part of the bundles {', '.join(in_bundles)}; "
                "take it out of them first, or deactivate it instead."
            )
        db.session.delete(subject)

    @staticmethod
    @changes_catalog
    def create_bundle(data: dict[str, Any]) -> Bundle:
        subject_ids = data.pop("subject_ids")
        course_id = data["course_id"]
        if db.session.get(Course, course_id) is None:
            raise ValidationFailed(COURSE_NOT_FOUND, errors={"course_id": [COURSE_NOT_FOUND]})
        bundle = Bundle(**data)
        bundle.subjects = CatalogService._subjects_of_course(course_id, subject_ids)
        db.session.add(bundle)
        db.session.flush()
        return CatalogService.get_bundle(bundle.id, include_inactive=True)

    @staticmethod
    @changes_catalog
    def update_bundle(bundle_id: int, data: dict[str, Any]) -> Bundle:
        apply_changes(require(Bundle, bundle_id, BUNDLE_NOT_FOUND), data)
        return CatalogService.get_bundle(bundle_id, include_inactive=True)

    @staticmethod
    @changes_catalog
    def set_bundle_subjects(bundle_id: int, subject_ids: list[int]) -> Bundle:
        bundle = CatalogService.get_bundle(bundle_id, include_inactive=True)
        bundle.subjects = CatalogService._subjects_of_course(bundle.course_id, subject_ids)
        db.session.flush()
        return bundle

    @staticmethod
    @changes_catalog
    def delete_bundle(bundle_id: int) -> None:
        bundle = require(Bundle, bundle_id, BUNDLE_NOT_FOUND)
        CatalogService._refuse_if_bought(subject_ids=[], bundle_ids=[bundle_id], what="bundle")
        db.session.delete(bundle)

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _subjects_of_course(course_id: int, subject_ids: list[int]) -> list[Subject]:
        subjects = list(
            db.session.execute(select(Subject).where(Subject.id.in_(subject_ids)).order_by(Subject.id)).scalars()
        )
        found = {subject.id for subject in subjects}
        unknown = [sid for sid in subject_ids if sid not in found]
        elsewhere = [subject.id for subject in subjects if subject.course_id != course_id]
        messages = []
        if unknown:
            messages.append(f"Unknown subject ids: {', '.join(map(str, unknown))}.")
        if elsewhere:
            messages.append(f"Subjects of another course: {', '.join(map(str, elsewhere))}.")
        if messages:
            raise ValidationFailed(" ".join(messages), errors={"subject_ids": messages})
        return subjects

    @staticmethod
    def _refuse_if_bought(*, subject_ids: list[int], bundle_ids: list[int], what: str) -> None:
        """Purchases keep what they bought: deleting it is refused (deactivating is fine)."""
        bought = (
            select(PurchaseItem.id)
            .where(PurchaseItem.subject_id.in_(subject_ids))
            .union_all(select(Purchase.id).where(Purchase.bundle_id.in_(bundle_ids)))
        )
        if (subject_ids or bundle_ids) and db.session.execute(bought.limit(1)).first() is not None:
            raise Conflict(
                f"This {what} has been bought, and purchases keep what they bought. "
                f"Deactivate it instead (PATCH with is_active false) to hide it from the catalog."
            )
