"""Demo data for `make run`: the shipped dosing regimens, approved (idempotent)."""
from __future__ import annotations

from typing import Any

from app.audit import Actor, acting_as
from batches.dosing.regimens import install_seed_regimens


def create_demo_data(sess: Any) -> None:
    with acting_as(Actor(None, "demo-data")):
        install_seed_regimens(sess)
        sess.flush()
