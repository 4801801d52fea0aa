"""Signals through which equipment tells other packages about alarms and gaps (it never imports them).

``alarm_raised.send(asset, alarm=alarm)``: a limit alarm was raised on ``asset``.
``gap_opened.send(asset, gap=gap)``: monitoring of ``asset`` stopped being assured (``TelemetryGap``).

Both are sent inside the unit of work that writes the record (the collector's transaction), after the
flush, so receivers see the row and may add to the same transaction; they must not commit.
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

alarm_raised = _signals.signal("equipment.alarm-raised", doc="A limit alarm was raised: send(asset, alarm=alarm).")
alarm_cleared = _signals.signal("equipment.alarm-cleared", doc="An alarm returned to normal: send(asset, alarm=alarm).")
alarm_unshelved = _signals.signal("equipment.alarm-unshelved",
                                  doc="An alarm's shelving ran out: send(asset, alarm=alarm).")
gap_opened = _signals.signal("equipment.gap-opened", doc="A telemetry gap was opened: send(asset, gap=gap).")
