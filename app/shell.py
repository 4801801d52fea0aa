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


# Demo data for `make run`: callables taking the session, run in order after the demo users exist.
DEMO_DATA: list[Callable[[Any], None]] = []


def register_demo_data(create: Callable[[Any], None]) -> None:
    if create not in DEMO_DATA:
        DEMO_DATA.append(create)
