"""Numbers as people type them, read one way across the whole site; anything ambiguous is refused.

A misread number in a batch record is worse than a refused one: "1,5x10^9" read as 1.5 x 10^10, or
"1,500" read as 1.5, would pass silently. So the site has one decimal separator (``DECIMAL_SEPARATOR``,
"." unless configured as ","). The other character is accepted only as a thousands separator in full
groups that cannot be a decimal ("1,500,000" or "1,234.5" on a point site), and a single group such as
"1,500" is refused with a message saying how to write it. Cell counts may carry a power of ten:
"1.2e9", "1.2E9", "1.2x10^9", "1.2 × 10^9".
"""
from __future__ import annotations

import math
import re
from typing import Any

from marshmallow import ValidationError, fields

_FORM = re.compile(
    r"(?P<sign>[+-]?)(?P<mantissa>[0-9.,]+)"
    r"(?:\s*[eE]\s*(?P<e1>[+-]?[0-9]+)|\s*[xX×*]\s*10\s*\^\s*(?P<e2>[+-]?[0-9]+))?")

_decimal = "."


class NumberFormatError(ValueError):
    """A typed number that cannot be read, or could be read two ways; the message says how to write it."""


def configure(decimal_separator: str) -> None:
    """Set the site's decimal separator ("." or ","), once at start-up."""
    global _decimal
    if decimal_separator not in (".", ","):
        raise ValueError('DECIMAL_SEPARATOR must be "." or ","')
    _decimal = decimal_separator


def decimal_separator() -> str:
    return _decimal


def example(value: str = "37.5") -> str:
    """An example number written the site's way (for hints and messages)."""
    return value.replace(".", _decimal)


def _plain_mantissa(text: str) -> str:
    """The mantissa with the site's separators resolved, as Python writes it; refuses what is ambiguous."""
    point, group = _decimal, "," if _decimal == "." else "."
    if group in text:
        integer, _, fraction = text.partition(point)
        groups = integer.split(group)
        if (len(groups) == 2 and not fraction and len(groups[1]) == 3
                and re.fullmatch(r"[0-9]{1,3}", groups[0])):
            raise NumberFormatError(
                f"'{text}' could be read as {groups[0]}{point}{groups[1]} or {''.join(groups)}: write "
                f"{''.join(groups)} or {groups[0]}{point}{groups[1].rstrip('0') or '0'}.")
        strict = re.fullmatch(r"[0-9]{1,3}(?:" + re.escape(group) + r"[0-9]{3})+(?:" + re.escape(point) + r"[0-9]+)?", text)
        if not strict:
            if re.fullmatch(r"[0-9]+" + re.escape(group) + r"[0-9]+", text):
                raise NumberFormatError(f"'{text}': this site writes decimals with '{point}', "
                                        f"for example {example()}.")
            raise NumberFormatError(f"'{text}' is not a number: write it without separators, for example "
                                    f"{example('1500000')} or {example('1.5')}x10^6.")
        text = text.replace(group, "")
    if not re.fullmatch(r"[0-9]+(?:" + re.escape(point) + r"[0-9]*)?|" + re.escape(point) + r"[0-9]+", text):
        raise NumberFormatError(f"'{text}' is not a number (for example {example()}).")
    return text.replace(point, ".")


def parse_number(value: Any) -> float:
    """A finite number from what was typed (or sent as a JSON number); NumberFormatError says what is wrong."""
    if isinstance(value, bool):
        raise NumberFormatError("Enter a number, not true or false.")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value if value is not None else "").strip()
        if not text:
            raise NumberFormatError("Enter a number.")
        match = _FORM.fullmatch(text)
        if not match:
            raise NumberFormatError(f"'{text}' is not a number (for example {example()}, "
                                    f"{example('1.2')}e10 or {example('1.2')}x10^10).")
        exponent = match.group("e1") or match.group("e2") or "0"
        # One float literal: 10 ** int(exponent) would first build a huge integer for 1x10^999999.
        number = float(f"{match.group('sign')}{_plain_mantissa(match.group('mantissa'))}e{exponent}")
    if not math.isfinite(number):
        raise NumberFormatError(f"'{value}' is not a finite number.")
    return number


class SiteNumber(fields.Float):
    """A marshmallow Float that reads typed text the site's way (forms and JSON strings alike)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            try:
                value = parse_number(value)
            except NumberFormatError as exc:
                raise ValidationError(f"{self.error_messages['invalid']} {exc}") from None
        return super()._deserialize(value, attr, data, **kwargs)
