"""REST endpoints under /api/v1/equipment: assets, tags, samples (downsampled), alarms, gaps."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app import db
from app.api import API_PREFIX
from app.errors import Conflict, DomainError, ValidationFailed
from app.permissions import require
from equipment import operations as ops
from equipment.schemas import (
    AcknowledgeSchema,
    AlarmSchema,
    AssetSchema,
    BrowsedNodeSchema,
    BrowseQuerySchema,
    ChartPointSchema,
    GapSchema,
    ReadingSchema,
    SamplesQuerySchema,
    TagSchema,
    UsabilitySchema,
    WindowQuerySchema,
)

blp = Blueprint("equipment_api", __name__, url_prefix=f"{API_PREFIX}/equipment",
                description="Equipment registry and OPC UA telemetry")


@blp.route("/assets")
class Assets(MethodView):
    @require("equipment.view")
    @blp.response(200, AssetSchema(many=True))
    def get(self) -> Any:
        """All registered equipment."""
        return ops.list_assets(db.session)

    @require("equipment.manage")
    @blp.arguments(AssetSchema)
    @blp.response(201, AssetSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register equipment (the OPC UA password is stored encrypted)."""
        return ops.create_asset(db.session, **data)


@blp.route("/assets/<int:asset_id>")
class AssetItem(MethodView):
    @require("equipment.view")
    @blp.response(200, AssetSchema)
    def get(self, asset_id: int) -> Any:
        return ops.get_asset(db.session, asset_id)


class EndpointUnreachable(DomainError):
    """The asset's OPC UA server did not answer the browse (down, refused, or timed out)."""

    status_code = 502


@blp.route("/assets/<int:asset_id>/browse")
class AssetBrowse(MethodView):
    @require("equipment.manage")
    @blp.arguments(BrowseQuerySchema, location="query")
    @blp.response(200, BrowsedNodeSchema(many=True))
    def get(self, args: dict[str, Any], asset_id: int) -> Any:
        """The children of a node on the asset's OPC UA endpoint, with current values of variables."""
        import asyncio
        from dataclasses import asdict

        from equipment.opcua.browse import browse_children

        asset = ops.get_asset(db.session, asset_id)
        if not asset.endpoint_url:
            raise Conflict("Set the OPC UA endpoint of this equipment first.")
        try:
            children = asyncio.run(browse_children(asset, args["node"]))
        except Exception as exc:  # the endpoint is down, refuses us or has no such node: say so in plain words
            raise EndpointUnreachable(f"Could not browse {asset.endpoint_url}: {type(exc).__name__} {exc}".strip())
        mapped = {t.node_id for t in asset.tags}
        return [{**asdict(c), "mapped": c.node_id in mapped} for c in children]


@blp.route("/assets/<int:asset_id>/usability")
class AssetUsability(MethodView):
    @require("equipment.view")
    @blp.response(200, UsabilitySchema)
    def get(self, asset_id: int) -> Any:
        """Whether the asset may be used now, and why not."""
        return ops.asset_usability(db.session, ops.get_asset(db.session, asset_id))


@blp.route("/assets/<int:asset_id>/readings")
class AssetReadings(MethodView):
    @require("equipment.view")
    @blp.response(200, ReadingSchema(many=True))
    def get(self, asset_id: int) -> Any:
        """Latest value of each tag, its age and alarm state."""
        return ops.latest_readings(db.session, ops.get_asset(db.session, asset_id).id)


@blp.route("/assets/<int:asset_id>/tags")
class AssetTags(MethodView):
    @require("equipment.view")
    @blp.response(200, TagSchema(many=True))
    def get(self, asset_id: int) -> Any:
        return list(ops.get_asset(db.session, asset_id).tags)

    @require("equipment.manage")
    @blp.arguments(TagSchema)
    @blp.response(201, TagSchema)
    def post(self, data: dict[str, Any], asset_id: int) -> Any:
        """Map an OPC UA variable to a parameter, with alarm limits, delays and deadband."""
        return ops.add_tag(db.session, ops.get_asset(db.session, asset_id), **data)


@blp.route("/tags/<int:tag_id>/samples")
class TagSamples(MethodView):
    @require("equipment.view")
    @blp.arguments(SamplesQuerySchema, location="query")
    @blp.response(200, ChartPointSchema(many=True))
    def get(self, query: dict[str, Any], tag_id: int) -> Any:
        """Samples downsampled to at most max_points buckets (min, max, mean, count); empty buckets absent."""
        tag = ops.get_tag(db.session, tag_id)
        if query["end"] <= query["start"]:
            raise ValidationFailed("The end must be after the start.", errors={"end": ["After the start."]})
        return ops.chart_series(db.session, tag.id, query["start"], query["end"], query["max_points"])


@blp.route("/assets/<int:asset_id>/alarms")
class AssetAlarms(MethodView):
    @require("equipment.view")
    @blp.arguments(WindowQuerySchema, location="query")
    @blp.response(200, AlarmSchema(many=True))
    def get(self, query: dict[str, Any], asset_id: int) -> Any:
        """Alarms overlapping [start, end)."""
        return ops.alarms_in_window(db.session, ops.get_asset(db.session, asset_id).id, query["start"], query["end"])


@blp.route("/alarms/<int:alarm_id>/acknowledge")
class AlarmAcknowledge(MethodView):
    @require("equipment.alarms")
    @blp.arguments(AcknowledgeSchema)
    @blp.response(200, AlarmSchema)
    def post(self, data: dict[str, Any], alarm_id: int) -> Any:
        """Acknowledge an alarm with a comment."""
        alarm = ops.get_alarm(db.session, alarm_id)
        ops.acknowledge_alarm(db.session, alarm, data["comment"])
        return alarm


@blp.route("/assets/<int:asset_id>/gaps")
class AssetGaps(MethodView):
    @require("equipment.view")
    @blp.arguments(WindowQuerySchema, location="query")
    @blp.response(200, GapSchema(many=True))
    def get(self, query: dict[str, Any], asset_id: int) -> Any:
        """Telemetry gaps overlapping [start, end)."""
        return ops.gaps_in_window(db.session, ops.get_asset(db.session, asset_id).id, query["start"], query["end"])
