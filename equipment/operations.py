"""The operations other packages use (the contract of the equipment package), and the registry's.

Batch execution uses:

- ``check_asset_usable(session, asset_code, at=None) -> Usability(usable, reason, asset)`` (or
  ``asset_usability(session, asset, at=None)`` for an asset already loaded)
- ``start_usage(session, asset_code, *, record_type, record_id, started_at=None) -> AssetUsage``
  (raises ``app.errors.Conflict`` with the reason when the asset may not be used) and
  ``end_usage(session, usage, ended_at=None)``
- ``alarms_in_window(session, asset_id, start, end) -> list[Alarm]`` and
  ``gaps_in_window(session, asset_id, start, end) -> list[TelemetryGap]``: those overlapping the window
  (``end`` None = still open)
- ``latest_readings(session, asset_id) -> list[Reading]`` for live state on pages
- signals ``equipment.signals.alarm_raised`` (``send(asset, alarm=alarm)``) and ``gap_opened``
  (``send(asset, gap=gap)``)

Every operation flushes and never commits.
"""
from __future__ import annotations

from equipment.alarms import (
    MAX_SHELVE_MINUTES,
    acknowledge_alarm,
    alarms_in_window,
    alarms_needing_attention,
    get_alarm,
    recent_alarms,
    shelve_alarm,
    shelved_alarms,
    unshelve_alarm,
)
from equipment.models import Alarm, Asset, AssetUsage, ServiceRecord, Tag, TelemetryGap
from equipment.registry import (
    ServiceStatus,
    Usability,
    add_tag,
    asset_usability,
    check_asset_usable,
    create_asset,
    end_usage,
    find_asset,
    get_asset,
    get_tag,
    latest_service,
    list_assets,
    open_usages,
    record_service,
    service_status,
    set_asset_status,
    set_capacity,
    start_usage,
    update_connection,
    update_tag,
    usage_log,
)
from equipment.signals import alarm_cleared, alarm_raised, gap_opened
from equipment.telemetry import (
    Reading,
    chart_series,
    gaps_in_window,
    latest_readings,
    link_status,
    open_gaps,
    rejected_telemetry_count,
)

__all__ = [
    "MAX_SHELVE_MINUTES", "Alarm", "Asset", "AssetUsage", "Reading", "ServiceRecord", "ServiceStatus", "Tag",
    "TelemetryGap", "Usability", "acknowledge_alarm", "add_tag", "alarm_cleared", "alarm_raised",
    "alarms_in_window", "alarms_needing_attention", "asset_usability", "chart_series", "check_asset_usable",
    "create_asset", "end_usage", "find_asset", "gap_opened", "gaps_in_window", "get_alarm", "get_asset", "get_tag",
    "latest_readings", "latest_service", "link_status", "list_assets", "open_gaps", "open_usages", "recent_alarms",
    "record_service", "rejected_telemetry_count", "service_status", "set_asset_status", "set_capacity", "shelve_alarm",
    "shelved_alarms", "start_usage", "unshelve_alarm", "update_connection", "update_tag", "usage_log",
]
