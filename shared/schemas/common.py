"""Schemas shared by every blueprint: the problem body and health answers."""

from __future__ import annotations

import marshmallow as ma

from shared.schemas.base import ResponseSchema, Schema


class ProblemSchema(Schema):
    """RFC 9457 problem details, the body of every error response."""

    type = ma.fields.String(
        required=True,
        metadata={"description": "URI naming the problem kind (`about:blank` for plain HTTP errors)"},
    )
    title = ma.fields.String(required=True, metadata={"description": "Short summary of the problem kind"})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong with this request"})
    instance = ma.fields.String(required=True, metadata={"description": "The request path"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Messages per field, for validation errors and conflicts"},
    )
    request_id = ma.fields.String(
        required=True, metadata={"description": "Also in the X-Request-ID header and the server log"}
    )

    class Meta:
        # Domain problems add extension members (for example `current_price`).
        unknown = ma.INCLUDE


class HealthSchema(ResponseSchema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(HealthSchema):
    database = ma.fields.String(required=True, metadata={"example": "ok"})
