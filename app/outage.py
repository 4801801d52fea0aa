"""Database outages seen by one process: logged once when they start and once when they end, with counts.

A request that finds the database unavailable gets a 503 and says so to its user; the log gets one line
at the first such request and one at the first request after it that reached the database again, so a
long outage cannot fill the disk with a traceback per request.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("nkmes.database")


class OutageLog:
    """The state of the current outage, if any, in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: float | None = None
        self.refused = 0
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.started is not None

    def failed(self, exc: BaseException) -> None:
        """A request could not reach the database."""
        with self._lock:
            self.refused += 1
            if self.started is not None:
                return
            self.started = time.monotonic()
            self.refused = 1
            self.outages += 1
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        log.error("database unavailable: requests get 503 until it answers again (%s: %s)",
                  type(getattr(exc, "orig", None) or exc).__name__, detail)

    def answered(self) -> None:
        """A request reached the database and committed: any outage is over."""
        if self.started is None:
            return
        with self._lock:
            if self.started is None:
                return
            seconds, refused = time.monotonic() - self.started, self.refused
            self.started, self.refused = None, 0
        log.warning("database available again after %.1f s; %d requests were refused with 503 meanwhile",
                    seconds, refused)


outage = OutageLog()
