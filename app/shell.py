"""Registries through which domains add to the shared shell: navigation tiles and home panels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    permission: str
    description: str = ""
    order: int = 100


NAV_ITEMS: list[NavItem] = []


def register_nav(label: str, endpoint: str, permission: str, description: str = "", order: int = 100) -> None:
    """Add a tile to the home page and a link to the navigation bar, shown to users allowed to use it."""
    item = NavItem(label, endpoint, permission, description, order)
    if item not in NAV_ITEMS:
        NAV_ITEMS.append(item)
        NAV_ITEMS.sort(key=lambda i: (i.order, i.label))


# Long-running background services (OPC UA simulator, collector ...) that `make run` starts beside the
# web server, in registration order: name -> callable taking no arguments and running until stopped.
SERVICES: dict[str, Callable[[], None]] = {}


def register_service(name: str, run: Callable[[], None]) -> None:
    SERVICES[name] = run


def run_periodically(app: Any, actor: str, interval_seconds: float, work: Callable[[Any], None]) -> None:
    """Run work(session) every interval until stopped, as the named service actor (never a user left over from
    an earlier unit of work), each round one transaction committed on success and rolled back on failure; a
    failed round (the database away, say) is logged and the next one tries again."""
    import logging
    import time

    from app import db
    from app.audit import Actor, acting_as

    while True:
        with app.app_context(), acting_as(Actor(None, actor)):
            try:
                work(db.session)
                db.session.commit()
            except Exception:
                logging.getLogger("app.services").exception("service %s: this round failed, nothing kept", actor)
            finally:
                db.session.remove()
        time.sleep(interval_seconds)


# Demo data for `make run`: callables taking the session, run in order after the demo users exist.
DEMO_DATA: list[Callable[[Any], None]] = []


def register_demo_data(create: Callable[[Any], None]) -> None:
    if create not in DEMO_DATA:
        DEMO_DATA.append(create)


# Demo records signed by the demo users (batches ...): callables taking the session and the demo users'
# passwords (user ID -> password), run in order after DEMO_DATA.
DEMO_RECORDS: list[Callable[[Any, dict[str, str]], None]] = []


def register_demo_records(create: Callable[[Any, dict[str, str]], None]) -> None:
    if create not in DEMO_RECORDS:
        DEMO_RECORDS.append(create)


# How a record is named on a page ("batch MSNK-261202-001", not "batch 1"): table -> callable taking the
# session and the record's key and returning its name, or None when no such record exists.
RECORD_NAMES: dict[str, Callable[[Any, str], str | None]] = {}


def register_record_name(table: str, name: Callable[[Any, str], str | None]) -> None:
    RECORD_NAMES[table] = name


def record_name(sess: Any, table: str, record_id: str) -> str:
    """The record as people name it; the table and key when its domain names none."""
    namer = RECORD_NAMES.get(table)
    shown = namer(sess, record_id) if namer is not None else None
    return shown or f"{table.replace('_', ' ')} {record_id}"
