"""Signals of batch execution, for the parts that build on the batch record (quality, dosing).

``step_completed.send(step, sess=sess)``: a step was signed complete (after the flush, in the same unit of
work); a receiver may refuse the signing by raising a DomainError, which rolls the whole request back.
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

step_completed = _signals.signal("batches.step-completed", doc="A batch step was signed complete: send(step, sess=sess).")
