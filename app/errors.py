"""Domain errors: every refusal is one of these, turned into a 4xx page or JSON by the web layer."""
from __future__ import annotations


class DomainError(Exception):
    """A refusal in the user's own terms; nothing of the unit of work is kept."""

    status_code = 409
    title = "Not possible"

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None, link: str | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.link = link


class ValidationFailed(DomainError):
    """Input that breaks a rule: the message says which field and why."""

    status_code = 422
    title = "Please correct the entry"


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Conflict(DomainError):
    """The record's state (or another user's change) does not allow this now."""

    status_code = 409
    title = "Conflict"


class PermissionDenied(DomainError):
    status_code = 403
    title = "Not permitted"


class ReasonRequired(ValidationFailed):
    """A change to a signed record, a void, or an exception needs a reason."""


class SignatureRefused(DomainError):
    """The e-signature was not applied (wrong credentials, two-person rule, locked account)."""

    status_code = 422
    title = "Signature not applied"
