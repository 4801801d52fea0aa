"""Factories for equipment tests."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

import pytest

from app.cli import upgrade_database
from app.db import make_engine, utcnow
from equipment import operations as ops


@pytest.fixture(autouse=True)
def _opcua_pki_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys and certificates made by tests go to a temporary directory, never to instance/."""
    monkeypatch.setenv("OPCUA_PKI_DIR", str(tmp_path_factory.getbasetemp() / "opcua-pki"))


@pytest.fixture(scope="module")
def telemetry_db(backend: str, fresh_database_url: Callable[[str], str]) -> str:
    """A migrated database of its own for each module whose code commits (collector, writer)."""
    url = fresh_database_url(backend)
    upgrade_database(url)
    return url


@pytest.fixture()
def engine(telemetry_db: str) -> Any:
    eng = make_engine(telemetry_db)
    yield eng
    eng.dispose()


@pytest.fixture()
def make_asset(db_session: Any) -> Callable[..., Any]:
    """make_asset(code, asset_type="co2_incubator", calibrated=True, due_in_days=180) -> Asset (committed)."""

    def make(code: str, asset_type: str = "co2_incubator", calibrated: bool = True, due_in_days: int = 180,
             **kwargs: Any) -> Any:
        asset = ops.create_asset(db_session, code=code, name=f"{code} unit", asset_type=asset_type,
                                 location="Cleanroom B2", **kwargs)
        if calibrated:
            today = utcnow().date()
            performed = min(today, today + timedelta(days=due_in_days) - timedelta(days=1))
            ops.record_service(db_session, asset, kind="calibration", performed_on=performed - timedelta(days=1),
                               due_on=today + timedelta(days=due_in_days), result="pass",
                               performed_by="Metrology Ltd")
        db_session.commit()
        return asset

    return make


@pytest.fixture()
def make_tag(db_session: Any) -> Callable[..., Any]:
    """make_tag(asset, parameter="Temperature", low=36.0, high=38.0, ...) -> Tag (committed)."""

    def make(asset: Any, parameter: str = "Temperature", low: float | None = 36.0, high: float | None = 38.0,
             unit: str = "C", node_id: str | None = None, **kwargs: Any) -> Any:
        tag = ops.add_tag(db_session, asset, node_id=node_id or f"ns=2;s={asset.code}.{parameter}",
                          parameter=parameter, unit=unit, low_limit=low, high_limit=high, **kwargs)
        db_session.commit()
        return tag

    return make


def old_date(days: int) -> date:
    return utcnow().date() - timedelta(days=days)
