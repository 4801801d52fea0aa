"""Where a bag stands beyond quality (held for, issued to or infused in a patient), as told by the parts
of the product that know it. Quality depends on none of them: a part registers a provider at start-up
(``register_unit_dosing_state``) and the bag page shows what the providers return."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy.orm import Session

# provider(sess, unit, user) -> list of {"text": str, "href": str | None, "link_text": str | None}
UnitStateProvider = Callable[[Session, Any, Any], list[dict[str, Any]]]
unit_dosing_state: list[UnitStateProvider] = []


def register_unit_dosing_state(provider: UnitStateProvider) -> None:
    """Add a provider once (init_app may run for several apps in one process)."""
    if provider not in unit_dosing_state:
        unit_dosing_state.append(provider)


def unit_dosing_states(sess: Session, unit: Any, user: Any) -> list[dict[str, Any]]:
    """Every provider's lines for this bag, in registration order."""
    lines: list[dict[str, Any]] = []
    for provider in unit_dosing_state:
        lines.extend(provider(sess, unit, user) or [])
    return lines
