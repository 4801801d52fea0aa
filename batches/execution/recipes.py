"""Master batch records: the recipe file format, its validation, versions and QA approval.

A recipe is data: a TOML document (see recipe_data/*.toml) with phases made of ordered steps, each with
typed entries. It is stored as canonical JSON in one immutable row per version.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from app.signatures import sign_record
from batches.execution.limits import expression_names
from batches.execution.models import Recipe

RECIPE_DATA_DIR = Path(__file__).resolve().parent / "recipe_data"
SEED_RECIPE_FILES = ("msnk.toml", "nkg2d_car_nk.toml")
ENTRY_TYPES = ("number", "text", "choice", "passfail", "material", "equipment", "equipment_release",
               "timer_start", "timer_stop", "calculation")
CURVE_METRICS = ("viable_density", "viability", "total_cells", "fold_expansion")
SOURCE_NAME_MAX = Recipe.__table__.c.source_name.type.length
KEY = validate.Regexp(r"^[a-z][a-z0-9_]{0,79}$", error="Use lower-case letters, digits and _ (start with a letter).")


class EntrySpecSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.Str(required=True, validate=KEY)
    label = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    type = fields.Str(required=True, validate=validate.OneOf(ENTRY_TYPES))
    unit = fields.Str(load_default=None)
    target = fields.Float(load_default=None)
    hard_low = fields.Float(load_default=None)
    hard_high = fields.Float(load_default=None)
    alert_low = fields.Float(load_default=None)
    alert_high = fields.Float(load_default=None)
    options = fields.List(fields.Str(), load_default=None)
    fail_options = fields.List(fields.Str(), load_default=None)
    expression = fields.Str(load_default=None)
    material = fields.Str(load_default=None)
    occupy = fields.Bool(load_default=False)
    releases = fields.Str(load_default=None)
    # the equipment types a scan entry accepts (equipment.models.ASSET_TYPES keys)
    asset_types = fields.List(fields.Str(), load_default=None)
    required = fields.Bool(load_default=True)
    critical = fields.Bool(load_default=False)
    curve = fields.Str(load_default=None, validate=validate.OneOf(CURVE_METRICS))
    hint = fields.Str(load_default=None)

    @validates_schema
    def check_type_fields(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["type"]
        if kind == "choice" and not data.get("options"):
            raise ValidationError("a choice entry needs options", "options")
        if kind == "calculation" and not data.get("expression"):
            raise ValidationError("a calculation needs an expression", "expression")
        if kind == "material" and not data.get("material"):
            raise ValidationError("a material entry needs the material code", "material")
        if data.get("asset_types") is not None:
            from equipment.models import ASSET_TYPES

            if kind != "equipment":
                raise ValidationError("only an equipment entry names the asset types it accepts", "asset_types")
            unknown = [t for t in data["asset_types"] if t not in ASSET_TYPES]
            if unknown or not data["asset_types"]:
                raise ValidationError(f"unknown asset type(s) {', '.join(unknown) or '(none given)'}; known: "
                                      f"{', '.join(ASSET_TYPES)}", "asset_types")
        if kind == "equipment_release" and not data.get("releases"):
            raise ValidationError("an equipment release needs the key of the equipment entry", "releases")
        ordered = [data.get(k) for k in ("hard_low", "alert_low", "target", "alert_high", "hard_high")]
        present = [v for v in ordered if v is not None]
        if present != sorted(present):
            raise ValidationError("limits must be ordered hard low <= alert low <= target <= alert high <= hard high",
                                  "target")


class StepSpecSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.Str(required=True, validate=KEY)
    title = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    instructions = fields.Str(required=True)
    day = fields.Float(required=True, validate=validate.Range(min=0, max=60))
    window_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0.25))
    verification = fields.Bool(load_default=False)
    any_order = fields.Bool(load_default=False)
    # a hard earliest start, in hours after the batch start: before it the step cannot be taken at all
    # (without it, a step before its planned day needs a reason and becomes an exception)
    earliest_start_hours = fields.Float(load_default=None, validate=validate.Range(min=0))
    entries = fields.List(fields.Nested(EntrySpecSchema), required=True, validate=validate.Length(min=1))


class PhaseSpecSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.Str(required=True, validate=KEY)
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    steps = fields.List(fields.Nested(StepSpecSchema), required=True, validate=validate.Length(min=1))


class GrowthPointSchema(Schema):
    day = fields.Float(required=True)
    total_cells = fields.Float(required=True, validate=validate.Range(min=0))


class RecipeSpecSchema(Schema):
    class Meta:
        unknown = RAISE

    code = fields.Str(required=True, validate=validate.Regexp(r"^[A-Z][A-Z0-9-]{1,39}$",
                                                              error="Upper-case letters, digits and -."))
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    product = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    description = fields.Str(load_default="")
    target_yield_cells = fields.Float(required=True, validate=validate.Range(min=1))
    yield_entry = fields.Str(required=True, validate=KEY)
    expected_growth = fields.List(fields.Nested(GrowthPointSchema), load_default=list)
    # The final product: which step fills the bags, how long a bag keeps, and how it is stored.
    fill_step = fields.Str(load_default=None, validate=KEY)
    shelf_life_hours = fields.Float(load_default=None, validate=validate.Range(min=0.5, max=24 * 365 * 10))
    storage_condition = fields.Str(load_default=None, validate=validate.Length(min=1, max=80))
    phases = fields.List(fields.Nested(PhaseSpecSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def check_references(self, data: dict[str, Any], **_: Any) -> None:
        seen: dict[str, dict[str, Any]] = {}
        self._check_steps(data, seen)
        if data["yield_entry"] not in seen:
            raise ValidationError(f"yield_entry {data['yield_entry']!r} is not an entry of the recipe", "yield_entry")
        if data.get("fill_step"):
            fill = next((st for _ph, st in iter_steps(data) if st["key"] == data["fill_step"]), None)
            keys = {e["key"] for e in fill["entries"]} if fill else set()
            if not {"bag_count", "final_viable_cells"} <= keys:
                raise ValidationError(f"fill_step {data['fill_step']!r} must be a step with the entries bag_count and "
                                      "final_viable_cells", "fill_step")
            if not data.get("shelf_life_hours"):
                raise ValidationError("a recipe with a fill step needs shelf_life_hours", "shelf_life_hours")

    def _check_steps(self, data: dict[str, Any], seen: dict[str, dict[str, Any]]) -> None:
        step_keys: set[str] = set()
        for phase in data["phases"]:
            for step in phase["steps"]:
                if step["key"] in step_keys:
                    raise ValidationError(f"step key {step['key']!r} is used twice", "phases")
                step_keys.add(step["key"])
                for entry in step["entries"]:
                    if entry["key"] in seen:
                        raise ValidationError(f"entry key {entry['key']!r} is used twice", "phases")
                    if entry["type"] == "calculation":
                        try:
                            names = expression_names(entry["expression"])
                        except ValueError as exc:
                            raise ValidationError(str(exc), "phases") from None
                        unknown = names - set(seen) - {e["key"] for e in step["entries"]}
                        if unknown:
                            raise ValidationError(f"calculation {entry['key']!r} reads unknown entries "
                                                  f"{sorted(unknown)}", "phases")
                    if entry["type"] == "equipment_release":
                        target = seen.get(entry["releases"])
                        if not target or target["type"] != "equipment" or not target.get("occupy"):
                            raise ValidationError(f"{entry['key']!r} releases {entry['releases']!r}, which is not "
                                                  "an earlier equipment entry that occupies the asset", "phases")
                    seen[entry["key"]] = entry


def _flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out.extend(_flatten_errors(value, f"{prefix}{key}." if prefix or key != "_schema" else prefix))
        return out
    if isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        return [f"{prefix.rstrip('.')}: {m}" if prefix else m for m in messages]
    out = []
    for item in messages or []:
        out.extend(_flatten_errors(item, prefix))
    return out


def parse_recipe_text(text: str) -> dict[str, Any]:
    """Validate a recipe written in TOML and return its canonical definition."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"The recipe is not valid TOML: {exc}", errors={"definition": [str(exc)]}) from None
    try:
        spec = RecipeSpecSchema().load(raw)
    except ValidationError as exc:
        problems = _flatten_errors(exc.messages)
        raise ValidationFailed("The recipe does not follow the recipe format: " + "; ".join(problems[:5]),
                               errors={"definition": problems}) from None
    return spec


