"""REST API of dosing care (reservations, issues, bedside checks, infusions, follow-up, chain of identity)
with the same rules as the pages; and the `flask care expire-reservations` command."""
from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app import db
from app.numbers import SiteNumber
from app.permissions import require
from app.schemas import Schema
from batches.dosing import bedside, dispensing, followup, infusions
from batches.dosing import reservations as res_ops
from batches.dosing.care_models import AE_RELATIONS
from batches.execution.schemas import ESignSchema

PREFIX = "/api/v1"
reservations_blp = Blueprint("reservations_api", __name__, url_prefix=f"{PREFIX}/reservations",
                             description="Dose reservations: bags of one lot held for one planned infusion")
bedside_blp = Blueprint("bedside_api", __name__, url_prefix=f"{PREFIX}/bedside-checks",
                        description="Bedside identity check: bag and wristband against the reservation")
infusions_blp = Blueprint("infusions_api", __name__, url_prefix=f"{PREFIX}/infusions",
                          description="Infusion records with two signatures")
follow_up_blp = Blueprint("follow_up_api", __name__, url_prefix=f"{PREFIX}/follow-up",
                          description="Trial follow-up schedule, worklist and adverse events")
chain_blp = Blueprint("chain_api", __name__, url_prefix=f"{PREFIX}/chain-of-identity",
                      description="Cord blood unit -> batch -> bag -> patient, walked from any of them")
BLUEPRINTS = [reservations_blp, bedside_blp, infusions_blp, follow_up_blp, chain_blp]


# --- schemas --------------------------------------------------------------------------------------

class BagSchema(Schema):
    unit_id = fields.Int()
    product_identifier = fields.Str(attribute="unit.product_identifier")
    state = fields.Str()
    issued_at = fields.DateTime(allow_none=True)
    issued_by = fields.Str(allow_none=True)
    issued_to = fields.Str(allow_none=True)


class ReservationSchema(Schema):
    id = fields.Int()
    number = fields.Str()
    patient_id = fields.Int()
    infusion_number = fields.Int()
    planned_at = fields.DateTime()
    lot_number = fields.Str()
    product = fields.Str()
    viable_cells = fields.Float()
    status = fields.Str()
    reserved_at = fields.DateTime()
    reserved_by = fields.Str()
    expires_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    end_reason = fields.Str(allow_none=True)
    bags = fields.List(fields.Nested(BagSchema))


class ReservationQuerySchema(Schema):
    patient_id = fields.Int(load_default=None)
    status = fields.Str(load_default=None, validate=validate.OneOf(("reserved", "issued", "infused", "released",
                                                                     "expired", "blocked")))


class ReservationCreateSchema(ESignSchema):
    patient_id = fields.Int(required=True)
    infusion_number = fields.Int(required=True, validate=validate.Range(min=1, max=50))
    planned_at = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601 with its UTC offset"})
    unit_ids = fields.List(fields.Int(), required=True, validate=validate.Length(min=1, max=20))
    note = fields.Str(load_default=None, validate=validate.Length(max=2000))


class ReleaseSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class IssueSchema(Schema):
    location = fields.Str(required=True, validate=validate.Length(min=1, max=120),
                          metadata={"description": "ward, room or bed the bags go to"})


class BedsideSchema(Schema):
    wristband = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    bag_identifier = fields.Str(required=True, validate=validate.Length(min=1, max=100))
    reservation_id = fields.Int(load_default=None)
    location = fields.Str(load_default=None, validate=validate.Length(max=120))


class BedsideResultSchema(Schema):
    reservation = fields.Nested(ReservationSchema)
    unit_id = fields.Int(attribute="bag.unit_id")
    patient_study_id = fields.Str(attribute="patient.study_id")
    checked_unit_ids = fields.List(fields.Int(), attribute="checked")
    complete = fields.Bool()


class InfusionSchema(Schema):
    id = fields.Int()
    reservation_id = fields.Int()
    patient_id = fields.Int()
    infusion_number = fields.Int()
    started_at = fields.DateTime()
    ended_at = fields.DateTime()
    volume_ml = fields.Float()
    reaction = fields.Bool()
    reaction_description = fields.Str(allow_none=True)
    administered_by = fields.Str()
    witnessed_by = fields.Str()
    recorded_at = fields.DateTime()


class InfusionCreateSchema(Schema):
    reservation_id = fields.Int(required=True)
    started_at = fields.AwareDateTime(required=True)
    ended_at = fields.AwareDateTime(required=True)
    volume_ml = SiteNumber(required=True)
    reaction = fields.Bool(load_default=False)
    reaction_description = fields.Str(load_default=None, validate=validate.Length(max=4000))
    username = fields.Str(required=True)
    password = fields.Str(required=True, load_only=True)
    witness_username = fields.Str(required=True)
    witness_password = fields.Str(required=True, load_only=True)


