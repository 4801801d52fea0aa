"""Signals of batches.quality, for notifications and for the parts that build on the lot (dosing).

- ``oos_opened.send(investigation, sess=sess, lot=lot, result=result)``: a result failed its criterion and
  an OOS investigation was opened (in the same unit of work).
- ``lot_disposition_changed.send(lot, sess=sess, previous=status)``: a lot was released, conditionally
  released, rejected or put on recall.
- ``lot_results_changed.send(lot, sess=sess, reason=text)``: a result of a dispositioned lot was recorded
  or invalidated (its certificate of analysis is reissued).
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

oos_opened = _signals.signal("quality.oos-opened", doc="An OOS investigation was opened.")
lot_disposition_changed = _signals.signal("quality.lot-disposition-changed", doc="A lot's disposition changed.")
lot_results_changed = _signals.signal("quality.lot-results-changed", doc="A result of a dispositioned lot changed.")