def canonical_definition(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def iter_steps(spec: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(phase, step) pairs in recipe order."""
    return [(phase, step) for phase in spec["phases"] for step in phase["steps"]]


def step_spec(recipe: Recipe, step_key: str) -> dict[str, Any]:
    for _phase, step in iter_steps(recipe.spec):
        if step["key"] == step_key:
            return step
    raise NotFound(f"Step {step_key!r} is not in {recipe.label}.")


_ENTRY_SPECS: dict[str, dict[str, dict[str, Any]]] = {}


def entry_specs(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """Every entry of the recipe by key, with the key of its step."""
    specs = _ENTRY_SPECS.get(recipe.definition_sha256)
    if specs is None:
        specs = {}
        for _phase, step in iter_steps(recipe.spec):
            for entry in step["entries"]:
                specs[entry["key"]] = {**entry, "step_key": step["key"]}
        if len(_ENTRY_SPECS) > 256:
            _ENTRY_SPECS.clear()
        _ENTRY_SPECS[recipe.definition_sha256] = specs
    return specs


# --- operations -----------------------------------------------------------------------------------

def get_recipe(sess: Session, recipe_id: int) -> Recipe:
    recipe = sess.get(Recipe, recipe_id)
    if recipe is None:
        raise NotFound(f"Recipe {recipe_id} does not exist.")
    return recipe


def list_recipes(sess: Session, status: str | None = None) -> list[Recipe]:
    stmt = select(Recipe).order_by(Recipe.code, Recipe.version.desc())
    if status:
        stmt = stmt.where(Recipe.status == status)
    return list(sess.execute(stmt).scalars())


def approved_recipes(sess: Session) -> list[Recipe]:
    return list_recipes(sess, "approved")


def create_recipe_draft(sess: Session, text: str, *, source_name: str | None = None,
                        change_summary: str | None = None) -> Recipe:
    """A new draft: version 1 of a new code, or the next version of an existing one."""
    spec = parse_recipe_text(text)
    latest = sess.execute(select(func.max(Recipe.version)).where(Recipe.code == spec["code"])).scalar_one_or_none()
    open_draft = sess.execute(select(Recipe).where(Recipe.code == spec["code"],
                                                   Recipe.status.in_(("draft", "in_review")))).scalars().first()
    if open_draft is not None:
        raise Conflict(f"{open_draft.label} is still a {open_draft.status.replace('_', ' ')}; change or approve it "
                       "instead of starting another version.")
    if latest and not (change_summary or "").strip():
        raise ValidationFailed("A new version needs a summary of what changed.",
                               errors={"change_summary": ["Say what changed and why."]})
    source_name = (source_name or "").strip() or None
    if source_name and len(source_name) > SOURCE_NAME_MAX:
        raise ValidationFailed(f"The source file name is longer than {SOURCE_NAME_MAX} characters.",
                               errors={"source_name": [f"At most {SOURCE_NAME_MAX} characters."]})
    definition = canonical_definition(spec)
    recipe = Recipe(code=spec["code"], version=(latest or 0) + 1, name=spec["name"], product=spec["product"],
                    status="draft", definition=definition,
                    definition_sha256=hashlib.sha256(definition.encode()).hexdigest(),
                    source_name=source_name, change_summary=(change_summary or "").strip() or None,
                    created_at=utcnow(), created_by=current_actor().username)
    sess.add(recipe)
    sess.flush()
    return recipe


def update_recipe_draft(sess: Session, recipe: Recipe, text: str) -> Recipe:
    """Replace the definition of a draft; an approved, in-review or superseded version never changes."""
    if recipe.status != "draft":
        raise Conflict(f"{recipe.label} is {recipe.status.replace('_', ' ')} and cannot be changed: "
                       "make a new version instead.")
    spec = parse_recipe_text(text)
    if spec["code"] != recipe.code:
        raise ValidationFailed("The recipe code cannot change between versions.", errors={"definition": ["code"]})
    definition = canonical_definition(spec)
    recipe.definition = definition
    recipe.definition_sha256 = hashlib.sha256(definition.encode()).hexdigest()
    recipe.name = spec["name"]
    recipe.product = spec["product"]
    sess.flush()
    return recipe


def submit_recipe_for_review(sess: Session, recipe: Recipe) -> Recipe:
    if recipe.status != "draft":
        raise Conflict(f"Only a draft can be sent for review; {recipe.label} is {recipe.status.replace('_', ' ')}.")
    recipe.status = "in_review"
    recipe.submitted_at = utcnow()
    sess.flush()
    return recipe


def return_recipe_to_draft(sess: Session, recipe: Recipe, reason: str) -> Recipe:
    if recipe.status != "in_review":
        raise Conflict(f"{recipe.label} is not in review.")
    with audit_reason(sess, reason):
        recipe.status = "draft"
    return recipe


def _supersede_previous(sess: Session, recipe: Recipe) -> None:
    for previous in sess.execute(select(Recipe).where(Recipe.code == recipe.code, Recipe.status == "approved",
                                                      Recipe.id != recipe.id)).scalars():
        previous.status = "superseded"
        previous.superseded_at = utcnow()


def approve_recipe(sess: Session, recipe: Recipe, *, username: str, password: str, current_user: Any,
                   comment: str | None = None) -> Recipe:
    """QA approval by e-signature; the previous approved version is superseded."""
    if recipe.status != "in_review":
        raise Conflict(f"Only a recipe in review can be approved; {recipe.label} is {recipe.status.replace('_', ' ')}.")
    if recipe.created_by == current_user.username:
        raise Conflict("The author of a recipe version cannot approve it; another QA person must.")
    sign_record(sess, recipe, meaning="approved", username=username, password=password,
                current_user=current_user, comment=comment)
    recipe.status = "approved"
    recipe.approved_at = utcnow()
    recipe.approved_by = current_user.username
    _supersede_previous(sess, recipe)
    sess.flush()
    return recipe


def seed_recipe_text(file_name: str) -> str:
    return (RECIPE_DATA_DIR / file_name).read_text(encoding="utf-8")


def install_seed_recipes(sess: Session) -> list[Recipe]:
    """Install the shipped recipes as approved (idempotent): the files themselves are the approved,
    change-controlled documents; the approval note names the file and its SHA-256."""
    installed = []
    for file_name in SEED_RECIPE_FILES:
        text = seed_recipe_text(file_name)
        spec = parse_recipe_text(text)
        exists = sess.execute(select(Recipe).where(Recipe.code == spec["code"])).scalars().first()
        if exists is not None:
            continue
        recipe = create_recipe_draft(sess, text, source_name=file_name)
        recipe.status = "approved"
        recipe.approved_at = utcnow()
        recipe.approved_by = current_actor().username
        recipe.approval_note = (f"Installed as approved from the shipped, change-controlled file {file_name} "
                                f"(sha256 {hashlib.sha256(text.encode()).hexdigest()}).")
        installed.append(recipe)
    sess.flush()
    return installed


def recipe_as_toml(recipe: Recipe) -> str:
    """The definition back as TOML, to start the next version from."""
    spec = recipe.spec
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(i) for i in v) + "]"
        return json.dumps(v, ensure_ascii=False)

    def scalars(d: dict[str, Any], skip: tuple[str, ...]) -> None:
        for k, v in d.items():
            if k in skip or v is None or v == [] or (k in ("occupy", "critical", "verification", "any_order")
                                                      and v is False) or (k == "required" and v is True):
                continue
            lines.append(f"{k} = {value(v)}")

    scalars(spec, ("phases", "expected_growth"))
    for point in spec.get("expected_growth", []):
        lines += ["", "[[expected_growth]]"]
        scalars(point, ())
    for phase in spec["phases"]:
        lines += ["", "[[phases]]"]
        scalars(phase, ("steps",))
        for step in phase["steps"]:
            lines += ["", "[[phases.steps]]"]
            scalars(step, ("entries",))
            for entry in step["entries"]:
                lines += ["", "[[phases.steps.entries]]"]
                scalars(entry, ())
    return "\n".join(lines) + "\n"
