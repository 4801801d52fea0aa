"""Equipment registry, calibration, usability and the usage log (the contract batches relies on)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit import AuditEntry, history_for
from app.db import utcnow
from app.errors import Conflict, ReasonRequired, ValidationFailed
from equipment import operations as ops
from equipment.models import Asset, AssetUsage, Tag
from tests.equipment.conftest import old_date


def test_calibrated_available_asset_is_usable(db_session, make_asset):
    asset = make_asset("CO2-INC-01")
    result = ops.check_asset_usable(db_session, " co2-inc-01 ")
    assert result.usable is True and result.reason is None and result.asset.id == asset.id


def test_overdue_calibration_makes_asset_unusable_with_reason(db_session, make_asset):
    asset = make_asset("CO2-INC-02", due_in_days=-3)
    due = (utcnow().date() - timedelta(days=3)).isoformat()
    result = ops.check_asset_usable(db_session, "CO2-INC-02")
    assert result.usable is False
    assert result.reason == f"CO2-INC-02 calibration was due {due}."
    assert result.asset.id == asset.id


def test_unknown_code_uncalibrated_failed_and_out_of_service_are_unusable(db_session, make_asset):
    unknown = ops.check_asset_usable(db_session, "NOPE-1")
    assert unknown.usable is False and unknown.asset is None and "NOPE-1" in unknown.reason
    make_asset("CNT-01", asset_type="cell_counter", calibrated=False)
    assert "no calibration on record" in ops.check_asset_usable(db_session, "CNT-01").reason
    failed = make_asset("CNT-02", asset_type="cell_counter", calibrated=False)
    ops.record_service(db_session, failed, kind="calibration", performed_on=old_date(2), due_on=old_date(-300),
                       result="fail", performed_by="QC")
    assert "failed its last calibration" in ops.check_asset_usable(db_session, "CNT-02").reason
    broken = make_asset("CFG-01", asset_type="centrifuge")
    ops.set_asset_status(db_session, broken, "out_of_service", "rotor imbalance")
    result = ops.check_asset_usable(db_session, "CFG-01")
    assert result.usable is False and result.reason == "CFG-01 is out of service."


def test_usage_log_occupies_and_releases_the_asset(db_session, make_asset):
    asset = make_asset("BR-ROCK-01", asset_type="rocking_bioreactor")
    usage = ops.start_usage(db_session, "BR-ROCK-01", record_type="batch", record_id="NK-2026-001")
    assert asset.status == "in_use" and usage.ended_at is None and usage.started_by == "test"
    refused = ops.check_asset_usable(db_session, "BR-ROCK-01")
    assert refused.reason == "BR-ROCK-01 is in use by batch NK-2026-001."
    with pytest.raises(Conflict) as excinfo:
        ops.start_usage(db_session, "BR-ROCK-01", record_type="batch", record_id="NK-2026-002")
    assert "in use by batch NK-2026-001" in excinfo.value.message
    ops.end_usage(db_session, usage)
    assert usage.ended_at is not None and asset.status == "available"
    with pytest.raises(Conflict):
        ops.end_usage(db_session, usage)
    assert [u.record_id for u in ops.usage_log(db_session, asset.id)] == ["NK-2026-001"]


def test_start_usage_refuses_an_unusable_asset_and_writes_nothing(db_session, make_asset):
    make_asset("CO2-INC-02", due_in_days=-1)
    before = db_session.execute(select(func.count()).select_from(AssetUsage)).scalar_one()
    with pytest.raises(Conflict) as excinfo:
        ops.start_usage(db_session, "CO2-INC-02", record_type="batch", record_id="NK-1")
    assert "calibration was due" in excinfo.value.message
    assert db_session.execute(select(func.count()).select_from(AssetUsage)).scalar_one() == before


def test_bad_asset_input_is_refused_field_by_field(db_session):
    with pytest.raises(ValidationFailed) as excinfo:
        ops.create_asset(db_session, code="x", name="", asset_type="toaster", location="",
                         endpoint_url="http://example", security_policy="Basic256Sha256", security_mode="None")
    errors = excinfo.value.errors
    assert set(errors) >= {"code", "name", "asset_type", "location", "endpoint_url", "security_mode"}
    assert db_session.execute(select(func.count()).select_from(Asset)).scalar_one() == 0


def test_service_record_dates_are_checked(db_session, make_asset):
    asset = make_asset("CFG-02", asset_type="centrifuge", calibrated=False)
    with pytest.raises(ValidationFailed) as excinfo:
        ops.record_service(db_session, asset, kind="calibration", performed_on="2026-13-01", due_on="tomorrow",
                           result="maybe", performed_by="")
    assert set(excinfo.value.errors) == {"performed_on", "due_on", "result", "performed_by"}
    with pytest.raises(ValidationFailed) as excinfo:
        ops.record_service(db_session, asset, kind="calibration", performed_on=old_date(1), due_on=old_date(5),
                           result="pass", performed_by="QC")
    assert "due_on" in excinfo.value.errors


def test_status_change_needs_reason_and_is_audited(db_session, make_asset):
    asset = make_asset("BSC-01", asset_type="biosafety_cabinet")
    with pytest.raises(ReasonRequired):
        ops.set_asset_status(db_session, asset, "cleaning", "  ")
    ops.set_asset_status(db_session, asset, "cleaning", "post-campaign cleaning")
    entry = history_for(db_session, "equipment_asset", asset.id)[-1]
    assert entry.reason == "post-campaign cleaning"
    assert ("status", "available", "cleaning") in entry.change_list


def test_tag_validation_and_limit_change_audit(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-03")
    with pytest.raises(ValidationFailed) as excinfo:
        ops.add_tag(db_session, asset, node_id="not a node", parameter="", low_limit="abc", high_limit="1",
                    on_delay_s="-5")
    assert set(excinfo.value.errors) >= {"node_id", "parameter", "low_limit", "on_delay_s"}
    tag = make_tag(asset, "Temperature", 36.0, 38.0)
    with pytest.raises(ValidationFailed) as excinfo:
        ops.update_tag(db_session, tag, "tighten", node_id=tag.node_id, parameter="Temperature", low_limit=38,
                       high_limit=36)
    assert "high_limit" in excinfo.value.errors
    with pytest.raises(Conflict):
        ops.add_tag(db_session, asset, node_id="ns=2;s=Other", parameter="temperature")
    ops.update_tag(db_session, tag, "URS revision 3", node_id=tag.node_id, parameter="Temperature", unit="C",
                   low_limit=36.5, high_limit=37.5, on_delay_s=600, off_delay_s=60, deadband=0.2)
    entry = history_for(db_session, "equipment_tag", tag.id)[-1]
    assert entry.reason == "URS revision 3"
    assert ("high_limit", "38.0", "37.5") in entry.change_list
    assert db_session.get(Tag, tag.id).on_delay_s == 600


def test_opc_password_is_encrypted_and_never_in_the_audit_trail(db_session):
    from equipment.opcua.security import password_for

    asset = ops.create_asset(db_session, code="SBR-01", name="Stirred", asset_type="stirred_bioreactor",
                             location="B3", endpoint_url="opc.tcp://10.0.0.9:4840",
                             security_policy="Basic256Sha256", security_mode="SignAndEncrypt",
                             opc_username="mes", opc_password="s3cret-pass")
    assert asset.opc_password_encrypted and "s3cret" not in asset.opc_password_encrypted
    assert password_for("SBR-01", asset.opc_password_encrypted) == "s3cret-pass"
    db_session.commit()
    trail = " ".join(e.changes for e in db_session.execute(select(AuditEntry)).scalars())
    assert "SBR-01" in trail and "opc_password_encrypted" in trail  # the asset's entry is there, redacted
    assert "s3cret" not in trail and asset.opc_password_encrypted not in trail


def test_text_longer_than_its_column_is_refused_before_the_database(db_session, make_asset, make_tag):
    long = "x" * 301
    with pytest.raises(ValidationFailed) as excinfo:
        ops.create_asset(db_session, code="CFG-09", name=long, asset_type="centrifuge", location=long,
                         endpoint_url="opc.tcp://h/" + long, opc_username=long)
    assert set(excinfo.value.errors) == {"name", "location", "endpoint_url", "opc_username"}
    asset = make_asset("CFG-10", asset_type="centrifuge")
    with pytest.raises(ValidationFailed) as excinfo:
        ops.record_service(db_session, asset, kind="maintenance", performed_on=old_date(1), due_on=old_date(-90),
                           result="pass", performed_by=long, certificate_ref=long)
    assert set(excinfo.value.errors) == {"performed_by", "certificate_ref"}
    with pytest.raises(ValidationFailed) as excinfo:
        ops.add_tag(db_session, asset, node_id="ns=2;s=" + long, parameter=long, unit=long)
    assert set(excinfo.value.errors) == {"node_id", "parameter", "unit"}
    tag = make_tag(asset, "Speed", None, None)
    with pytest.raises(ValidationFailed) as excinfo:
        ops.update_tag(db_session, tag, "rename", node_id=tag.node_id, parameter=long)
    assert "parameter" in excinfo.value.errors
    with pytest.raises(ValidationFailed):
        ops.update_connection(db_session, asset, endpoint_url="opc.tcp://h/" + long, security_policy="None",
                              security_mode="None", opc_username=None, opc_password=None, reason="move")
    with pytest.raises(ValidationFailed) as excinfo:
        ops.start_usage(db_session, "CFG-10", record_type="batch", record_id=long)
    assert "record_id" in excinfo.value.errors
    db_session.flush()  # nothing half-made is waiting to reach the database
    assert db_session.execute(select(func.count()).select_from(Asset)).scalar_one() == 1


def test_a_password_without_a_user_is_not_stored_at_registration(db_session):
    asset = ops.create_asset(db_session, code="CFG-11", name="Centrifuge", asset_type="centrifuge", location="B2",
                             opc_password="orphan-secret")
    assert asset.opc_username is None and asset.opc_password_encrypted is None


def test_asset_usability_answers_for_a_loaded_asset_like_the_code_lookup(db_session, make_asset):
    asset = make_asset("CO2-INC-04", due_in_days=-2)
    assert ops.asset_usability(db_session, asset) == ops.check_asset_usable(db_session, "CO2-INC-04")
    assert ops.asset_usability(db_session, asset).usable is False


def test_tag_clashes_name_the_field_on_add_and_on_update(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-07")
    temperature = make_tag(asset, "Temperature")
    co2 = make_tag(asset, "CO2", 4.5, 5.5, unit="%")
    with pytest.raises(Conflict) as excinfo:
        ops.add_tag(db_session, asset, node_id=temperature.node_id, parameter="Humidity")
    assert set(excinfo.value.errors) == {"node_id"} and "Temperature" in excinfo.value.message
    with pytest.raises(Conflict) as excinfo:
        ops.update_tag(db_session, co2, "rename", node_id=co2.node_id, parameter="TEMPERATURE")
    assert set(excinfo.value.errors) == {"parameter"}
    with pytest.raises(Conflict) as excinfo:
        ops.update_tag(db_session, co2, "remap", node_id=temperature.node_id, parameter="CO2")
    assert set(excinfo.value.errors) == {"node_id"}
    ops.update_tag(db_session, co2, "unit fix", node_id=co2.node_id, parameter="co2", unit="%")  # itself is no clash
    assert db_session.get(Tag, co2.id).parameter == "co2"


def test_tag_limits_are_read_the_sites_way_and_ambiguous_ones_refused(db_session, make_asset):
    asset = make_asset("CO2-INC-04")
    with pytest.raises(ValidationFailed) as excinfo:
        ops.add_tag(db_session, asset, node_id="ns=2;s=T", parameter="Temperature", low_limit="36,5",
                    high_limit="1,500")
    assert "writes decimals with '.'" in excinfo.value.errors["low_limit"][0]
    assert "could be read as 1.500 or 1500" in excinfo.value.errors["high_limit"][0]
    tag = ops.add_tag(db_session, asset, node_id="ns=2;s=T", parameter="Temperature", low_limit="36.5",
                      high_limit="37.5")
    assert (tag.low_limit, tag.high_limit) == (36.5, 37.5)


def test_an_incubator_holds_several_records_up_to_its_capacity(db_session, make_asset):
    from app.errors import Conflict, ValidationFailed

    incubator = make_asset("CO2-INC-21", capacity=2)
    first = ops.start_usage(db_session, "CO2-INC-21", record_type="batch", record_id="1")
    second = ops.start_usage(db_session, "CO2-INC-21", record_type="batch", record_id="2")
    with pytest.raises(Conflict, match="all 2 places taken"):
        ops.start_usage(db_session, "CO2-INC-21", record_type="batch", record_id="3")
    with pytest.raises(Conflict, match="occupied by 2 records"):
        ops.set_capacity(db_session, incubator, "1", "one shelf out of service")
    ops.end_usage(db_session, first)
    assert incubator.status == "in_use" and ops.check_asset_usable(db_session, "CO2-INC-21").usable
    ops.end_usage(db_session, second)
    assert incubator.status == "available"
    with pytest.raises(ValidationFailed) as refused:
        make_asset("CFG-01", asset_type="centrifuge", capacity=2)
    assert "one record at a time" in refused.value.errors["capacity"][0]
