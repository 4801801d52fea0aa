"""REST API for specifications, lots and final product units: the same rules as the pages."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint

from app import db
from app.errors import ValidationFailed
from app.permissions import require
from batches.quality import operations as ops
from batches.quality import schemas as s
from batches.quality import specifications as spec_ops

PREFIX = "/api/v1"
specifications_blp = Blueprint("specifications_api", __name__, url_prefix=f"{PREFIX}/specifications",
                               description="Release specifications: versions and QA approval")
lots_blp = Blueprint("lots_api", __name__, url_prefix=f"{PREFIX}/lots",
                     description="Lots under QC: the specification they are judged against, per-kg limits")
units_blp = Blueprint("product_units_api", __name__, url_prefix=f"{PREFIX}/product-units",
                      description="Final product units (infusion bags) and their chain of identity")
BLUEPRINTS = [specifications_blp, lots_blp, units_blp]


def _sign_args(data: dict[str, Any]) -> dict[str, Any]:
    return {"username": data["username"], "password": data["password"], "current_user": current_user,
            "comment": data["comment"]}


@specifications_blp.route("")
class Specifications(MethodView):
    @require("specifications.view")
    @specifications_blp.response(200, s.SpecificationSchema(many=True))
    def get(self) -> Any:
        """Every specification version, newest version first per code."""
        return spec_ops.list_specifications(db.session)

    @require("specifications.author")
    @specifications_blp.arguments(s.SpecificationCreateSchema)
    @specifications_blp.response(201, s.SpecificationDetailSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a draft (a new code, or the next version of an existing code) from TOML."""
        return spec_ops.create_specification_draft(db.session, data["definition"],
                                                   change_summary=data["change_summary"])


@specifications_blp.route("/<int:spec_id>")
class SpecificationItem(MethodView):
    @require("specifications.view")
    @specifications_blp.response(200, s.SpecificationDetailSchema)
    def get(self, spec_id: int) -> Any:
        return spec_ops.get_specification(db.session, spec_id)

    @require("specifications.author")
    @specifications_blp.arguments(s.SpecificationUpdateSchema)
    @specifications_blp.response(200, s.SpecificationDetailSchema)
    def put(self, data: dict[str, Any], spec_id: int) -> Any:
        """Replace a draft's content; a version in review, approved or superseded never changes."""
        return spec_ops.update_specification_draft(db.session, spec_ops.get_specification(db.session, spec_id),
                                                   data["definition"])


@specifications_blp.route("/<int:spec_id>/submission")
class SpecificationSubmission(MethodView):
    @require("specifications.author")
    @specifications_blp.response(200, s.SpecificationSchema)
    def post(self, spec_id: int) -> Any:
        """Send a draft for QA approval."""
        return spec_ops.submit_specification_for_review(db.session, spec_ops.get_specification(db.session, spec_id))


@specifications_blp.route("/<int:spec_id>/return")
class SpecificationReturn(MethodView):
    @require("specifications.approve")
    @specifications_blp.arguments(s.SpecificationReturnSchema)
    @specifications_blp.response(200, s.SpecificationSchema)
    def post(self, data: dict[str, Any], spec_id: int) -> Any:
        """Return a version in review to draft, with a reason."""
        return spec_ops.return_specification_to_draft(db.session, spec_ops.get_specification(db.session, spec_id),
                                                      data["reason"])


@specifications_blp.route("/<int:spec_id>/approval")
class SpecificationApproval(MethodView):
    @require("specifications.approve")
    @specifications_blp.arguments(s.ESignSchema)
    @specifications_blp.response(200, s.SpecificationSchema)
    def post(self, data: dict[str, Any], spec_id: int) -> Any:
        """Approve with an e-signature (user ID and password); the version in force before is superseded."""
        return spec_ops.approve_specification(db.session, spec_ops.get_specification(db.session, spec_id),
                                              **_sign_args(data))


@lots_blp.route("")
class Lots(MethodView):
    @require("lots.view")
    @lots_blp.response(200, s.LotSchema(many=True))
    def get(self) -> Any:
        """Every lot that has been filled, newest first."""
        return ops.list_lots(db.session)


@lots_blp.route("/<int:lot_id>")
class LotItem(MethodView):
    @require("lots.view")
    @lots_blp.response(200, s.LotSchema)
    def get(self, lot_id: int) -> Any:
        return ops.get_lot(db.session, lot_id)


