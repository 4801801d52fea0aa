"""A durable local spool: items wait here, in order, while the database cannot take them.

A small SQLite file of its own (synchronous=FULL), so that a database outage or a crash of the
collector loses nothing that reached it. Items the database refuses for good (not for being
unavailable, but because of what they are) move to the ``rejected`` table of the same file: kept,
counted and reported to the audit trail, never dropped.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from equipment.telemetry import GapEvent, Heartbeat, SampleIn, SubscriptionRevision

Item = SampleIn | GapEvent | Heartbeat | SubscriptionRevision


def encode(item: Item) -> str:
    if isinstance(item, SampleIn):
        return json.dumps(["s", item.tag_id, item.source_us, item.server_us, item.value, item.status_code,
                           item.time_source])
    if isinstance(item, Heartbeat):
        return json.dumps(["h", item.asset_id, item.alive_us, item.server_us])
    if isinstance(item, SubscriptionRevision):
        return json.dumps(["r", item.tag_id, item.subscribed_us, item.requested_sampling_ms, item.revised_sampling_ms,
                           item.requested_publishing_ms, item.revised_publishing_ms, item.status])
    return json.dumps(["g", item.asset_id, item.cause, item.at_us, item.detail, item.tag_id, item.action])


def decode(payload: str) -> Item:
    """An item as spooled (a sample spooled before time sources were recorded reads as a source time)."""
    data = json.loads(payload)
    if data[0] == "s":
        return SampleIn(*data[1:])
    if data[0] == "h":
        return Heartbeat(*data[1:])
    if data[0] == "r":
        return SubscriptionRevision(*data[1:])
    return GapEvent(*data[1:])


@dataclass(frozen=True)
class RejectedItem:
    """An item the database refused for good, with why and when (UTC microseconds)."""

    seq: int
    item: Item
    error: str
    rejected_us: int
    reported: bool


class Spool:
    """An append-only queue on disk; items are removed only after the database committed them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS rejected (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL, "
                           "error TEXT NOT NULL, rejected_us INTEGER NOT NULL, reported INTEGER NOT NULL DEFAULT 0)")

    def append(self, items: list[Item]) -> None:
        if not items:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT INTO spool (payload) VALUES (?)", [(encode(i),) for i in items])
            self._conn.execute("COMMIT")

    def peek(self, limit: int) -> list[tuple[int, Item]]:
        with self._lock:
            rows = self._conn.execute("SELECT seq, payload FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, decode(payload)) for seq, payload in rows]

    def remove_through(self, seq: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM spool WHERE seq <= ?", (seq,))

    def reject(self, seq: int, error: str) -> None:
        """Move the spooled item ``seq`` (and nothing else) to the rejected table, in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT OR REPLACE INTO rejected (seq, payload, error, rejected_us) "
                               "SELECT seq, payload, ?, ? FROM spool WHERE seq = ?",
                               (error, int(time.time() * 1_000_000), seq))
            self._conn.execute("DELETE FROM spool WHERE seq = ?", (seq,))
            self._conn.execute("COMMIT")

    def rejected(self, unreported_only: bool = False) -> list[RejectedItem]:
        query = "SELECT seq, payload, error, rejected_us, reported FROM rejected"
        if unreported_only:
            query += " WHERE reported = 0"
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY seq").fetchall()
        return [RejectedItem(seq, decode(payload), error, rejected_us, bool(reported))
                for seq, payload, error, rejected_us, reported in rows]

    def mark_reported(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("UPDATE rejected SET reported = 1 WHERE seq = ?", [(s,) for s in seqs])
            self._conn.execute("COMMIT")

    def rejected_count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
