"""What every domain's schemas share: text fields refuse control characters, identifiers are ASCII.

Every marshmallow schema of the product derives from ``Schema`` here (a test checks it), so a NUL, an
escape or a stray carriage return is refused at the schema with a message in the user's terms, before
anything reaches an operation or the database. Tab and line breaks are allowed only in long text
(reasons, comments, descriptions), named in ``LONG_TEXT_FIELDS`` or marked ``metadata={"long_text": True}``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow
from marshmallow import ValidationError, fields, pre_load

from app.errors import ValidationFailed

# C0 controls, DEL and C1 controls (Unicode category Cc), and lone surrogates no database can store
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_LONG_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

LONG_TEXT_FIELDS = frozenset({
    "reason", "comment", "justification", "description", "change_description", "change_summary",
    "impact_assessment", "definition", "override_reason", "ack_comment", "detail", "notes", "sign_comment",
    "void_reason", "status_reason",
})

CONTROL_MESSAGE = "Control characters (such as NUL, escape or a line break) cannot be recorded here."
LONG_CONTROL_MESSAGE = "Control characters other than tab and line breaks cannot be recorded here."


def is_long_text(name: str, field: fields.Field | None = None) -> bool:
    return name in LONG_TEXT_FIELDS or bool(field is not None and field.metadata.get("long_text"))


def control_character_problem(value: str, long_text: bool) -> str | None:
    """The message for a text holding characters that cannot be recorded, or None."""
    found = (_CONTROL_IN_LONG_TEXT if long_text else _CONTROL).search(value)
    if found is None:
        return None
    return (LONG_CONTROL_MESSAGE if long_text else CONTROL_MESSAGE) + f" (found U+{ord(found.group()):04X})"


def check_text(name: str, value: str | None) -> str:
    """A typed form value checked like a schema's text field; raises ValidationFailed naming the field."""
    value = value or ""
    problem = control_character_problem(value, is_long_text(name))
    if problem:
        raise ValidationFailed(problem, errors={name: [problem]})
    return value


def _problem_in(field: fields.Field, name: str, value: Any) -> Any:
    if isinstance(field, fields.Nested):
        return None  # the nested schema checks its own fields
    if isinstance(value, str):
        return control_character_problem(value, is_long_text(name, field))
    if isinstance(field, fields.List) and isinstance(value, list):
        found = {i: p for i, item in enumerate(value) if (p := _problem_in(field.inner, name, item))}
        return found or None
    if isinstance(field, fields.Dict) and isinstance(value, Mapping):
        found = {}
        for key, item in value.items():
            if isinstance(key, str) and (p := control_character_problem(key, False)):
                found[key] = {"key": [p]}
            elif field.value_field is not None and (p := _problem_in(field.value_field, name, item)):
                found[key] = {"value": p}
        return found or None
    return None


class Schema(marshmallow.Schema):
    """The base of every schema: control characters are refused in every text field of the input."""

    @pre_load
    def _refuse_control_characters(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        errors: dict[str, Any] = {}
        for name, field in self.load_fields.items():
            key = field.data_key or name
            if key not in data:
                continue
            values = data.getlist(key) if hasattr(data, "getlist") else [data[key]]
            for value in values:
                problem = _problem_in(field, name, value)
                if problem:
                    errors[key] = [problem] if isinstance(problem, str) else problem
                    break
        if errors:
            raise ValidationError(errors)
        return data


# --- identifiers ----------------------------------------------------------------------------------

# Printable ASCII without spaces or '|' (the separator of a scanned "material|lot" code)
_IDENTIFIER = re.compile(r"[!-{}~]+", re.ASCII)


def identifier_problem(value: str, label: str) -> str | None:
    """Identifiers (lot numbers, codes) take ASCII letters, digits and punctuation only: a look-alike or
    another script's digit would make a second record of the same thing."""
    if not value:
        return None
    if not value.isascii():
        return (f"The {label} may hold only the letters A-Z, the digits 0-9 and punctuation; "
                f"'{value}' holds other characters.")
    if not _IDENTIFIER.fullmatch(value):
        return f"The {label} may not contain spaces, control characters or '|'."
    return None