class VisitSchema(Schema):
    id = fields.Int()
    patient_id = fields.Int()
    kind = fields.Str()
    week = fields.Int()
    label = fields.Str()
    opens_on = fields.Date()
    due_on = fields.Date()
    closes_on = fields.Date()
    done_on = fields.Date(allow_none=True)
    done_by = fields.Str(allow_none=True)
    outcome = fields.Str(allow_none=True)
    state = fields.Method("_state")

    def _state(self, visit: Any) -> str:
        return followup.visit_state(visit)


class WorkItemSchema(Schema):
    visit = fields.Nested(VisitSchema)
    patient_study_id = fields.Str(attribute="patient.study_id")
    state = fields.Str()


class VisitDoneSchema(Schema):
    done_on = fields.Date(load_default=None)
    outcome = fields.Str(required=True, validate=validate.Length(min=1, max=4000))


class AdverseEventSchema(Schema):
    id = fields.Int(dump_only=True)
    patient_id = fields.Int(required=True)
    term = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    onset_on = fields.Date(required=True)
    ctcae_grade = fields.Int(required=True, validate=validate.Range(min=1, max=5))
    relation = fields.Str(required=True, validate=validate.OneOf(AE_RELATIONS))
    serious = fields.Bool(load_default=False)
    seriousness = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200))
    dose_limiting = fields.Bool(load_default=False)
    description = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    recorded_at = fields.DateTime(dump_only=True)
    recorded_by = fields.Str(dump_only=True)


class PatientQuerySchema(Schema):
    patient_id = fields.Int(required=True)


class ChainQuerySchema(Schema):
    identifier = fields.Str(load_default=None, validate=validate.Length(max=100))
    din = fields.Str(load_default=None, validate=validate.Length(max=20))
    lot_number = fields.Str(load_default=None, validate=validate.Length(max=40))
    study_id = fields.Str(load_default=None, validate=validate.Length(max=40))


class ChainSchema(Schema):
    start = fields.Str()
    cord_blood_units = fields.Method("_units")

    def _units(self, chain: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"din": u["cord_blood_unit"].din, "cord_blood_unit_id": u["cord_blood_unit"].id,
                 "batches": [{"batch_id": b["batch"].id, "lot_number": b["batch"].lot_number,
                              "bags": [{"unit_id": bag["unit"].id, "product_identifier": bag["unit"].product_identifier,
                                        "status": bag["unit"].status, "patient": bag["patient"]}
                                       for bag in b["bags"]]} for b in u["batches"]]}
                for u in chain["cord_blood_units"]]


# --- reservations ---------------------------------------------------------------------------------

