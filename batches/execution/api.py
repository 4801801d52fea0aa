"""REST API for recipes, batches, steps, entries, materials and deviations: the same rules as the pages."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint

from app import db
from app.errors import ValidationFailed
from app.permissions import require
from app.signatures import signatures_for
from batches.execution import deviations as deviation_ops
from batches.execution import materials as material_ops
from batches.execution import operations as ops
from batches.execution import recipes as recipe_ops
from batches.execution import schemas as s
from batches.execution.exceptions import exceptions_of, review_exceptions, reviews_of, sync_equipment_exceptions

PREFIX = "/api/v1"
recipes_blp = Blueprint("recipes_api", __name__, url_prefix=f"{PREFIX}/recipes",
                        description="Master batch records: versions and QA approval")
batches_blp = Blueprint("batches_api", __name__, url_prefix=f"{PREFIX}/batches",
                        description="Executed batch records, steps, entries and signatures")
entries_blp = Blueprint("entries_api", __name__, url_prefix=f"{PREFIX}/entries", description="Step entries")
materials_blp = Blueprint("materials_api", __name__, url_prefix=f"{PREFIX}/materials",
                          description="Materials and lots")
deviations_blp = Blueprint("deviations_api", __name__, url_prefix=f"{PREFIX}/deviations", description="Deviations")
BLUEPRINTS = [recipes_blp, batches_blp, entries_blp, materials_blp, deviations_blp]


class _StepView:
    """A step with its full entry history, signatures and definition, for StepDetailSchema."""

    def __init__(self, step: Any) -> None:
        self._step = step
        self.entries = ops.entry_history(db.session, step)
        self.signatures = signatures_for(db.session, step)
        self.definition = step.spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._step, name)


def _sign_args(data: dict[str, Any]) -> dict[str, Any]:
    return {"username": data["username"], "password": data["password"], "current_user": current_user}


# --- recipes --------------------------------------------------------------------------------------

@recipes_blp.route("")
class Recipes(MethodView):
    @require("recipes.view")
    @recipes_blp.response(200, s.RecipeSchema(many=True))
    def get(self) -> Any:
        """Every recipe version, newest version first per code."""
        return recipe_ops.list_recipes(db.session)

    @require("recipes.author")
    @recipes_blp.arguments(s.RecipeCreateSchema)
    @recipes_blp.response(201, s.RecipeDetailSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a draft (a new code, or the next version of an existing code) from TOML."""
        return recipe_ops.create_recipe_draft(db.session, data["definition"], source_name=data["source_name"],
                                              change_summary=data["change_summary"])


@recipes_blp.route("/<int:recipe_id>")
class RecipeItem(MethodView):
    @require("recipes.view")
    @recipes_blp.response(200, s.RecipeDetailSchema)
    def get(self, recipe_id: int) -> Any:
        return recipe_ops.get_recipe(db.session, recipe_id)

    @require("recipes.author")
    @recipes_blp.arguments(s.RecipeCreateSchema)
    @recipes_blp.response(200, s.RecipeDetailSchema)
    def put(self, data: dict[str, Any], recipe_id: int) -> Any:
        """Replace a draft's definition; approved versions never change."""
        return recipe_ops.update_recipe_draft(db.session, recipe_ops.get_recipe(db.session, recipe_id),
                                              data["definition"])


@recipes_blp.route("/<int:recipe_id>/submission")
class RecipeSubmission(MethodView):
    @require("recipes.author")
    @recipes_blp.response(200, s.RecipeSchema)
    def post(self, recipe_id: int) -> Any:
        """Send a draft to QA review."""
        return recipe_ops.submit_recipe_for_review(db.session, recipe_ops.get_recipe(db.session, recipe_id))


@recipes_blp.route("/<int:recipe_id>/approval")
class RecipeApproval(MethodView):
    @require("recipes.approve")
    @recipes_blp.arguments(s.ESignSchema)
    @recipes_blp.response(200, s.RecipeSchema)
    def post(self, data: dict[str, Any], recipe_id: int) -> Any:
        """Approve with an e-signature (user ID and password); the previous version is superseded."""
        return recipe_ops.approve_recipe(db.session, recipe_ops.get_recipe(db.session, recipe_id),
                                         comment=data["comment"], **_sign_args(data))


