"""Phone numbers in one canonical form (E.164, e.g. +919876543210) before any comparison."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    pass


def normalise_phone(raw: str, default_region: str) -> str:
    """`098765 43210`, `+91 98765-43210` and `0091 9876543210` all become `+919876543210`."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("Not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
