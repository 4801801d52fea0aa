"""Limit alarms: the evaluator the collector runs on every good sample and on the clock, and the operator
actions.

ISA-18.2 practice: an excursion must persist for the on-delay before it alarms; once raised, the value
must come back inside the limit by the deadband and stay there for the off-delay before the alarm
clears. A signal chattering around a limit therefore gives one alarm, not dozens. OPC UA reports by exception,
so a steady value sends nothing: the delays also run on the clock (``LimitEvaluator.tick``, driven by
the collector's heartbeats), and an alarm is raised when its on-delay runs out, not at the next sample.
Lifecycle: active -> acknowledged (comment, who) -> cleared; an alarm that returns to normal before it
is acknowledged stays "returned" until someone acknowledges it. Shelving hides an alarm from the
active list for at most ``MAX_SHELVE_MINUTES``; it is still recorded and still counts for the batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from equipment.models import Alarm, Tag

MAX_SHELVE_MINUTES = int(os.environ.get("EQUIPMENT_MAX_SHELVE_MINUTES", "480"))


@dataclass
class AlarmEvent:
    """What the evaluator decided for one sample: raise, new peak, or clear."""

    kind: str  # "raise" | "peak" | "clear"
    tag_id: int
    at_us: int
    value: float
    limit_kind: str | None = None
    limit_value: float | None = None
    excursion_started_us: int | None = None


@dataclass
class LimitEvaluator:
    """The alarm state of one tag, fed with its good samples in source-time order."""

    tag_id: int
    low: float | None
    high: float | None
    on_delay_us: int = 0
    off_delay_us: int = 0
    deadband: float = 0.0
    state: str = "normal"  # normal | pending | alarm
    limit_kind: str | None = None
    since_us: int | None = None
    returning_since_us: int | None = None
    peak: float | None = None
    alarm_id: int | None = None
    last_us: int | None = field(default=None)

    @classmethod
    def for_tag(cls, tag: Tag) -> "LimitEvaluator":
        return cls(tag.id, tag.low_limit, tag.high_limit, int(tag.on_delay_s * 1e6), int(tag.off_delay_s * 1e6),
                   tag.deadband or 0.0)

    def configure(self, tag: Tag) -> None:
        """Take new limits and timings without losing the current alarm state."""
        self.low, self.high, self.deadband = tag.low_limit, tag.high_limit, tag.deadband or 0.0
        self.on_delay_us, self.off_delay_us = int(tag.on_delay_s * 1e6), int(tag.off_delay_s * 1e6)

    def resume(self, alarm: Alarm) -> None:
        """Continue an alarm that is still open in the database (after a collector restart)."""
        self.state, self.limit_kind, self.alarm_id, self.peak = "alarm", alarm.limit_kind, alarm.id, alarm.peak_value
        self.returning_since_us = None

    def _exceeded(self, value: float) -> str | None:
        if self.high is not None and value > self.high:
            return "high"
        if self.low is not None and value < self.low:
            return "low"
        return None

    def _limit(self, kind: str) -> float:
        return self.high if kind == "high" else self.low  # type: ignore[return-value]

    def _returned(self, value: float) -> bool:
        limit = self._limit(self.limit_kind or "high")
        if limit is None:  # the limit was removed while the alarm was active
            return True
        if self.limit_kind == "high":
            return value <= limit - self.deadband
        return value >= limit + self.deadband

    def _more_extreme(self, value: float) -> bool:
        if self.peak is None:
            return True
        return value > self.peak if self.limit_kind == "high" else value < self.peak

    def feed(self, at_us: int, value: float) -> list[AlarmEvent]:
        if self.last_us is not None and at_us <= self.last_us:
            return []  # a replayed or out-of-order sample changes no alarm state
        self.last_us = at_us
        if self.state == "normal":
            kind = self._exceeded(value)
            if kind is None:
                return []
            self.state, self.limit_kind, self.since_us, self.peak = "pending", kind, at_us, value
        if self.state == "pending":
            kind = self._exceeded(value)
            if kind != self.limit_kind:
                self.state = "normal"
                return self.feed_restart(at_us, value) if kind else []
            if self._more_extreme(value):
                self.peak = value
            if at_us - (self.since_us or at_us) >= self.on_delay_us:
                self.state, self.returning_since_us = "alarm", None
                return [AlarmEvent("raise", self.tag_id, at_us, self.peak if self.peak is not None else value,
                                   self.limit_kind, self._limit(self.limit_kind or "high"), self.since_us)]
            return []
        # state == "alarm"
        if self._returned(value):
            if self.returning_since_us is None:
                self.returning_since_us = at_us
            if at_us - self.returning_since_us >= self.off_delay_us:
                self.state, self.since_us, self.returning_since_us = "normal", None, None
                return [AlarmEvent("clear", self.tag_id, at_us, value)]
            return []
        self.returning_since_us = None
        if self._exceeded(value) == self.limit_kind and self._more_extreme(value):
            self.peak = value
            return [AlarmEvent("peak", self.tag_id, at_us, value)]
        return []

    def tick(self, now_us: int) -> list[AlarmEvent]:
        """The clock moved to ``now_us`` with the last value unchanged (the server reports by exception,
        and a heartbeat says the connection is alive): an on-delay or off-delay that ran out by then takes
        effect at the moment it ran out."""
        if self.last_us is not None and now_us <= self.last_us:
            return []
        if self.state == "pending" and self.since_us is not None and now_us - self.since_us >= self.on_delay_us:
            at_us = self.since_us + self.on_delay_us
            self.state, self.returning_since_us = "alarm", None
            self.last_us = max(self.last_us or at_us, at_us)
            return [AlarmEvent("raise", self.tag_id, at_us, self.peak if self.peak is not None else 0.0,
                               self.limit_kind, self._limit(self.limit_kind or "high"), self.since_us)]
        if self.state == "alarm" and self.returning_since_us is not None \
                and now_us - self.returning_since_us >= self.off_delay_us:
            at_us = self.returning_since_us + self.off_delay_us
            self.state, self.since_us, self.returning_since_us = "normal", None, None
            self.last_us = max(self.last_us or at_us, at_us)
            return [AlarmEvent("clear", self.tag_id, at_us, self.peak if self.peak is not None else 0.0)]
        return []

    def feed_restart(self, at_us: int, value: float) -> list[AlarmEvent]:
        self.last_us = None
        return self.feed(at_us, value)


# --- queries ------------------------------------------------------------------------------------

def get_alarm(sess: Session, alarm_id: int) -> Alarm:
    alarm = sess.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound("No such alarm.")
    return alarm


def alarms_in_window(sess: Session, asset_id: int, start: datetime, end: datetime | None) -> list[Alarm]:
    """Alarms of an asset that overlap [start, end) (end None = still open), oldest first."""
    stmt = select(Alarm).where(Alarm.asset_id == asset_id,
                               or_(Alarm.cleared_at.is_(None), Alarm.cleared_at > start))
    if end is not None:
        stmt = stmt.where(Alarm.raised_at < end)
    return list(sess.execute(stmt.order_by(Alarm.raised_at, Alarm.id)).scalars())


def alarms_needing_attention(sess: Session, asset_id: int | None = None, at: datetime | None = None) -> list[Alarm]:
    """Active or unacknowledged alarms, not shelved, newest first."""
    now = at or utcnow()
    stmt = select(Alarm).where(Alarm.state.in_(("active", "acknowledged", "returned")),
                               or_(Alarm.shelved_until.is_(None), Alarm.shelved_until <= now))
    if asset_id is not None:
        stmt = stmt.where(Alarm.asset_id == asset_id)
    return list(sess.execute(stmt.order_by(Alarm.raised_at.desc())).scalars())


def shelved_alarms(sess: Session, asset_id: int, at: datetime | None = None) -> list[Alarm]:
    """Alarms of an asset shelved now, soonest back first."""
    now = at or utcnow()
    return list(sess.execute(select(Alarm).where(Alarm.asset_id == asset_id, Alarm.shelved_until > now)
                             .order_by(Alarm.shelved_until, Alarm.id)).scalars())


def recent_alarms(sess: Session, asset_id: int, limit: int = 50) -> list[Alarm]:
    return list(sess.execute(select(Alarm).where(Alarm.asset_id == asset_id)
                             .order_by(Alarm.raised_at.desc()).limit(limit)).scalars())


# --- operator actions ---------------------------------------------------------------------------

def acknowledge_alarm(sess: Session, alarm: Alarm, comment: str) -> None:
    """Acknowledge with a comment; who and when come from the session's user and the server clock."""
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Say what was seen or done when acknowledging the alarm.",
                               errors={"comment": ["A comment is required to acknowledge an alarm."]})
    if alarm.acknowledged_at is not None:
        raise Conflict(f"This alarm was already acknowledged by {alarm.acknowledged_by}.")
    with audit_reason(sess, f"alarm acknowledged: {comment}"):
        alarm.acknowledged_at = utcnow()
        alarm.acknowledged_by = current_actor().username
        alarm.ack_comment = comment
        alarm.state = "cleared" if alarm.cleared_at is not None else "acknowledged"