@units_blp.route("")
class ProductUnits(MethodView):
    @require("product_units.view")
    @units_blp.arguments(s.UnitQuerySchema, location="query")
    @units_blp.response(200, s.ProductUnitSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """Bags by scanned identifier, by batch, or by cord blood unit (donor to product tracing)."""
        sess = db.session
        if query["identifier"]:
            return [ops.find_unit_by_scan(sess, query["identifier"])]
        if query["batch_id"] is not None:
            return ops.units_of_batch(sess, query["batch_id"])
        if query["cord_blood_unit_id"] is not None:
            return ops.units_of_cord_blood_unit(sess, query["cord_blood_unit_id"])
        raise ValidationFailed("Give an identifier, a batch_id or a cord_blood_unit_id.",
                               errors={"identifier": ["Or batch_id, or cord_blood_unit_id."]})


@units_blp.route("/<int:unit_id>")
class ProductUnitItem(MethodView):
    @require("product_units.view")
    @units_blp.response(200, s.ProductUnitSchema)
    def get(self, unit_id: int) -> Any:
        return ops.get_unit(db.session, unit_id)


@units_blp.route("/<int:unit_id>/storage-location")
class ProductUnitLocation(MethodView):
    @require("product_units.store")
    @units_blp.arguments(s.StorageLocationSchema)
    @units_blp.response(200, s.ProductUnitSchema)
    def post(self, data: dict[str, Any], unit_id: int) -> Any:
        """Record where the bag is stored; moving a stored bag needs a reason."""
        return ops.record_storage_location(db.session, ops.get_unit(db.session, unit_id), data["storage_location"],
                                           data["reason"])


# --- samples, results, investigations, review and disposition ------------------------------------

from batches.quality import results as res  # noqa: E402
from batches.quality import review as rev  # noqa: E402

investigations_blp = Blueprint("investigations_api", __name__, url_prefix=f"{PREFIX}/investigations",
                               description="OOS investigations (21 CFR 211.192)")
results_blp = Blueprint("results_api", __name__, url_prefix=f"{PREFIX}/results", description="QC results")
BLUEPRINTS += [investigations_blp, results_blp]


@lots_blp.route("/<int:lot_id>/samples")
class LotSamples(MethodView):
    @require("lots.view")
    @lots_blp.response(200, s.SampleSchema(many=True))
    def get(self, lot_id: int) -> Any:
        return res.samples_of(db.session, ops.get_lot(db.session, lot_id))

    @require("qc.enter_results")
    @lots_blp.arguments(s.SampleCreateSchema)
    @lots_blp.response(201, s.SampleSchema)
    def post(self, data: dict[str, Any], lot_id: int) -> Any:
        """Register a sample for the named tests; it gets its label identifier."""
        return res.draw_sample(db.session, ops.get_lot(db.session, lot_id), test_keys=data["tests"],
                               sample_type=data["sample_type"], time_point=data["time_point"])


@lots_blp.route("/<int:lot_id>/results")
class LotResults(MethodView):
    @require("lots.view")
    @lots_blp.response(200, s.ResultSchema(many=True))
    def get(self, lot_id: int) -> Any:
        """Every result of the lot, invalidated and retests included."""
        return res.results_of(db.session, ops.get_lot(db.session, lot_id))

    @require("qc.enter_results")
    @lots_blp.arguments(s.ResultCreateSchema)
    @lots_blp.response(201, s.ResultSchema)
    def post(self, data: dict[str, Any], lot_id: int) -> Any:
        """Record a result; a failing one opens an OOS investigation; a retest names its investigation."""
        return res.record_result(db.session, ops.get_lot(db.session, lot_id), res.ResultInput(**data))


@lots_blp.route("/<int:lot_id>/in-process-results")
class LotInProcessResults(MethodView):
    @require("qc.enter_results")
    @lots_blp.response(201, s.ResultSchema(many=True))
    def post(self, lot_id: int) -> Any:
        """Take the in-process results of the batch record, with their source entry."""
        return res.pull_in_process_results(db.session, ops.get_lot(db.session, lot_id))


@lots_blp.route("/<int:lot_id>/review")
class LotReviewItem(MethodView):
    @require("lots.review")
    @lots_blp.response(200, s.LotReviewSchema)
    def get(self, lot_id: int) -> Any:
        """The computed lot review and the list of what blocks the disposition."""
        return rev.build_lot_review(db.session, ops.get_lot(db.session, lot_id))


@lots_blp.route("/<int:lot_id>/disposition")
class LotDispositionItem(MethodView):
    @require("lots.dispose")
    @lots_blp.arguments(s.DispositionCreateSchema)
    @lots_blp.response(201, s.DispositionSchema)
    def post(self, data: dict[str, Any], lot_id: int) -> Any:
        """Release, conditionally release (pending tests, justification) or reject (reason), e-signed; refused
        with the review's blocking list."""
        lot = ops.get_lot(db.session, lot_id)
        sign = {"username": data["username"], "password": data["password"], "current_user": current_user}
        if data["decision"] == "released":
            return rev.release_lot(db.session, lot, comment=data["comment"], **sign)
        if data["decision"] == "conditionally_released":
            return rev.conditionally_release_lot(db.session, lot, pending_tests=data["pending_tests"],
                                                 justification=data["justification"] or "", **sign)
        return rev.reject_lot(db.session, lot, reason=data["reason"] or "", **sign)


@results_blp.route("/<int:result_id>/review")
class ResultReview(MethodView):
    @require("qc.review_results")
    @results_blp.arguments(s.ESignSchema)
    @results_blp.response(200, s.ResultSchema)
    def post(self, data: dict[str, Any], result_id: int) -> Any:
        """Second-person review signature ('reviewed')."""
        return res.review_result(db.session, res.get_result(db.session, result_id), **_sign_args(data))


@investigations_blp.route("")
class Investigations(MethodView):
    @require("lots.view")
    @investigations_blp.response(200, s.InvestigationSchema(many=True))
    def get(self) -> Any:
        return res.list_investigations(db.session)


@investigations_blp.route("/<int:investigation_id>")
class InvestigationItem(MethodView):
    @require("lots.view")
    @investigations_blp.response(200, s.InvestigationSchema)
    def get(self, investigation_id: int) -> Any:
        return res.get_investigation(db.session, investigation_id)


@investigations_blp.route("/<int:investigation_id>/phase1")
class InvestigationPhase1(MethodView):
    @require("oos.investigate")
    @investigations_blp.arguments(s.Phase1Schema)
    @investigations_blp.response(200, s.InvestigationSchema)
    def post(self, data: dict[str, Any], investigation_id: int) -> Any:
        return res.record_phase1(db.session, res.get_investigation(db.session, investigation_id), **data)


@investigations_blp.route("/<int:investigation_id>/phase2")
class InvestigationPhase2(MethodView):
    @require("oos.investigate")
    @investigations_blp.arguments(s.Phase2Schema)
    @investigations_blp.response(200, s.InvestigationSchema)
    def post(self, data: dict[str, Any], investigation_id: int) -> Any:
        return res.record_phase2(db.session, res.get_investigation(db.session, investigation_id), **data)


@investigations_blp.route("/<int:investigation_id>/invalidation")
class InvestigationInvalidation(MethodView):
    @require("oos.investigate")
    @investigations_blp.arguments(s.InvalidateSchema)
    @investigations_blp.response(200, s.ResultSchema)
    def post(self, data: dict[str, Any], investigation_id: int) -> Any:
        """Invalidate the original result after a laboratory error; its value stays."""
        inv = res.get_investigation(db.session, investigation_id)
        return res.invalidate_result(db.session, res.get_result(db.session, inv.result_id), data["reason"])


@investigations_blp.route("/<int:investigation_id>/closure")
class InvestigationClosure(MethodView):
    @require("oos.close")
    @investigations_blp.arguments(s.InvestigationCloseSchema)
    @investigations_blp.response(200, s.InvestigationSchema)
    def post(self, data: dict[str, Any], investigation_id: int) -> Any:
        """QA closure by e-signature, naming the reportable result."""
        return res.close_investigation(db.session, res.get_investigation(db.session, investigation_id),
                                       conclusion=data["conclusion"], conclusion_text=data["conclusion_text"],
                                       reportable_result_id=data["reportable_result_id"],
                                       username=data["username"], password=data["password"],
                                       current_user=current_user)
