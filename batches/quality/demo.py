"""Demo data for `make run`: the shipped release specifications, approved (idempotent)."""
from __future__ import annotations

from typing import Any

from app.audit import Actor, acting_as
from batches.quality.specifications import install_seed_specifications


def create_demo_data(sess: Any) -> None:
    with acting_as(Actor(None, "demo-data")):
        install_seed_specifications(sess)
        sess.flush()
