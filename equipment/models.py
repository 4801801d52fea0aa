"""Every model of the equipment package, imported here so that Alembic and the app see them all.

Registry, calibration, usage, OPC UA tags, alarms and gaps are GMP records (audited). Raw telemetry
samples and their per-minute rollups are instrument data written in bulk by the collector with Core
inserts: they are not audited per row, and their times are integer microseconds (samples) or minutes
(rollups) since the Unix epoch in UTC, because a 14-day batch holds about 12 million of them.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import Audited, Voidable
from app.db import Base

ASSET_TYPES = {
    "co2_incubator": "CO2 incubator",
    "rocking_bioreactor": "Rocking bioreactor",
    "stirred_bioreactor": "Stirred bioreactor",
    "biosafety_cabinet": "Biosafety cabinet",
    "ln2_freezer": "LN2 freezer",
    "dry_shipper": "Dry shipper",
    "centrifuge": "Centrifuge",
    "cell_counter": "Cell counter",
    "flow_cytometer": "Flow cytometer",
    "controlled_rate_freezer": "Controlled-rate freezer",
    "water_bath": "Water bath / thawing device",
}
ASSET_STATUSES = {
    "available": "Available",
    "in_use": "In use",
    "cleaning": "Cleaning",
    "out_of_service": "Out of service",
}
SECURITY_POLICIES = ("None", "Basic256Sha256")
SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
SERVICE_KINDS = {"calibration": "Calibration", "maintenance": "Maintenance"}
SERVICE_RESULTS = {"pass": "Pass", "fail": "Fail"}
GAP_CAUSES = {
    "connection_lost": "Connection to the OPC UA server lost",
    "server_restart": "OPC UA server restarted",
    "missed_sequence": "Missed notification sequence number",
    "stale_subscription": "Subscription went stale (no data or keep-alive)",
    "bad_quality": "Bad-quality values from the instrument",
    "collector_restart": "Collector not running (restart after a stop or crash)",
}
ALARM_STATES = {
    "active": "Active, unacknowledged",
    "acknowledged": "Active, acknowledged",
    "returned": "Returned to normal, unacknowledged",
    "cleared": "Cleared",
}
LIMIT_KINDS = {"high": "High", "low": "Low"}
# Which clock the time of a sample came from: the instrument's (source), the server's, or the collector's
# receipt time when the server gave neither (OPC UA's null DateTime is never stored as a time).
TIME_SOURCES = {0: "source timestamp", 1: "server timestamp", 2: "receipt time at the collector"}
TIME_SOURCE, SERVER_TIME, RECEIPT_TIME = 0, 1, 2
# Asset types that hold several records at once (cultures in an incubator, bags in a freezer); the
# others are occupied by one record at a time.
CONCURRENT_ASSET_TYPES = frozenset({"co2_incubator", "ln2_freezer", "dry_shipper"})
MAX_CAPACITY = 100


def _in(column: str, values: object) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"  # type: ignore[union-attr]


class Asset(Audited, Base):
    """A piece of equipment: identity, type, location, status and its OPC UA connection."""

    __tablename__ = "equipment_asset"
    __audit_redact__ = frozenset({"opc_password_encrypted"})
    __table_args__ = (
        CheckConstraint(_in("asset_type", ASSET_TYPES), name="asset_type_known"),
        CheckConstraint(_in("status", ASSET_STATUSES), name="status_known"),
        CheckConstraint(_in("security_policy", SECURITY_POLICIES), name="security_policy_known"),
        CheckConstraint(_in("security_mode", SECURITY_MODES), name="security_mode_known"),
        CheckConstraint("(security_policy = 'None') = (security_mode = 'None')", name="security_policy_mode_match"),
        CheckConstraint(f"capacity >= 1 AND capacity <= {MAX_CAPACITY}", name="capacity_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    asset_type: Mapped[str] = mapped_column(String(40))
    location: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="available")
    endpoint_url: Mapped[str | None] = mapped_column(String(300))
    security_policy: Mapped[str] = mapped_column(String(40), default="None")
    security_mode: Mapped[str] = mapped_column(String(20), default="None")
    opc_username: Mapped[str | None] = mapped_column(String(120))
    opc_password_encrypted: Mapped[str | None] = mapped_column(Text)
    # how many records (batches, cleanings) may occupy the asset at once; above 1 only for CONCURRENT_ASSET_TYPES
    capacity: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime]

    tags: Mapped[list["Tag"]] = relationship(back_populates="asset", order_by="Tag.id")
    service_records: Mapped[list["ServiceRecord"]] = relationship(
        back_populates="asset", order_by="ServiceRecord.performed_on")

    @property
    def type_label(self) -> str:
        return ASSET_TYPES.get(self.asset_type, self.asset_type)

    @property
    def status_label(self) -> str:
        return ASSET_STATUSES.get(self.status, self.status)


class ServiceRecord(Audited, Voidable, Base):
    """A calibration or maintenance performed on an asset, with the date the next one is due."""

    __tablename__ = "equipment_service_record"
    __table_args__ = (
        CheckConstraint(_in("kind", SERVICE_KINDS), name="kind_known"),
        CheckConstraint(_in("result", SERVICE_RESULTS), name="result_known"),
        CheckConstraint("due_on > performed_on", name="due_after_performed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("equipment_asset.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    performed_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    result: Mapped[str] = mapped_column(String(10))
    performed_by: Mapped[str] = mapped_column(String(200))
    certificate_ref: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    asset: Mapped[Asset] = relationship(back_populates="service_records")


class AssetUsage(Audited, Base):
    """Which record (a batch record, a cleaning) occupied which asset, from when to when."""

    __tablename__ = "equipment_usage"
    __table_args__ = (CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("equipment_asset.id"), index=True)
    record_type: Mapped[str] = mapped_column(String(60))
    record_id: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(String(80))

    asset: Mapped[Asset] = relationship()


class Tag(Audited, Base):
    """One OPC UA variable of an asset: NodeId, parameter name, unit and its alarm settings."""

    __tablename__ = "equipment_tag"
    __table_args__ = (
        UniqueConstraint("asset_id", "parameter"),
        UniqueConstraint("asset_id", "node_id"),
        CheckConstraint("low_limit IS NULL OR high_limit IS NULL OR low_limit < high_limit", name="limits_ordered"),
        CheckConstraint("on_delay_s >= 0 AND off_delay_s >= 0 AND deadband >= 0", name="alarm_settings_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("equipment_asset.id"), index=True)
    node_id: Mapped[str] = mapped_column(String(300))
    parameter: Mapped[str] = mapped_column(String(80))
    unit: Mapped[str] = mapped_column(String(20), default="")
    low_limit: Mapped[float | None] = mapped_column(Float)
    high_limit: Mapped[float | None] = mapped_column(Float)
    on_delay_s: Mapped[float] = mapped_column(Float, default=0.0)
    off_delay_s: Mapped[float] = mapped_column(Float, default=0.0)
    deadband: Mapped[float] = mapped_column(Float, default=0.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]

    asset: Mapped[Asset] = relationship(back_populates="tags")


class TelemetrySample(Base):
    """One value as the server reported it. The key (tag, source time) makes a replay a no-op."""

    __tablename__ = "telemetry_sample"
    __table_args__ = {"sqlite_with_rowid": False}  # the key is the row: half the storage on SQLite

    tag_id: Mapped[int] = mapped_column(ForeignKey("equipment_tag.id"), primary_key=True)
    source_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_us: Mapped[int | None] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int] = mapped_column(BigInteger, default=0)
    # which clock ``source_us`` came from (TIME_SOURCES); ``server_us`` is NULL when the server gave none
    time_source: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class TelemetryLink(Base):
    """The collector's last word on an asset's connection: when the server was last heard (a data change
    or a keep-alive), and how far the server's clock was from the collector's then.

    Instrument status overwritten about once a second, so not audited per change; the gaps it leads to are."""

    __tablename__ = "telemetry_link"

    asset_id: Mapped[int] = mapped_column(ForeignKey("equipment_asset.id"), primary_key=True)
    alive_us: Mapped[int] = mapped_column(BigInteger)
    server_offset_us: Mapped[int | None] = mapped_column(BigInteger)


class TelemetrySubscription(Base):
    """The sampling and publishing intervals the collector asked for on a tag, and what the server revised
    them to, as of the last subscription (instrument status, logged by the collector too)."""

    __tablename__ = "telemetry_subscription"

    tag_id: Mapped[int] = mapped_column(ForeignKey("equipment_tag.id"), primary_key=True)
    subscribed_us: Mapped[int] = mapped_column(BigInteger)
    requested_sampling_ms: Mapped[float] = mapped_column(Float)
    revised_sampling_ms: Mapped[float | None] = mapped_column(Float)
    requested_publishing_ms: Mapped[float] = mapped_column(Float)
    revised_publishing_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str | None] = mapped_column(String(120))


# A chunk holds at most this span of one tag's samples (an hour): older samples leave the row table
# for chunks, so a 14-day batch of 10 tags at 1 Hz is about 3,400 chunks instead of 12 million rows.
CHUNK_SPAN_US = 3_600_000_000


class TelemetryChunk(Audited, Base):
    """The samples of one tag in [start_us, end_us), losslessly compressed (equipment.chunks), with the
    SHA-256 of the decoded samples. Audited (payload redacted), so the trail holds each chunk's hash."""

    __tablename__ = "telemetry_chunk"
    __audit_redact__ = frozenset({"payload"})
    __table_args__ = (
        CheckConstraint(f"end_us > start_us AND end_us - start_us <= {CHUNK_SPAN_US}", name="span_bounded"),
        CheckConstraint("first_us >= start_us AND last_us < end_us AND first_us <= last_us", name="samples_inside"),
        CheckConstraint("sample_count > 0", name="not_empty"),
    )

    tag_id: Mapped[int] = mapped_column(ForeignKey("equipment_tag.id"), primary_key=True)
    start_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    end_us: Mapped[int] = mapped_column(BigInteger)
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)
    sample_count: Mapped[int] = mapped_column(Integer)
    codec: Mapped[int] = mapped_column(SmallInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


class TelemetryRollup(Base):
    """Per-minute min, max, mean and count of the good-quality samples of a tag, kept on ingest."""

    __tablename__ = "telemetry_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    tag_id: Mapped[int] = mapped_column(ForeignKey("equipment_tag.id"), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    min_value: Mapped[float] = mapped_column(Float)
    max_value: Mapped[float] = mapped_column(Float)
    mean_value: Mapped[float] = mapped_column(Float)
    sample_count: Mapped[int] = mapped_column(Integer)


class TelemetryGap(Audited, Base):
    """A period in which monitoring of an asset (or one tag of it) was not assured, with its cause."""

    __tablename__ = "telemetry_gap"
    __table_args__ = (
        CheckConstraint(_in("cause", GAP_CAUSES), name="cause_known"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after_start"),
        Index("ix_telemetry_gap_asset_window", "asset_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("equipment_asset.id"))
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("equipment_tag.id"))
    cause: Mapped[str] = mapped_column(String(30))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)

    asset: Mapped[Asset] = relationship()
    tag: Mapped[Tag | None] = relationship()

    @property
    def cause_label(self) -> str:
        return GAP_CAUSES.get(self.cause, self.cause)


class Alarm(Audited, Base):
    """A limit alarm of one tag: raised after the on-delay, cleared after the off-delay past the deadband."""

    __tablename__ = "equipment_alarm"
    __table_args__ = (
        CheckConstraint(_in("state", ALARM_STATES), name="state_known"),
        CheckConstraint(_in("limit_kind", LIMIT_KINDS), name="limit_kind_known"),
        CheckConstraint("cleared_at IS NULL OR cleared_at >= raised_at", name="clears_after_raise"),
        Index("ix_equipment_alarm_asset_window", "asset_id", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("equipment_asset.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("equipment_tag.id"), index=True)
    parameter: Mapped[str] = mapped_column(String(80))
    unit: Mapped[str] = mapped_column(String(20), default="")
    limit_kind: Mapped[str] = mapped_column(String(10))
    limit_value: Mapped[float] = mapped_column(Float)
    excursion_started_at: Mapped[datetime]
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    peak_value: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20), default="active")
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))
    ack_comment: Mapped[str | None] = mapped_column(Text)
    shelved_until: Mapped[datetime | None]
    shelved_by: Mapped[str | None] = mapped_column(String(80))
    shelve_reason: Mapped[str | None] = mapped_column(Text)

    asset: Mapped[Asset] = relationship()
    tag: Mapped[Tag] = relationship()

    @property
    def state_label(self) -> str:
        return ALARM_STATES.get(self.state, self.state)

    def is_shelved(self, at: datetime | None = None) -> bool:
        now = at or datetime.now(timezone.utc)
        return self.shelved_until is not None and self.shelved_until > now


__all__ = ["Asset", "ServiceRecord", "AssetUsage", "Tag", "TelemetrySample", "TelemetryChunk",
           "TelemetryRollup", "TelemetryGap", "Alarm", "TelemetryLink", "TelemetrySubscription"]
