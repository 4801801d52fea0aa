"""Release specifications: the file format, its validation, versions and QA approval, and the judging of
a result against a test's acceptance criterion.

A specification is data (see spec_data/*.toml): tests, each with a method, a result type (a number with
its unit, a qualitative finding, or pass/fail), an acceptance criterion, whether it gates release or may
be pending at a conditional release, a sample type and a time point. Limits per kg of recipient are not
judged here: they are kept with the lot and checked at dose allocation.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from marshmallow import RAISE, ValidationError, fields, validate, validates_schema

from app.schemas import Schema
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from batches import lifecycle
from batches.quality.models import Specification

SPEC_DATA_DIR = Path(__file__).resolve().parent / "spec_data"
SEED_SPEC_FILES = ("msnk.toml", "nkg2d_car_nk.toml")
RESULT_TYPES = ("numeric", "qualitative", "passfail")
GATINGS = ("release", "may_be_pending")
OPERATORS = {">": lambda v, lim: v > lim, ">=": lambda v, lim: v >= lim,
             "<": lambda v, lim: v < lim, "<=": lambda v, lim: v <= lim}
OPERATOR_WORDS = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most"}
PASS, FAIL = "pass", "fail"
KEY = validate.Regexp(r"^[a-z][a-z0-9_]{0,79}$", error="Use lower-case letters, digits and _ (start with a letter).")
SOURCE_NAME_MAX = 200


class SpecTestSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.Str(required=True, validate=KEY)
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    method = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    result_type = fields.Str(required=True, validate=validate.OneOf(RESULT_TYPES))
    unit = fields.Str(load_default=None, validate=validate.Length(min=1, max=20))
    operator = fields.Str(load_default=None, validate=validate.OneOf(tuple(OPERATORS)))
    limit = fields.Float(load_default=None, allow_nan=False)
    options = fields.List(fields.Str(validate=validate.Length(min=1, max=80)), load_default=None)
    accepted = fields.List(fields.Str(), load_default=None)
    per_kg_limit = fields.Float(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    per_kg_unit = fields.Str(load_default=None, validate=validate.Length(min=1, max=40))
    gating = fields.Str(load_default="release", validate=validate.OneOf(GATINGS))
    sample_type = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    time_point = fields.Str(required=True, validate=validate.Length(min=1, max=120))
    in_process_entry = fields.Str(load_default=None, validate=KEY)
    note = fields.Str(load_default=None)

    @validates_schema
    def check_criterion(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["result_type"]
        if kind == "numeric":
            if not data.get("unit"):
                raise ValidationError("a numeric test needs its unit", "unit")
            has_limit = data.get("operator") is not None and data.get("limit") is not None
            if (data.get("operator") is None) != (data.get("limit") is None):
                raise ValidationError("a numeric criterion needs both operator and limit", "limit")
            if not has_limit and data.get("per_kg_limit") is None:
                raise ValidationError("a numeric test needs a criterion (operator and limit) or a per-kg limit",
                                      "limit")
            if data.get("per_kg_limit") is not None and not data.get("per_kg_unit"):
                raise ValidationError("a per-kg limit needs its unit (for example cells/kg)", "per_kg_unit")
        elif kind == "qualitative":
            options, accepted = data.get("options") or [], data.get("accepted") or []
            if len(options) < 2 or not accepted:
                raise ValidationError("a qualitative test needs at least two options and the accepted ones", "options")
            if set(accepted) - set(options):
                raise ValidationError("accepted findings must be among the options", "accepted")
        if kind != "numeric" and any(data.get(k) is not None for k in ("operator", "limit", "per_kg_limit")):
            raise ValidationError("only a numeric test has a numeric limit", "limit")


class SpecificationSchema(Schema):
    class Meta:
        unknown = RAISE

    code = fields.Str(required=True, validate=validate.Regexp(r"^[A-Z][A-Z0-9-]{1,39}$",
                                                              error="Upper-case letters, digits and -."))
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    product = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    tests = fields.List(fields.Nested(SpecTestSchema), required=True, validate=validate.Length(min=1, max=60))

    @validates_schema
    def check_keys(self, data: dict[str, Any], **_: Any) -> None:
        keys = [t["key"] for t in data["tests"]]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValidationError(f"test keys used twice: {', '.join(twice)}", "tests")


def _problems(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            label = prefix if key == "_schema" else f"{prefix}{key}."
            out.extend(_problems(value, label))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix.rstrip('.')}: {m}" if prefix else m for m in messages]
    return [p for item in messages or [] for p in _problems(item, prefix)]


def parse_specification_text(text: str) -> dict[str, Any]:
    """Validate a specification written in TOML and return its canonical content."""
    try:
        raw = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"The specification is not valid TOML: {exc}",
                               errors={"definition": [str(exc)]}) from None
    try:
        return SpecificationSchema().load(raw)
    except ValidationError as exc:
        problems = _problems(exc.messages)
        raise ValidationFailed("The specification does not follow the format: " + "; ".join(problems[:5]),
                               errors={"definition": problems}) from None


def canonical_definition(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def criterion_text(test: dict[str, Any]) -> str:
    """The acceptance criterion in words, as shown on pages and certificates."""
    kind = test["result_type"]
    if kind == "numeric":
        parts = []
        if test.get("operator"):
            parts.append(f"{test['operator']} {_limit(test['limit'])} {test['unit']}")
        if test.get("per_kg_limit") is not None:
            parts.append(f"<= {_limit(test['per_kg_limit'])} {test['per_kg_unit']} (checked at dose allocation)")
        return "; ".join(parts)
    if kind == "qualitative":
        return " or ".join(test["accepted"])
    return "pass"


def show_number(value: float | None) -> str:
    """A result or limit as people read it: 98.5, 0.25 or 2 x 10^5 (the site's decimal separator)."""
    from app.numbers import decimal_separator
    from app.web import format_cells

    if value is None:
        return ""
    if value != 0 and not 1e-2 <= abs(value) < 1e5:
        return format_cells(value).replace(".", decimal_separator())
    return f"{value:.6g}".replace(".", decimal_separator())


_limit = show_number


def judge(test: dict[str, Any], *, number: float | None = None, text: str | None = None) -> str:
    """pass or fail of one result against the test's criterion (per-kg limits are judged at allocation)."""
    kind = test["result_type"]
    if kind == "numeric":
        if number is None:
            raise ValidationFailed(f"{test['name']}: a number is needed.")
        if test.get("operator") is None:
            return PASS  # only a per-kg limit: the absolute value is recorded, judged per recipient
        return PASS if OPERATORS[test["operator"]](number, test["limit"]) else FAIL
    value = (text or "").strip().lower()
    if kind == "qualitative":
        return PASS if value in [a.lower() for a in test["accepted"]] else FAIL
    return PASS if value == "pass" else FAIL


def per_kg_limits(spec: Specification) -> list[dict[str, Any]]:
    """The limits per kg of recipient, to be kept with a lot judged against this version."""
    return [{"test": t["key"], "name": t["name"], "result_unit": t["unit"], "limit": t["per_kg_limit"],
             "unit": t["per_kg_unit"]} for t in spec.tests if t.get("per_kg_limit") is not None]


def find_test(spec: Specification, key: str) -> dict[str, Any]:
    for test in spec.tests:
        if test["key"] == key:
            return test
    raise NotFound(f"{spec.label} has no test {key!r}.")


# --- versions and approval ------------------------------------------------------------------------

def get_specification(sess: Session, spec_id: int) -> Specification:
    spec = sess.get(Specification, spec_id)
    if spec is None:
        raise NotFound(f"Specification {spec_id} does not exist.")
    return spec


def list_specifications(sess: Session, status: str | None = None) -> list[Specification]:
    stmt = select(Specification).order_by(Specification.code, Specification.version.desc())
    if status:
        stmt = stmt.where(Specification.status == status)
    return list(sess.execute(stmt).scalars())


def specification_in_force(sess: Session, product: str) -> Specification | None:
    """The approved version for a product now (there is at most one per code)."""
    return sess.execute(select(Specification).where(Specification.product == product,
                                                    Specification.status == "approved")
                        .order_by(Specification.approved_at.desc(), Specification.id.desc())).scalars().first()


def create_specification_draft(sess: Session, text: str, *, source_name: str | None = None,
                               change_summary: str | None = None) -> Specification:
    """A new draft: version 1 of a new code, or the next version of an existing one."""
    content = parse_specification_text(text)
    code = content["code"]
    open_draft = sess.execute(select(Specification).where(
        Specification.code == code, Specification.status.in_(("draft", "in_review")))).scalars().first()
    if open_draft is not None:
        raise Conflict(f"{open_draft.label} is still a {open_draft.status.replace('_', ' ')}; change or approve it "
                       "instead of starting another version.")
    latest = sess.execute(select(func.max(Specification.version)).where(Specification.code == code)).scalar_one()
    if latest:
        previous = sess.execute(select(Specification).where(Specification.code == code,
                                                            Specification.version == latest)).scalar_one()
        if previous.product != content["product"]:
            raise ValidationFailed("The product of a specification cannot change between versions.",
                                   errors={"definition": ["product"]})
        if not (change_summary or "").strip():
            raise ValidationFailed("A new version needs a summary of what changed.",
                                   errors={"change_summary": ["Say what changed and why."]})
    source_name = (source_name or "").strip() or None
    if source_name and len(source_name) > SOURCE_NAME_MAX:
        raise ValidationFailed(f"The source file name is longer than {SOURCE_NAME_MAX} characters.",
                               errors={"source_name": [f"At most {SOURCE_NAME_MAX} characters."]})
    definition = canonical_definition(content)
    spec = Specification(code=code, version=(latest or 0) + 1, name=content["name"], product=content["product"],
                         status="draft", definition=definition,
                         definition_sha256=hashlib.sha256(definition.encode()).hexdigest(), source_name=source_name,
                         change_summary=(change_summary or "").strip() or None, created_at=utcnow(),
                         created_by=current_actor().username)
    sess.add(spec)
    sess.flush()
    return spec


def update_specification_draft(sess: Session, spec: Specification, text: str) -> Specification:
    """Replace a draft's content; a version in review, approved or superseded never changes."""
    if spec.status != "draft":
        raise Conflict(f"{spec.label} is {spec.status.replace('_', ' ')} and cannot be changed: make a new version "
                       "instead.")
    content = parse_specification_text(text)
    if content["code"] != spec.code or content["product"] != spec.product:
        raise ValidationFailed("The code and product of a specification cannot change between versions.",
                               errors={"definition": ["code / product"]})
    definition = canonical_definition(content)
    spec.definition = definition
    spec.definition_sha256 = hashlib.sha256(definition.encode()).hexdigest()
    spec.name = content["name"]
    sess.flush()
    return spec


def submit_specification_for_review(sess: Session, spec: Specification) -> Specification:
    return lifecycle.submit_for_review(sess, spec, "specification")


def return_specification_to_draft(sess: Session, spec: Specification, reason: str) -> Specification:
    return lifecycle.return_to_draft(sess, spec, reason, "specification")


def approve_specification(sess: Session, spec: Specification, *, username: str, password: str, current_user: Any,
                          comment: str | None = None) -> Specification:
    """QA approval by e-signature ('approved'); the version in force before is superseded."""
    return lifecycle.approve(sess, spec, username=username, password=password, current_user=current_user,
                             comment=comment, noun="specification")


def specification_as_toml(spec: Specification) -> str:
    """The content back as TOML, to start the next version from."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(i) for i in v) + "]"
        return json.dumps(v, ensure_ascii=False)

    content = spec.spec
    lines = [f"{k} = {value(content[k])}" for k in ("code", "name", "product")]
    for test in content["tests"]:
        lines += ["", "[[tests]]"]
        lines += [f"{k} = {value(v)}" for k, v in test.items() if v is not None and not (k == "gating"
                                                                                          and v == "release")]
    return "\n".join(lines) + "\n"


def install_seed_specifications(sess: Session) -> list[Specification]:
    """Install the shipped specifications as approved (idempotent): the files are the approved,
    change-controlled documents; the approval note names the file and its SHA-256."""
    installed = []
    for file_name in SEED_SPEC_FILES:
        text = (SPEC_DATA_DIR / file_name).read_text(encoding="utf-8")
        content = parse_specification_text(text)
        if sess.execute(select(Specification).where(Specification.code == content["code"])).scalars().first():
            continue
        spec = create_specification_draft(sess, text, source_name=file_name)
        spec.status = "approved"
        spec.approved_at = utcnow()
        spec.approved_by = current_actor().username
        spec.approval_note = (f"Installed as approved from the shipped, change-controlled file {file_name} "
                              f"(sha256 {hashlib.sha256(text.encode()).hexdigest()}).")
        installed.append(spec)
    sess.flush()
    return installed