@reservations_blp.route("")
class Reservations(MethodView):
    @require("care.view")
    @reservations_blp.arguments(ReservationQuerySchema, location="query")
    @reservations_blp.response(200, ReservationSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """Reservations of the patients one may see (a patient's, with patient_id), by planned time."""
        sess = db.session
        if query["patient_id"] is not None:
            patient = res_ops.get_patient(sess, query["patient_id"], current_user)
            found = res_ops.reservations_of(sess, patient)
            return [r for r in found if query["status"] in (None, r.status)]
        return res_ops.list_reservations(sess, current_user, (query["status"],) if query["status"] else None)

    @require("care.reserve")
    @reservations_blp.arguments(ReservationCreateSchema)
    @reservations_blp.response(201, ReservationSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Reserve bags of one lot for one planned infusion, e-signed 'reserved'; 409 naming the holder when
        another reservation holds any of the bags."""
        sess = db.session
        patient = res_ops.get_patient(sess, data["patient_id"], current_user)
        return res_ops.reserve_bags(sess, patient, infusion_number=data["infusion_number"],
                                    planned_at=data["planned_at"], unit_ids=data["unit_ids"], note=data["note"],
                                    username=data["username"], password=data["password"],
                                    current_user=current_user, comment=data["comment"])


@reservations_blp.route("/<int:reservation_id>")
class ReservationItem(MethodView):
    @require("care.view")
    @reservations_blp.response(200, ReservationSchema)
    def get(self, reservation_id: int) -> Any:
        return res_ops.get_reservation(db.session, reservation_id, current_user)


@reservations_blp.route("/<int:reservation_id>/release")
class ReservationRelease(MethodView):
    @require("care.reserve")
    @reservations_blp.arguments(ReleaseSchema)
    @reservations_blp.response(200, ReservationSchema)
    def post(self, data: dict[str, Any], reservation_id: int) -> Any:
        """Release the bags with a reason (only while they are still in the pharmacy)."""
        sess = db.session
        return res_ops.release_reservation(sess, res_ops.get_reservation(sess, reservation_id, current_user),
                                           data["reason"], current_user)


@reservations_blp.route("/<int:reservation_id>/issue")
class ReservationIssue(MethodView):
    @require("care.issue")
    @reservations_blp.arguments(IssueSchema)
    @reservations_blp.response(200, ReservationSchema)
    def post(self, data: dict[str, Any], reservation_id: int) -> Any:
        """Issue the bags from the pharmacy to a location; expiry and lot status are checked again now."""
        sess = db.session
        return dispensing.issue_reservation(sess, res_ops.get_reservation(sess, reservation_id, current_user),
                                            location=data["location"], current_user=current_user)


# --- bedside and infusions ------------------------------------------------------------------------

@bedside_blp.route("")
class BedsideChecks(MethodView):
    @require("care.infuse")
    @bedside_blp.arguments(BedsideSchema)
    @bedside_blp.response(201, BedsideResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Match a scanned bag and wristband against the reservation; 409 'STOP' with the reason otherwise."""
        return bedside.check_at_bedside(db.session, wristband=data["wristband"], bag_identifier=data["bag_identifier"],
                                        current_user=current_user, location=data["location"],
                                        reservation_id=data["reservation_id"])


@infusions_blp.route("")
class Infusions(MethodView):
    @require("care.view")
    @infusions_blp.arguments(PatientQuerySchema, location="query")
    @infusions_blp.response(200, InfusionSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        sess = db.session
        return infusions.infusions_of(sess, res_ops.get_patient(sess, query["patient_id"], current_user))

    @require("care.infuse")
    @infusions_blp.arguments(InfusionCreateSchema)
    @infusions_blp.response(201, InfusionSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record the infusion of an issued, bedside-checked reservation: administered (the caller) and
        witnessed (a second clinician's user ID and password)."""
        sess = db.session
        reservation = res_ops.get_reservation(sess, data["reservation_id"], current_user)
        return infusions.record_infusion(
            sess, reservation, infusions.InfusionInput(started_at=data["started_at"], ended_at=data["ended_at"],
                                                       volume_ml=data["volume_ml"], reaction=data["reaction"],
                                                       reaction_description=data["reaction_description"]),
            username=data["username"], password=data["password"], current_user=current_user,
            witness_username=data["witness_username"], witness_password=data["witness_password"])


# --- follow-up ------------------------------------------------------------------------------------

@follow_up_blp.route("/worklist")
class Worklist(MethodView):
    @require("care.follow_up")
    @follow_up_blp.response(200, WorkItemSchema(many=True))
    def get(self) -> Any:
        """What is due this week or overdue for one's patients."""
        return followup.worklist(db.session, current_user)


@follow_up_blp.route("/visits")
class Visits(MethodView):
    @require("care.view")
    @follow_up_blp.arguments(PatientQuerySchema, location="query")
    @follow_up_blp.response(200, VisitSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        sess = db.session
        return followup.visits_of(sess, res_ops.get_patient(sess, query["patient_id"], current_user))


@follow_up_blp.route("/visits/<int:visit_id>/completion")
class VisitCompletion(MethodView):
    @require("care.follow_up")
    @follow_up_blp.arguments(VisitDoneSchema)
    @follow_up_blp.response(200, VisitSchema)
    def post(self, data: dict[str, Any], visit_id: int) -> Any:
        sess = db.session
        return followup.complete_visit(sess, followup.get_visit(sess, visit_id, current_user), done_on=data["done_on"],
                                       outcome=data["outcome"], current_user=current_user)


@follow_up_blp.route("/adverse-events")
class AdverseEvents(MethodView):
    @require("care.view")
    @follow_up_blp.arguments(PatientQuerySchema, location="query")
    @follow_up_blp.response(200, AdverseEventSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        sess = db.session
        return followup.adverse_events_of(sess, res_ops.get_patient(sess, query["patient_id"], current_user))

    @require("care.follow_up")
    @follow_up_blp.arguments(AdverseEventSchema)
    @follow_up_blp.response(201, AdverseEventSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record an adverse event: CTCAE term and grade, relation to the product, seriousness."""
        sess = db.session
        patient = res_ops.get_patient(sess, data.pop("patient_id"), current_user)
        return followup.record_adverse_event(sess, patient, current_user=current_user, **data)


@chain_blp.route("")
class ChainOfIdentity(MethodView):
    @require("care.view")
    @chain_blp.arguments(ChainQuerySchema, location="query")
    @chain_blp.response(200, ChainSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """From one bag (identifier), cord blood unit (din), batch (lot_number) or patient (study_id): every
        cord blood unit reached, its batches, their bags and the patient each bag went to."""
        return infusions.walk_chain_of_identity(db.session, current_user, **query)


# --- command --------------------------------------------------------------------------------------

dosing_care_cli = AppGroup("care", help="Dose reservations and follow-up.")


@dosing_care_cli.command("expire-reservations")
def expire_reservations_command() -> None:
    """End the reservations not issued by their expiry (planned infusion + RESERVATION_HOLD_HOURS)."""
    from app.audit import Actor, acting_as

    with acting_as(Actor(None, "reservation-expiry")):
        expired = res_ops.expire_reservations(db.session)
        db.session.commit()
    click.echo(f"{len(expired)} reservation(s) expired")
