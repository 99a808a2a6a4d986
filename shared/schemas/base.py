"""The base of every schema: bounded ids, and text a database can store."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

# Ids are INT columns: anything above this cannot exist, and SQLite cannot even bind it.
MAX_ID = 2**31 - 1
ID_RANGE = ma.validate.Range(min=1, max=MAX_ID, error="Must be an id from 1 to {max}.")


def _has_lone_surrogate(value: Any) -> bool:
    """Any text in `value`, keys included, that UTF-8 cannot encode? (No recursion: however
    deep the data, this cannot overflow the stack.)"""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class Schema(ma.Schema):
    """JSON may carry lone UTF-16 surrogates ("\\ud800"), which no utf8mb4 column stores."""

    @ma.pre_load
    def reject_unencodable_text(self, data: Any, **kwargs: Any) -> Any:
        if _has_lone_surrogate(data):
            raise ma.ValidationError("Text must be valid Unicode (no lone surrogates).", "_request")
        return data


class ResponseSchema(Schema):
    """A shape the API answers with: every field is always present (null where allowed), so
    each is `required` in the OpenAPI document and generated clients need no `undefined`."""

    def on_bind_field(self, field_name: str, field_obj: ma.fields.Field) -> None:
        field_obj.required = True
