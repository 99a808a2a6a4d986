"""Fields that normalise what they load, so services compare canonical values only."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import current_app

from shared.phone import InvalidPhoneNumber, normalise_phone
from shared.schemas.base import ID_RANGE


class Integer(ma.fields.Integer):
    """An integer of a JSON body: a JSON integer only, never 1.9 (read as 1 otherwise),
    "1" or true. A query string's integers are text: `strict=False` there."""

    def __init__(self, *, strict: bool = True, **kwargs: Any) -> None:
        super().__init__(strict=strict, **kwargs)


class Id(Integer):
    """The id of a row: an integer from 1 to MAX_ID."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", ID_RANGE)
        super().__init__(**kwargs)


def normalise_email(text: str) -> str:
    """The one spelling of an address that we store and compare: NFKC (fullwidth letters
    and the like become plain ones), stripped, lower-cased."""
    return unicodedata.normalize("NFKC", text).strip().lower()


class Email(ma.fields.Email):
    """An email address, normalised by `normalise_email`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", ma.validate.Length(max=255))
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = normalise_email(value)
        return super()._deserialize(value, attr, data, **kwargs)


class PhoneNumber(ma.fields.String):
    """A phone number, loaded in E.164 form (+919876543210)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "metadata",
            {
                "description": "Any common spelling; stored and returned in E.164 form. Numbers without "
                "a +country code are read in the region DEFAULT_PHONE_REGION (IN).",
                "example": "+919876543210",
            },
        )
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > 32:
            raise ma.ValidationError("Not a valid phone number.")
        try:
            return normalise_phone(text, current_app.config["DEFAULT_PHONE_REGION"])
        except InvalidPhoneNumber as exc:
            raise ma.ValidationError(str(exc)) from None


PASSWORD_RULES = "10 to 128 characters, with at least one letter and one digit."  # noqa: S105


def validate_password(password: str) -> None:
    if not 10 <= len(password) <= 128:
        raise ma.ValidationError(f"The password must have {PASSWORD_RULES}")
    if not re.search(r"[^\W\d_]", password) or not re.search(r"\d", password):
        raise ma.ValidationError(f"The password must have {PASSWORD_RULES}")


class Password(ma.fields.String):
    def __init__(self, *, check_strength: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("load_only", True)
        kwargs.setdefault("validate", validate_password if check_strength else ma.validate.Length(max=128))
        if check_strength:
            kwargs.setdefault("metadata", {"description": f"Password rules: {PASSWORD_RULES}"})
        super().__init__(**kwargs)


class Name(ma.fields.String):
    """A human-readable name: at most `max_length` characters as sent, then stripped and
    with inner white space collapsed; empty is refused."""

    def __init__(self, max_length: int = 120, **kwargs: Any) -> None:
        kwargs.setdefault("validate", ma.validate.Length(min=1, max=max_length))
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise ma.ValidationError(f"Longer than maximum length {self.max_length}.")
        return " ".join(text.split())


class UtcDateTime(ma.fields.DateTime):
    """Stored naive in UTC; written with its offset so no client guesses the zone."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


MAX_PRICE = Decimal("99999999.99")


def validate_price(value: Decimal) -> None:
    if value <= 0:
        raise ma.ValidationError("The price must be positive.")
    if value > MAX_PRICE:
        raise ma.ValidationError(f"The price must be at most {MAX_PRICE}.")
    if value != value.quantize(Decimal("0.01")):
        raise ma.ValidationError("The price must have at most two decimal places.")


class Money(ma.fields.Decimal):
    """A price: loaded from a string or number as Decimal, dumped as a string with two places."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("as_string", True)
        kwargs.setdefault("metadata", {"example": "499.00"})
        super().__init__(places=None, allow_nan=False, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return str(Decimal(value).quantize(Decimal("0.01")))


class Marks(Money):
    """Marks of a question or a paper (negative for a wrong answer): a string with two decimals."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {"example": "4.00"})
        super().__init__(**kwargs)


class Percent(Money):
    """A score in percent, dumped like money: a string with two decimals ("70.00")."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {"example": "70.00"})
        super().__init__(**kwargs)


class Currency(ma.fields.Function):
    """The shop's currency code (setting CURRENCY), beside every price."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(lambda _obj: current_app.config["CURRENCY"], dump_only=True, **kwargs)


SLUG = ma.validate.Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$", error="Use lower-case letters, digits and single hyphens.")


class Boolean(ma.fields.Boolean):
    """A boolean of a JSON body: `true` or `false` only, never 0, "false" or "yes" (which
    marshmallow reads as booleans otherwise). A query string's booleans are text: use
    marshmallow's own there."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value