def shelve_alarm(sess: Session, alarm: Alarm, minutes: Any, reason: str) -> None:
    """Hide an alarm from the active list for a while (at most MAX_SHELVE_MINUTES), with a reason."""
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    try:
        duration = float(str(minutes).strip())
    except (TypeError, ValueError):
        duration = -1
        errors["minutes"] = ["Enter the number of minutes."]
    if not errors and not 0 < duration <= MAX_SHELVE_MINUTES:
        errors["minutes"] = [f"Between 1 and {MAX_SHELVE_MINUTES} minutes."]
    if not reason:
        errors["reason"] = ["Give the reason for shelving."]
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    if alarm.state == "cleared":
        raise Conflict("This alarm is already cleared; there is nothing to shelve.")
    with audit_reason(sess, f"alarm shelved: {reason}"):
        alarm.shelved_until = utcnow() + timedelta(minutes=duration)
        alarm.shelved_by = current_actor().username
        alarm.shelve_reason = reason


def unshelve_alarm(sess: Session, alarm: Alarm, reason: str) -> None:
    """Put a shelved alarm back on the active list before its time is up, with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Please correct the highlighted fields.",
                               errors={"reason": ["Give the reason for unshelving."]})
    if not alarm.is_shelved():
        raise Conflict("This alarm is not shelved.")
    with audit_reason(sess, f"alarm unshelved: {reason}"):
        alarm.shelved_until = None
