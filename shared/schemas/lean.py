"""Lean dumping of list pages (and of a test's sheet): rows of selected columns straight to JSON-ready dicts.

A response schema dumps each field of each item through marshmallow (hundreds of calls for
a page of twenty); a list route instead selects exactly the columns its schema names and
dumps them with `LeanDump(schema)`, which reads the schema once and keeps, per field, only
the conversion marshmallow would make (money with two places, UTC datetimes with their
offset, enums by value). The schema stays what `@blp.response` documents, and the view
returns the response it built (flask-smorest then only documents it). A field type without
a known conversion is refused when the dumper is built, so the two cannot drift apart.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

import marshmallow as ma
from flask import Response, current_app

from shared.schemas.fields import Money, UtcDateTime

TWO_PLACES = Decimal("0.01")

Convert = Callable[[Any], Any]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(Decimal(value).quantize(TWO_PLACES))


def _utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


def _by_value(value: Enum | None) -> Any:
    return None if value is None else value.value


def _by_name(value: Enum | None) -> Any:
    return None if value is None else value.name


def _conversion(field: ma.fields.Field) -> Convert | None:
    """What marshmallow does to a field's value (None: nothing, the value is JSON already)."""
    if isinstance(field, Money) or (
        type(field) is ma.fields.Decimal and field.as_string and field.places == TWO_PLACES
    ):
        return _money
    if isinstance(field, UtcDateTime) and field.format in {None, "iso", "iso8601"}:
        return _utc
    if type(field) is ma.fields.Enum:
        return _by_value if field.by_value else _by_name
    if isinstance(field, ma.fields.Integer) and not field.as_string:
        return None
    if isinstance(field, ma.fields.String | ma.fields.Boolean) or type(field) is ma.fields.Raw:
        return None
    # Containers of values that are JSON already: a list of strings or integers, a dict
    # with string keys and such values (or raw ones, which marshmallow passes through).
    if type(field) is ma.fields.List and _conversion(field.inner) is None:
        return None
    if (
        type(field) is ma.fields.Dict
        and field.key_field is not None
        and _conversion(field.key_field) is None
        and (field.value_field is None or _conversion(field.value_field) is None)
    ):
        return None
    raise TypeError(f"LeanDump has no conversion for {type(field).__name__}")


def _converted(name: str, convert: Convert) -> Callable[[Any], Any]:
    get = operator.attrgetter(name)
    return lambda item: convert(get(item))


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _item: value


class LeanDump:
    """Dumps objects (rows of labelled columns, dataclasses) whose attributes are the
    schema's field names as `schema.dump` would, keys in the same order. A nested list
    is dumped by its own LeanDump; a function field (the currency) is asked once a call."""

    def __init__(self, schema: ma.Schema) -> None:
        self.schema = schema
        self._getters: list[tuple[str, Callable[[Any], Any]]] = []
        self._computed: dict[str, ma.fields.Function] = {}
        for name, field in schema.dump_fields.items():
            key = field.data_key or name
            if isinstance(field, ma.fields.Function):
                self._computed[key] = field
                getter: Callable[[Any], Any] = operator.attrgetter(key)  # replaced per call
            elif isinstance(field, ma.fields.List) and isinstance(field.inner, ma.fields.Nested):
                getter = _converted(name, LeanDump(field.inner.schema).many)
            elif isinstance(field, ma.fields.Nested) and not field.many:
                getter = _converted(name, LeanDump(field.schema).one)
            else:
                convert = _conversion(field)
                getter = operator.attrgetter(name) if convert is None else _converted(name, convert)
            self._getters.append((key, getter))

    def many(self, items: Iterable[Any]) -> list[dict[str, Any]]:
        getters = self._getters
        if self._computed:
            values = {key: field.serialize(key, {}) for key, field in self._computed.items()}
            getters = [(key, _constant(values[key]) if key in values else get) for key, get in getters]
        return [{key: get(item) for key, get in getters} for item in items]

    def one(self, item: Any) -> dict[str, Any]:
        return self.many([item])[0]


class PageOf(Protocol):
    """A page of items (shared.services.base.Page)."""

    items: Sequence[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int: ...


def json_response(body: Any) -> Response:
    """The JSON answer flask-smorest would have made of an already dumped body."""
    return current_app.json.response(body)


def page_response(found: PageOf, items: LeanDump) -> Response:
    """A page in the envelope of `page_schema`, its items dumped by `items`."""
    return json_response(
        {
            "items": items.many(found.items),
            "page": found.page,
            "per_page": found.per_page,
            "total": found.total,
            "pages": found.pages,
        }
    )
