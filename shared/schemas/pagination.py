"""Page query arguments and the envelope of every paginated list."""

from __future__ import annotations

import marshmallow as ma

from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import Integer

MAX_PER_PAGE = 100


class PageQuerySchema(Schema):
    page = Integer(strict=False, load_default=1, validate=ma.validate.Range(min=1, max=100_000))
    per_page = Integer(strict=False, load_default=20, validate=ma.validate.Range(min=1, max=MAX_PER_PAGE))


def page_schema(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """`{items: [...], page, per_page, total, pages}` around `item_schema`."""
    return ResponseSchema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema), required=True),
            "page": ma.fields.Integer(required=True),
            "per_page": ma.fields.Integer(required=True),
            "total": ma.fields.Integer(required=True),
            "pages": ma.fields.Integer(required=True),
        },
        name=name,
    )
