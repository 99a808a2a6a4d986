"""The lean dump of list routes answers exactly what the documented schema's dump would."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask

from shared.models import CardStatus
from shared.schemas.cards import CARD_ITEMS, CardSchema
from shared.schemas.catalog import COURSE_ITEMS, CourseSummarySchema
from shared.schemas.lean import LeanDump


def as_object(flat: dict[str, Any], schema: ma.Schema) -> SimpleNamespace:
    """What marshmallow reads: `attribute="subject.name"` is a nested attribute."""
    values: dict[str, Any] = {}
    for name, field in schema.dump_fields.items():
        if name not in flat:
            continue
        path = (field.attribute or name).split(".")
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = flat[name]
    return _namespace(values)


def _namespace(values: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(**{k: _namespace(v) if isinstance(v, dict) else v for k, v in values.items()})


CARDS = [
    {
        "id": 1,
        "purchase_id": 2,
        "subject_id": 3,
        "subject_name": "Physics — Ünïcode",
        "test_number": 1,
        "status": CardStatus.AVAILABLE,
        "paper_id": None,
        "question_count": None,
        "correct_count": None,
        "wrong_count": None,
        "unanswered_count": None,
        "marks": None,
        "score": None,
        "started_at": None,
        "deadline_at": None,
        "submitted_at": None,
    },
    {
        "id": 7,
        "purchase_id": 2,
        "subject_id": 3,
        "subject_name": "Chemistry",
        "test_number": 50,
        "status": CardStatus.COMPLETED,
        "paper_id": 9,
        "question_count": 10,
        "correct_count": 7,
        "wrong_count": 2,
        "unanswered_count": 1,
        "marks": Decimal("-2.5"),
        "score": Decimal("70.125"),
        "started_at": datetime(2026, 11, 30, 7, 0, 1, 123456, tzinfo=UTC).replace(tzinfo=None),  # stored naive
        "deadline_at": datetime(2026, 11, 30, 7, 30, tzinfo=UTC).replace(tzinfo=None),
        "submitted_at": datetime(2026, 11, 30, 7, 20, 5, tzinfo=UTC),
    },
]
COURSES = [
    {
        "id": 1,
        "slug": "jee-main",
        "title": "JEE Main",
        "description": "",
        "is_active": True,
        "subject_count": 0,
        "min_price": None,
        "max_price": None,
    },
    {
        "id": 2,
        "slug": "neet",
        "title": "NEET",
        "description": 'Biology "and" more',
        "is_active": False,
        "subject_count": 3,
        "min_price": Decimal("499"),
        "max_price": Decimal("1999.5"),
    },
]


@pytest.mark.parametrize(
    ("dumper", "schema", "items"),
    [(CARD_ITEMS, CardSchema(), CARDS), (COURSE_ITEMS, CourseSummarySchema(), COURSES)],
    ids=["cards", "courses"],
)
def test_lean_dump_is_the_schema_dump_byte_for_byte(
    dumper: LeanDump, schema: ma.Schema, items: list[dict[str, Any]]
) -> None:
    app = Flask(__name__)
    app.config["CURRENCY"] = "INR"
    app.json.sort_keys = False  # type: ignore[attr-defined] - as create_app sets it
    with app.app_context():
        lean = dumper.many([SimpleNamespace(**item) for item in items])
        full = schema.dump([as_object(item, schema) for item in items], many=True)
        assert app.json.dumps(lean) == app.json.dumps(full)


def test_a_field_without_a_known_conversion_is_refused() -> None:
    class Odd(ma.Schema):
        when = ma.fields.Date()

    with pytest.raises(TypeError, match="Date"):
        LeanDump(Odd())


def test_the_purchase_list_dump_is_the_schema_dump() -> None:
    from shared.models import ItemState, Provider, PurchaseStatus, PurchaseType
    from shared.schemas.purchases import PURCHASE_ITEMS, PurchaseSchema
    from shared.services.purchases import PurchasedSubject, PurchaseView

    created = datetime(2026, 11, 30, 7, 0, tzinfo=UTC).replace(tzinfo=None)
    views = [
        PurchaseView(
            id=3,
            customer_id=1,
            purchase_type=PurchaseType.BUNDLE,
            course_id=None,
            bundle_id=2,
            total_cost=Decimal("1499"),
            currency="INR",
            created_at=created,
            subjects=[
                PurchasedSubject(5, "Physics", Decimal("499.5"), 50),
                PurchasedSubject(6, "Maths", Decimal("1000.00"), 0, ItemState.REFUNDED, created),
            ],
            status=PurchaseStatus.PAID,
            provider=Provider.NONE,
        ),
        PurchaseView(3, 1, PurchaseType.SINGLE_SUBJECT, 1, None, Decimal("1.00"), "INR", created, []),
    ]
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    with app.app_context():
        assert app.json.dumps(PURCHASE_ITEMS.many(views)) == app.json.dumps(PurchaseSchema(many=True).dump(views))


def test_the_bundle_and_subject_list_dumps_are_the_schema_dumps() -> None:
    from shared.schemas.catalog import BUNDLE_ITEMS, SUBJECT_ITEMS, BundleSchema, SubjectSchema
    from shared.services.catalog import BundleListing

    subjects = [
        SimpleNamespace(id=4, name="Physics", price=Decimal("499"), course_id=1, description="", is_active=True),
        SimpleNamespace(id=5, name="Maths", price=Decimal("600.5"), course_id=1, description="x", is_active=False),
    ]
    for subject in subjects:
        subject.access_days = 365
    bundles = [
        BundleListing(1, "pair", "Pair", "", 1, Decimal("999"), True, 365, subjects),
        BundleListing(2, "none", "None", "d", 1, Decimal("5000.00"), False, 30, []),
    ]
    app = Flask(__name__)
    app.config["CURRENCY"] = "INR"
    app.json.sort_keys = False  # type: ignore[attr-defined]
    with app.app_context():
        assert app.json.dumps(BUNDLE_ITEMS.many(bundles)) == app.json.dumps(BundleSchema(many=True).dump(bundles))
        assert app.json.dumps(SUBJECT_ITEMS.many(subjects)) == app.json.dumps(SubjectSchema(many=True).dump(subjects))


def test_the_sheet_dump_is_the_schema_dump() -> None:
    """The start and the full save answer the sheet through `SHEET`: what `PaperSchema` would."""
    from shared.models import QuestionType
    from shared.schemas.cards import SHEET, PaperSchema
    from shared.services.cards import Sheet, SheetQuestion

    created = datetime(2026, 11, 30, 7, 0, tzinfo=UTC).replace(tzinfo=None)
    paper = SimpleNamespace(
        id=9,
        subject_id=3,
        test_number=50,
        version=2,
        question_count=2,
        duration_minutes=180,
        max_marks=Decimal("8"),
        created_at=created,
    )
    questions = [
        SheetQuestion(
            11, 1, QuestionType.MULTIPLE, "Which — ünïcode?", ["A", "B"], Decimal(4), Decimal(-2), Decimal(0)
        ),
        SheetQuestion(12, 2, QuestionType.NUMERICAL, "g?", [], Decimal("4.5"), Decimal("0"), Decimal("-0.25")),
    ]
    sheet = Sheet(
        card=SimpleNamespace(**CARDS[1]),  # type: ignore[arg-type]
        paper=paper,  # type: ignore[arg-type]
        questions=questions,
        answers={"11": [0, 1], "12": "9.81"},
        marked_for_review=[12],
        time_spent_seconds={"11": 40},
        seconds_left=3599,
    )
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    with app.app_context():
        assert app.json.dumps(SHEET.one(sheet)) == app.json.dumps(PaperSchema().dump(sheet))