# --- batches --------------------------------------------------------------------------------------

@batches_blp.route("")
class Batches(MethodView):
    @require("batches.view")
    @batches_blp.response(200, s.BatchSchema(many=True))
    def get(self) -> Any:
        return ops.list_batches(db.session)

    @require("batches.start")
    @batches_blp.arguments(s.BatchStartSchema)
    @batches_blp.response(201, s.BatchDetailSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Start a batch from an accepted cord blood unit and an approved recipe version."""
        """The supervisor's e-signature ("started") is part of the request."""
        return ops.start_batch(db.session, unit_id=data["unit_id"], recipe_id=data["recipe_id"],
                               comment=data["comment"], **_sign_args(data))


@batches_blp.route("/<int:batch_id>")
class BatchItem(MethodView):
    @require("batches.view")
    @batches_blp.response(200, s.BatchDetailSchema)
    def get(self, batch_id: int) -> Any:
        return ops.get_batch(db.session, batch_id)


@batches_blp.route("/<int:batch_id>/hold")
class BatchHold(MethodView):
    @require("batches.hold")
    @batches_blp.arguments(s.BatchReasonSchema)
    @batches_blp.response(200, s.BatchSchema)
    def post(self, data: dict[str, Any], batch_id: int) -> Any:
        return ops.hold_batch(db.session, ops.get_batch(db.session, batch_id), data["reason"], data["version"])


@batches_blp.route("/<int:batch_id>/resume")
class BatchResume(MethodView):
    @require("batches.hold")
    @batches_blp.arguments(s.BatchReasonSchema)
    @batches_blp.response(200, s.BatchSchema)
    def post(self, data: dict[str, Any], batch_id: int) -> Any:
        return ops.resume_batch(db.session, ops.get_batch(db.session, batch_id), data["reason"], data["version"])


@batches_blp.route("/<int:batch_id>/abort")
class BatchAbort(MethodView):
    @require("batches.abort")
    @batches_blp.arguments(s.BatchAbortSchema)
    @batches_blp.response(200, s.BatchSchema)
    def post(self, data: dict[str, Any], batch_id: int) -> Any:
        """Abort with a reason and a QA e-signature."""
        return ops.abort_batch(db.session, ops.get_batch(db.session, batch_id), reason=data["reason"],
                               expected_version=data["version"], **_sign_args(data))


@batches_blp.route("/<int:batch_id>/review-submission")
class BatchReviewSubmission(MethodView):
    @require("batches.submit_review")
    @batches_blp.arguments(s.BatchSubmitSchema)
    @batches_blp.response(200, s.BatchSchema)
    def post(self, data: dict[str, Any], batch_id: int) -> Any:
        """Send a completed batch record to QA review, e-signed "submitted" by the supervisor."""
        return ops.submit_batch_for_review(db.session, ops.get_batch(db.session, batch_id), data["version"],
                                           comment=data["comment"], **_sign_args(data))


@batches_blp.route("/<int:batch_id>/exception-reviews")
class BatchExceptionReviews(MethodView):
    @require("batches.view")
    @batches_blp.response(200, s.ExceptionReviewSchema(many=True))
    def get(self, batch_id: int) -> Any:
        return reviews_of(db.session, ops.get_batch(db.session, batch_id))

    @require("batches.review_exceptions")
    @batches_blp.arguments(s.ExceptionReviewInputSchema)
    @batches_blp.response(201, s.ExceptionReviewSchema)
    def post(self, data: dict[str, Any], batch_id: int) -> Any:
        """QA's review decision over one or more exceptions, e-signed "reviewed" (the list is signed)."""
        return review_exceptions(db.session, ops.get_batch(db.session, batch_id), data["exception_ids"],
                                 data["review_comment"], **_sign_args(data))


@batches_blp.route("/<int:batch_id>/exceptions")
class BatchExceptions(MethodView):
    @require("batches.view")
    @batches_blp.response(200, s.BatchExceptionSchema(many=True))
    def get(self, batch_id: int) -> Any:
        """Every exception of the batch (alarms and gaps during occupancy included)."""
        batch = ops.get_batch(db.session, batch_id)
        sync_equipment_exceptions(db.session, batch)
        return exceptions_of(db.session, batch)


@batches_blp.route("/<int:batch_id>/steps/<int:step_id>")
class StepItem(MethodView):
    @require("batches.view")
    @batches_blp.response(200, s.StepDetailSchema)
    def get(self, batch_id: int, step_id: int) -> Any:
        """The step with every entry (corrected originals included) and its signatures."""
        return _StepView(ops.get_step(db.session, step_id, ops.get_batch(db.session, batch_id)))


@batches_blp.route("/<int:batch_id>/steps/<int:step_id>/take")
class StepTake(MethodView):
    @require("batches.execute")
    @batches_blp.arguments(s.StepTakeSchema)
    @batches_blp.response(200, s.StepSummarySchema)
    def post(self, data: dict[str, Any], batch_id: int, step_id: int) -> Any:
        """Take the step to work on it (two people cannot work on the same step)."""
        step = ops.get_step(db.session, step_id, ops.get_batch(db.session, batch_id))
        return ops.take_step(db.session, step, current_user, reason=data["reason"], expected_version=data["version"])


@batches_blp.route("/<int:batch_id>/steps/<int:step_id>/let-go")
class StepLetGo(MethodView):
    @require("batches.execute")
    @batches_blp.arguments(s.StepTakeSchema)
    @batches_blp.response(200, s.StepSummarySchema)
    def post(self, data: dict[str, Any], batch_id: int, step_id: int) -> Any:
        """Let go of the step (a supervisor may free a step someone else took, with a reason)."""
        step = ops.get_step(db.session, step_id, ops.get_batch(db.session, batch_id))
        return ops.let_go_of_step(db.session, step, current_user, take_over_reason=data["reason"])


@batches_blp.route("/<int:batch_id>/steps/<int:step_id>/entries")
class StepEntries(MethodView):
    @require("batches.execute")
    @batches_blp.arguments(s.RecordEntriesSchema)
    @batches_blp.response(201, s.StepEntrySchema(many=True))
    def post(self, data: dict[str, Any], batch_id: int, step_id: int) -> Any:
        """Record entries of the step against their limits (a stale version is refused with 409)."""
        step = ops.get_step(db.session, step_id, ops.get_batch(db.session, batch_id))
        inputs = {key: s.entry_input(value) for key, value in data["entries"].items()}
        return ops.record_entries(db.session, step, current_user, inputs, expected_version=data["version"],
                                  reason=data["reason"])


@batches_blp.route("/<int:batch_id>/steps/<int:step_id>/signatures")
class StepSignatures(MethodView):
    @require("batches.execute")
    @batches_blp.arguments(s.StepSignSchema)
    @batches_blp.response(201, s.StepSummarySchema)
    def post(self, data: dict[str, Any], batch_id: int, step_id: int) -> Any:
        """Sign the step as performed, or as verified by a second person."""
        step = ops.get_step(db.session, step_id, ops.get_batch(db.session, batch_id))
        return ops.sign_step(db.session, step, meaning=data["meaning"], comment=data["comment"],
                             expected_version=data["version"], **_sign_args(data))


@entries_blp.route("/<int:entry_id>/correction")
class EntryCorrection(MethodView):
    @require("batches.execute")
    @entries_blp.arguments(s.EntryCorrectionSchema)
    @entries_blp.response(201, s.StepEntrySchema)
    def post(self, data: dict[str, Any], entry_id: int) -> Any:
        """Correct a value with a reason: the original is kept and the step's signatures are voided."""
        entry = ops.get_entry(db.session, entry_id)
        return ops.correct_entry(db.session, entry, current_user, s.entry_input(data), reason=data["reason"],
                                 expected_version=data["version"])


# --- materials ------------------------------------------------------------------------------------

@materials_blp.route("")
class Materials(MethodView):
    @require("materials.view")
    @materials_blp.response(200, s.MaterialSchema(many=True))
    def get(self) -> Any:
        return material_ops.list_materials(db.session)

    @require("materials.manage")
    @materials_blp.arguments(s.MaterialSchema)
    @materials_blp.response(201, s.MaterialSchema)
    def post(self, data: dict[str, Any]) -> Any:
        return material_ops.create_material(db.session, code=data["code"], name=data["name"], unit=data["unit"])


@materials_blp.route("/lots")
class MaterialLots(MethodView):
    @require("materials.view")
    @materials_blp.response(200, s.MaterialLotSchema(many=True))
    def get(self) -> Any:
        return material_ops.list_lots(db.session)

    @require("materials.manage")
    @materials_blp.arguments(s.MaterialLotSchema)
    @materials_blp.response(201, s.MaterialLotSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Receive a lot (quarantined unless QC status says otherwise)."""
        if data.get("qc_status", "quarantined") != "quarantined":
            raise ValidationFailed("A lot is received quarantined; QC or QA then releases it with an e-signature.",
                                   errors={"qc_status": ["Must be quarantined at receipt."]})
        material = material_ops.get_material_by_code(db.session, data["material"]["code"])
        return material_ops.receive_lot(db.session, material, lot_number=data["lot_number"],
                                        expiry_date=data["expiry_date"], quantity=data["quantity_received"],
                                        supplier=data["supplier"], qc_status="quarantined")


@materials_blp.route("/lots/<int:lot_id>/qc-status")
class MaterialLotStatus(MethodView):
    @require("materials.qc_status")
    @materials_blp.arguments(s.LotQcStatusSchema)
    @materials_blp.response(200, s.MaterialLotSchema)
    def put(self, data: dict[str, Any], lot_id: int) -> Any:
        """QC or QA changes the lot's QC status with a reason and an e-signature."""
        return material_ops.set_lot_qc_status(db.session, material_ops.get_lot(db.session, lot_id),
                                              data["qc_status"], data["reason"], **_sign_args(data))


# --- deviations -----------------------------------------------------------------------------------

@deviations_blp.route("")
class Deviations(MethodView):
    @require("deviations.view")
    @deviations_blp.arguments(s.DeviationQuerySchema, location="query")
    @deviations_blp.response(200, s.DeviationSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        return deviation_ops.list_deviations(db.session, status=query["status"], batch_id=query["batch_id"])

    @require("deviations.open")
    @deviations_blp.arguments(s.DeviationSchema)
    @deviations_blp.response(201, s.DeviationSchema)
    def post(self, data: dict[str, Any]) -> Any:
        batch = ops.get_batch(db.session, data["batch_id"]) if data.get("batch_id") else None
        return deviation_ops.open_deviation_by_hand(db.session, title=data["title"],
                                                    description=data["description"], batch=batch)


@deviations_blp.route("/<int:deviation_id>")
class DeviationItem(MethodView):
    @require("deviations.view")
    @deviations_blp.response(200, s.DeviationSchema)
    def get(self, deviation_id: int) -> Any:
        return deviation_ops.get_deviation(db.session, deviation_id)


@deviations_blp.route("/<int:deviation_id>/assessment")
class DeviationAssessment(MethodView):
    @require("deviations.manage")
    @deviations_blp.arguments(s.DeviationAssessmentSchema)
    @deviations_blp.response(200, s.DeviationSchema)
    def put(self, data: dict[str, Any], deviation_id: int) -> Any:
        return deviation_ops.assess_deviation(db.session, deviation_ops.get_deviation(db.session, deviation_id),
                                              classification=data["classification"],
                                              impact_assessment=data["impact_assessment"])


@deviations_blp.route("/<int:deviation_id>/closure")
class DeviationClosure(MethodView):
    @require("deviations.manage")
    @deviations_blp.arguments(s.ESignSchema)
    @deviations_blp.response(200, s.DeviationSchema)
    def post(self, data: dict[str, Any], deviation_id: int) -> Any:
        """Close with a QA e-signature (classification and impact assessment first)."""
        return deviation_ops.close_deviation(db.session, deviation_ops.get_deviation(db.session, deviation_id),
                                             comment=data["comment"], **_sign_args(data))
