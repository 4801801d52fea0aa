"""Equipment pages and REST API: live list, asset page with chart, acknowledge, shelve and unshelve, bounds
of tag settings, refused telemetry, browse a real endpoint."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import db
from app.audit import Actor, AuditEntry, acting_as, record_event
from app.db import utcnow
from equipment import operations as ops
from equipment.models import Alarm, Asset, Tag
from equipment.opcua.simulator import Signal, Simulator
from equipment.telemetry import REJECTED_ACTION, IngestState, SampleIn, ingest, to_us
from tests.pg import free_port


def _alarmed_asset(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-01")
    tag = make_tag(asset)
    t0 = to_us(utcnow()) - 120_000_000
    state = IngestState()
    state.load(db_session)
    ingest(db_session, [SampleIn(tag.id, t0 + i * 1_000_000, None, 37.0 if i < 60 else 38.6, 0) for i in range(90)],
           state)
    db_session.commit()
    return asset, tag


def test_list_and_asset_page_show_live_state_chart_and_alarm(client, login, make_user, db_session, make_asset,
                                                             make_tag):
    asset, tag = _alarmed_asset(db_session, make_asset, make_tag)
    login(make_user("operator"))
    page = client.get("/equipment/").get_data(as_text=True)
    assert "CO2-INC-01" in page and "1 alarm" in page and "38.6" in page
    page = client.get(f"/equipment/{asset.id}").get_data(as_text=True)
    assert "Alarms needing attention" in page
    inline = page[page.index('<svg'):page.index('</svg>')]  # the chart is drawn into the page itself
    assert 'role="img"' in inline and "telemetry-chart" in inline and "style=" not in inline  # CSP: no inline style
    assert "<polygon" in inline and ">alarm<" in inline and "alarm (1 in this period)" in inline
    assert "high limit 38 C" in inline and "low limit 36 C" in inline
    end = utcnow()
    svg = client.get(f"/equipment/{asset.id}/chart.svg",
                     query_string={"tag": tag.id, "start": (end - timedelta(hours=1)).isoformat(),
                                   "end": end.isoformat()})
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    body = svg.get_data(as_text=True)
    assert "<polygon" in body and ">alarm<" in body and "alarm (1 in this period)" in body


def test_acknowledge_from_the_page_and_refusal_without_comment(client, login, make_user, db_session, make_asset,
                                                               make_tag):
    asset, _tag = _alarmed_asset(db_session, make_asset, make_tag)
    alarm_id = db_session.execute(select(Alarm.id).where(Alarm.asset_id == asset.id)).scalar_one()
    login(make_user("operator"))
    refused = client.post(f"/equipment/alarms/{alarm_id}/acknowledge", data={"comment": ""})
    assert refused.status_code == 422 and "comment" in refused.get_data(as_text=True).lower()
    assert db.session.get(Alarm, alarm_id).acknowledged_at is None
    done = client.post(f"/equipment/alarms/{alarm_id}/acknowledge", data={"comment": "checked, door closed"})
    assert done.status_code == 302
    alarm = db.session.get(Alarm, alarm_id)
    assert alarm.state == "acknowledged" and alarm.ack_comment == "checked, door closed"


def test_roles_without_permission_are_refused(client, login, make_user, db_session, make_asset):
    asset = make_asset("LN2-FRZ-01", asset_type="ln2_freezer")
    login(make_user("clinician"))
    assert client.get("/equipment/").status_code == 403
    client.post("/logout")
    login(make_user("operator"))
    assert client.post(f"/equipment/{asset.id}/status", data={"status": "cleaning", "reason": "x"}).status_code == 403


def test_register_asset_form_reports_errors_and_saves_nothing(client, login, make_user, db_session):
    login(make_user("admin"))
    response = client.post("/equipment/new", data={"code": "?", "name": "", "asset_type": "", "location": ""})
    assert response.status_code == 422
    assert "Please correct" in response.get_data(as_text=True)
    assert db.session.execute(select(Asset)).first() is None


def test_api_assets_samples_alarms_and_gaps(client, make_user, api_headers, db_session, make_asset, make_tag):
    asset, tag = _alarmed_asset(db_session, make_asset, make_tag)
    headers = api_headers(make_user("qa"))
    assets = client.get("/api/v1/equipment/assets", headers=headers).get_json()
    assert [a["code"] for a in assets] == ["CO2-INC-01"]
    end = utcnow()
    window = {"start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()}
    points = client.get(f"/api/v1/equipment/tags/{tag.id}/samples", headers=headers,
                        query_string={**window, "max_points": 50}).get_json()
    assert 0 < len(points) <= 50 and sum(p["count"] for p in points) == 90
    alarms = client.get(f"/api/v1/equipment/assets/{asset.id}/alarms", headers=headers, query_string=window).get_json()
    assert [a["parameter"] for a in alarms] == ["Temperature"]
    assert client.get(f"/api/v1/equipment/assets/{asset.id}/gaps", headers=headers,
                      query_string=window).get_json() == []
    bad = client.get(f"/api/v1/equipment/tags/{tag.id}/samples", headers=headers,
                     query_string={"start": "yesterday", "end": window["end"]})
    assert bad.status_code == 422
    usable = client.get(f"/api/v1/equipment/assets/{asset.id}/usability", headers=headers).get_json()
    assert usable == {"usable": True, "reason": None}


@pytest.fixture(scope="module")
def browse_server():
    sim = Simulator(port=free_port(), update_interval=3600, door_openings=False,
                    equipment=[("BR-ROCK-09", "rocking_bioreactor", "Rocker",
                                [Signal("BR-ROCK-09", "pH", "", 7.2, 0.0, low=7.0, high=7.4)])])
    sim.start_in_thread()
    yield sim
    sim.stop_thread()


def test_browse_a_live_endpoint_and_pick_a_variable(client, login, make_user, db_session, make_asset, browse_server):
    asset = make_asset("BR-ROCK-09", asset_type="rocking_bioreactor", endpoint_url=browse_server.endpoint)
    login(make_user("admin"))
    top = client.get(f"/equipment/{asset.id}/browse").get_data(as_text=True)
    assert "BR-ROCK-09" in top and "ns=2;s=BR-ROCK-09" in top
    inside = client.get(f"/equipment/{asset.id}/browse", query_string={"node": "ns=2;s=BR-ROCK-09"})
    text = inside.get_data(as_text=True)
    assert "ns=2;s=BR-ROCK-09.pH" in text and "7.2" in text and "Add as tag" in text
    added = client.post(f"/equipment/{asset.id}/tags", data={"node_id": "ns=2;s=BR-ROCK-09.pH", "parameter": "pH"})
    assert added.status_code == 302
    assert [t.node_id for t in db.session.execute(select(Tag).where(Tag.asset_id == asset.id)).scalars()] == \
        ["ns=2;s=BR-ROCK-09.pH"]


def test_api_registers_equipment_and_refuses_bad_input(client, make_user, api_headers, db_session):
    headers = api_headers(make_user("admin"))
    created = client.post("/api/v1/equipment/assets", headers=headers, json={
        "code": "cfg-02", "name": "Centrifuge 2", "asset_type": "centrifuge", "location": "B2"})
    assert created.status_code == 201 and created.get_json()["code"] == "CFG-02"
    assert created.get_json()["status"] == "available"
    refused = client.post("/api/v1/equipment/assets", headers=headers, json={
        "code": "CFG-03", "name": "x", "asset_type": "toaster", "location": "B2"})
    assert refused.status_code == 422 and "asset_type" in refused.get_json()["errors"]
    duplicate = client.post("/api/v1/equipment/assets", headers=headers, json={
        "code": "CFG-02", "name": "again", "asset_type": "centrifuge", "location": "B2"})
    assert duplicate.status_code == 409
    operator = api_headers(make_user("operator"))
    assert client.post("/api/v1/equipment/assets", headers=operator, json={
        "code": "CFG-04", "name": "x", "asset_type": "centrifuge", "location": "B2"}).status_code == 403
    codes = [a["code"] for a in client.get("/api/v1/equipment/assets", headers=headers).get_json()]
    assert codes == ["CFG-02"]


def test_connection_change_needs_a_reason_and_keeps_the_password(client, login, make_user, db_session, make_asset):
    from equipment.opcua.security import password_for

    asset = make_asset("SBR-02", asset_type="stirred_bioreactor", endpoint_url="opc.tcp://10.0.0.7:4840",
                       opc_username="mes", opc_password="first-secret")
    login(make_user("admin"))
    assert "Save connection" in client.get(f"/equipment/{asset.id}").get_data(as_text=True)
    form = {"endpoint_url": "opc.tcp://10.0.0.8:4840", "security_policy": "Basic256Sha256",
            "security_mode": "Sign", "opc_username": "mes", "opc_password": ""}
    refused = client.post(f"/equipment/{asset.id}/connection", data={**form, "reason": ""})
    assert refused.status_code == 422
    assert db.session.get(Asset, asset.id).endpoint_url == "opc.tcp://10.0.0.7:4840"
    saved = client.post(f"/equipment/{asset.id}/connection", data={**form, "reason": "moved to new VLAN"})
    assert saved.status_code == 302
    stored = db.session.get(Asset, asset.id)
    assert (stored.endpoint_url, stored.security_mode) == ("opc.tcp://10.0.0.8:4840", "Sign")
    assert password_for("SBR-02", stored.opc_password_encrypted) == "first-secret"


def test_over_long_text_is_refused_with_422_on_every_form_and_the_api(client, login, make_user, api_headers,
                                                                      db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-05")
    tag = make_tag(asset)
    long = "x" * 5000
    login(make_user("admin", "supervisor"))
    posts = [
        ("/equipment/new", {"code": "AB-1", "name": long, "asset_type": "centrifuge", "location": "B"}),
        (f"/equipment/{asset.id}/service", {"kind": "calibration", "performed_on": "2020-01-01",
                                            "due_on": "2030-01-01", "result": "pass", "performed_by": long}),
        (f"/equipment/{asset.id}/connection", {"opc_username": long, "reason": "new user"}),
        (f"/equipment/{asset.id}/tags", {"node_id": "ns=2;s=X", "parameter": "P", "unit": long}),
        (f"/equipment/tags/{tag.id}", {"node_id": tag.node_id, "parameter": long, "reason": "rename"}),
    ]
    for url, data in posts:
        response = client.post(url, data=data)
        assert response.status_code == 422, (url, response.status_code)
        assert "At most" in response.get_data(as_text=True)
    client.post("/logout")
    headers = api_headers(make_user("admin"))
    refused = client.post("/api/v1/equipment/assets", headers=headers, json={
        "code": "AP-1", "name": "n", "asset_type": "centrifuge", "location": "B",
        "endpoint_url": "opc.tcp://h/" + long})
    assert refused.status_code == 422 and "endpoint_url" in refused.get_json()["errors"]
    refused = client.post(f"/api/v1/equipment/assets/{asset.id}/tags", headers=headers,
                          json={"node_id": "ns=2;s=Q", "parameter": long})
    assert refused.status_code == 422 and "parameter" in refused.get_json()["errors"]
    assert db.session.execute(select(Asset.code)).scalars().all() == ["CO2-INC-05"]
    assert [t.parameter for t in db.session.execute(select(Tag)).scalars()] == ["Temperature"]


@pytest.mark.parametrize("query", [
    {"start": "0001-01-01T00:00:00+14:00", "end": "9999-12-31T23:59:59-12:00"},
    {"start": "2026-02-30", "end": "2026-03-02"},
    {"start": "9999-12-31T23:00", "end": "9999-12-31T23:59"},
])
def test_asset_page_and_chart_fall_back_to_a_default_window_for_dates_out_of_range(
        client, login, make_user, db_session, make_asset, make_tag, query):
    asset = make_asset("CO2-INC-06")
    tag = make_tag(asset)
    login(make_user("operator"))
    assert client.get(f"/equipment/{asset.id}", query_string=query).status_code == 200
    chart = client.get(f"/equipment/{asset.id}/chart.svg", query_string={"tag": tag.id, **query})
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    for start, end in [("0001-01-01T00:00:00+05:00", "0001-01-02T00:00:00+00:00"),
                       ("9999-12-31T00:00:00+00:00", "9999-12-31T23:59:59.999999-05:00")]:
        chart = client.get(f"/equipment/{asset.id}/chart.svg", query_string={"tag": tag.id, "start": start, "end": end})
        assert chart.status_code == 200 and "No data in this period" in chart.get_data(as_text=True)


def test_shelve_from_the_page_shows_the_time_in_the_site_zone(client, login, make_user, db_session, make_asset,
                                                              make_tag):
    asset, _tag = _alarmed_asset(db_session, make_asset, make_tag)
    alarm_id = db_session.execute(select(Alarm.id).where(Alarm.asset_id == asset.id)).scalar_one()
    login(make_user("operator"))
    refused = client.post(f"/equipment/alarms/{alarm_id}/shelve", data={"minutes": "abc", "reason": "probe"})
    assert refused.status_code == 422 and db.session.get(Alarm, alarm_id).shelved_until is None
    done = client.post(f"/equipment/alarms/{alarm_id}/shelve", data={"minutes": "30", "reason": "sensor swap"},
                       follow_redirects=True)
    assert done.status_code == 200
    alarm = db.session.get(Alarm, alarm_id)
    assert alarm.is_shelved() and alarm.shelve_reason == "sensor swap"
    assert f"shelved until {alarm.shelved_until:%H:%M} UTC" in done.get_data(as_text=True)  # SITE_TIMEZONE=UTC


ABSURD_TAG_SETTINGS = [
    ({"deadband": "1e300"}, "deadband", "Between 0 and 100"),
    ({"on_delay_s": str(3 * 365 * 86400)}, "on_delay_s", "Between 0 and 3600 seconds"),
    ({"off_delay_s": "3601"}, "off_delay_s", "Between 0 and 3600 seconds"),
    ({"high_limit": "1e12"}, "high_limit", "Between -1,000,000 and 1,000,000"),
    ({"low_limit": "-1e7"}, "low_limit", "Between -1,000,000 and 1,000,000"),
    ({"deadband": "2.5"}, "deadband", "narrower than the band between the limits (2)"),
]


@pytest.mark.parametrize("setting, field_name, message", ABSURD_TAG_SETTINGS)
def test_absurd_tag_settings_are_refused_on_the_form_and_the_api(client, login, make_user, api_headers, db_session,
                                                                 make_asset, make_tag, setting, field_name, message):
    asset = make_asset("CO2-INC-07")
    tag = make_tag(asset, on_delay_s=600, off_delay_s=30, deadband=0.2)
    form = {"node_id": tag.node_id, "parameter": "Temperature", "unit": "C", "low_limit": "36", "high_limit": "38",
            "on_delay_s": "600", "off_delay_s": "30", "deadband": "0.2", "active": "on", "reason": "URS revision 4"}
    login(make_user("admin"))
    refused = client.post(f"/equipment/tags/{tag.id}", data={**form, **setting})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and message in page
    assert setting[field_name] in page  # the form comes back with what was typed
    stored = db.session.get(Tag, tag.id)
    assert (stored.low_limit, stored.high_limit, stored.on_delay_s, stored.off_delay_s, stored.deadband) == \
        (36.0, 38.0, 600.0, 30.0, 0.2)
    refused = client.post(f"/equipment/{asset.id}/tags", data={**form, "node_id": "ns=2;s=CO2-INC-07.CO2",
                                                               "parameter": "CO2", **setting})
    assert refused.status_code == 422 and message in refused.get_data(as_text=True)
    client.post("/logout")
    body = {"node_id": "ns=2;s=CO2-INC-07.CO2", "parameter": "CO2", "unit": "%", "low_limit": 36.0,
            "high_limit": 38.0, **{key: float(value) for key, value in setting.items()}}
    refused = client.post(f"/api/v1/equipment/assets/{asset.id}/tags", headers=api_headers(make_user("admin")),
                          json=body)
    assert refused.status_code == 422
    assert any(message in text for text in refused.get_json()["errors"][field_name])
    assert [t.parameter for t in db.session.execute(select(Tag).where(Tag.asset_id == asset.id)).scalars()] == \
        ["Temperature"]


def test_settings_at_the_bounds_are_accepted(client, make_user, api_headers, db_session, make_asset):
    asset = make_asset("LN2-FRZ-02", asset_type="ln2_freezer")
    created = client.post(f"/api/v1/equipment/assets/{asset.id}/tags", headers=api_headers(make_user("admin")),
                          json={"node_id": "ns=2;s=LN2-FRZ-02.Temperature", "parameter": "Temperature", "unit": "C",
                                "high_limit": -150.0, "on_delay_s": 3600, "off_delay_s": 0, "deadband": 100})
    assert created.status_code == 201
    assert (created.get_json()["on_delay_s"], created.get_json()["deadband"]) == (3600.0, 100.0)


def test_unshelve_from_the_page_needs_the_permission_and_a_reason(client, login, make_user, db_session, make_asset,
                                                                  make_tag):
    asset, _tag = _alarmed_asset(db_session, make_asset, make_tag)
    alarm = db_session.execute(select(Alarm).where(Alarm.asset_id == asset.id)).scalar_one()
    ops.shelve_alarm(db_session, alarm, "60", "sensor swap")
    db_session.commit()
    alarm_id = alarm.id
    login(make_user("qc_analyst"))
    page = client.get(f"/equipment/{asset.id}").get_data(as_text=True)
    assert "Shelved alarms" in page and "sensor swap" in page and "Unshelve" not in page  # may see, may not act
    assert client.post(f"/equipment/alarms/{alarm_id}/unshelve", data={"reason": "done"}).status_code == 403
    client.post("/logout")
    login(make_user("operator"))
    page = client.get(f"/equipment/{asset.id}").get_data(as_text=True)
    assert f"/equipment/alarms/{alarm_id}/unshelve" in page and "Unshelve" in page
    refused = client.post(f"/equipment/alarms/{alarm_id}/unshelve", data={"reason": "  "})
    assert refused.status_code == 422 and "reason for unshelving" in refused.get_data(as_text=True)
    assert db.session.get(Alarm, alarm_id).is_shelved()
    done = client.post(f"/equipment/alarms/{alarm_id}/unshelve", data={"reason": "sensor replaced early"},
                       follow_redirects=True)
    assert done.status_code == 200 and "back on the active list" in done.get_data(as_text=True)
    assert not db.session.get(Alarm, alarm_id).is_shelved()
    page = done.get_data(as_text=True)
    assert "Shelved alarms" not in page and "Alarms needing attention" in page
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.table_name == "equipment_alarm",
                                                        AuditEntry.record_id == str(alarm_id))
                               .order_by(AuditEntry.id.desc())).scalars().first()
    assert entry.reason == "alarm unshelved: sensor replaced early" and entry.actor_username.startswith("operator")
    again = client.post(f"/equipment/alarms/{alarm_id}/unshelve", data={"reason": "again"})
    assert again.status_code == 409


def test_refused_telemetry_is_counted_on_the_equipment_pages(client, login, make_user, db_session, make_asset):
    asset = make_asset("CO2-INC-08")
    with acting_as(Actor(None, "collector")):
        for _ in range(2):
            record_event(db_session, "equipment_asset", str(asset.id), REJECTED_ACTION,
                         {"error": [None, "OverflowError: too large"]}, reason="kept in the collector's spool")
    db_session.commit()
    login(make_user("operator"))
    page = client.get(f"/equipment/{asset.id}").get_data(as_text=True)
    assert "2 telemetry values were refused by the database" in page and "OverflowError: too large" in page
    assert "2 values not stored" in client.get("/equipment/").get_data(as_text=True)


def test_asset_page_says_out_of_limits_during_the_on_delay_heartbeat_clock_offset_and_intervals(
        client, login, make_user, db_session, make_asset, make_tag):
    from equipment.telemetry import Heartbeat, SubscriptionRevision

    asset = make_asset("CO2-INC-07")
    tag = make_tag(asset, on_delay_s=120)
    now = to_us(utcnow())
    state = IngestState()
    state.load(db_session)
    ingest(db_session, [SampleIn(tag.id, now - 30_000_000, None, 39.4, 0),
                        SubscriptionRevision(tag.id, now - 40_000_000, 0.0, 1000.0, 500.0, 500.0),
                        Heartbeat(asset.id, now - 1_000_000, now - 1_000_000 + 5_500_000)], state)
    db_session.commit()
    login(make_user("operator"))
    page = client.get(f"/equipment/{asset.id}").get_data(as_text=True)
    assert "Out of limits: above the high limit 38 C; alarm if it lasts 120 s" in page
    assert "unchanged since" in page and "connection alive at" in page
    assert "clock differs from the collector&#39;s by 5.5 s" in page or "clock differs from the collector's by 5.5 s" in page
    assert "0 → 1000 ms / 500 → 500 ms" in page
    assert db_session.execute(select(Alarm).where(Alarm.tag_id == tag.id)).first() is None  # on-delay still running


def test_api_browses_a_live_endpoint(client, make_user, api_headers, db_session, make_asset, make_tag,
                                     browse_server):
    asset = make_asset("BR-ROCK-10", asset_type="rocking_bioreactor", endpoint_url=browse_server.endpoint)
    make_tag(asset, "pH", 7.0, 7.4, unit="", node_id="ns=2;s=BR-ROCK-09.pH")
    headers = api_headers(make_user("admin"))
    top = client.get(f"/api/v1/equipment/assets/{asset.id}/browse", headers=headers)
    assert top.status_code == 200 and "ns=2;s=BR-ROCK-09" in [n["node_id"] for n in top.get_json()]
    inside = client.get(f"/api/v1/equipment/assets/{asset.id}/browse", headers=headers,
                        query_string={"node": "ns=2;s=BR-ROCK-09"}).get_json()
    [ph] = [n for n in inside if n["node_id"] == "ns=2;s=BR-ROCK-09.pH"]
    assert ph["node_class"] == "Variable" and ph["value"] == 7.2 and ph["mapped"] is True
    bare = make_asset("BR-ROCK-11", asset_type="rocking_bioreactor")
    refused = client.get(f"/api/v1/equipment/assets/{bare.id}/browse", headers=headers)
    assert refused.status_code == 409 and "endpoint" in refused.get_json()["message"]
    assert client.get(f"/api/v1/equipment/assets/{asset.id}/browse",
                      headers=api_headers(make_user("operator"))).status_code == 403


def test_capacity_on_the_registration_form_and_the_asset_page_with_refusals(client, login, make_user, db_session,
                                                                           make_asset):
    login(make_user("admin"))
    form = client.get("/equipment/new").get_data(as_text=True)
    assert 'name="capacity"' in form and 'inputmode="numeric"' in form
    base = {"name": "Incubator", "location": "B2", "security_policy": "None", "security_mode": "None"}
    refused = client.post("/equipment/new", data={**base, "code": "CFG-09", "asset_type": "centrifuge",
                                                  "capacity": "3"})
    assert refused.status_code == 422 and "holds one record at a time" in refused.get_data(as_text=True)
    refused = client.post("/equipment/new", data={**base, "code": "CO2-INC-31", "asset_type": "co2_incubator",
                                                  "capacity": "two"})
    assert refused.status_code == 422 and "A whole number from 1 to 100" in refused.get_data(as_text=True)
    assert db.session.execute(select(Asset)).first() is None
    saved = client.post("/equipment/new", data={**base, "code": "CO2-INC-31", "asset_type": "co2_incubator",
                                                "capacity": "3"})
    assert saved.status_code == 302
    incubator = db.session.execute(select(Asset).where(Asset.code == "CO2-INC-31")).scalar_one()
    assert incubator.capacity == 3
    today = utcnow().date()
    ops.record_service(db.session, incubator, kind="calibration", performed_on=today - timedelta(days=1),
                       due_on=today + timedelta(days=90), result="pass", performed_by="Metrology Ltd")
    for record_id in ("MSNK-0007", "MSNK-0008"):
        ops.start_usage(db.session, "CO2-INC-31", record_type="batch", record_id=record_id)
    db.session.commit()
    page = client.get(f"/equipment/{incubator.id}").get_data(as_text=True)
    assert "2 of 3 places in use" in page and "batch MSNK-0007" in page and "batch MSNK-0008" in page
    below = client.post(f"/equipment/{incubator.id}/capacity", data={"capacity": "1", "reason": "shelf broken"})
    text = below.get_data(as_text=True)
    assert below.status_code == 409 and "occupied by 2 records now" in text and "Below the records occupying" in text
    assert "2 of 3 places in use" in text  # the asset page again, with the refusal on it
    no_reason = client.post(f"/equipment/{incubator.id}/capacity", data={"capacity": "4", "reason": ""})
    assert no_reason.status_code == 422
    assert db.session.get(Asset, incubator.id).capacity == 3
    changed = client.post(f"/equipment/{incubator.id}/capacity", data={"capacity": "2", "reason": "one shelf out"})
    assert changed.status_code == 302
    assert db.session.get(Asset, incubator.id).capacity == 2
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.table_name == "equipment_asset",
                                                        AuditEntry.record_id == str(incubator.id),
                                                        AuditEntry.reason == "one shelf out")).scalar_one()
    assert json.loads(entry.changes)["capacity"] == [3, 2]
    cabinet = make_asset("BSC-31", asset_type="biosafety_cabinet")
    refused = client.post(f"/equipment/{cabinet.id}/capacity", data={"capacity": "2", "reason": "two at once"})
    assert refused.status_code == 422 and "holds one record at a time" in refused.get_data(as_text=True)
    assert db.session.get(Asset, cabinet.id).capacity == 1
    client.post("/logout")
    login(make_user("operator"))
    assert client.post(f"/equipment/{incubator.id}/capacity", data={"capacity": "3", "reason": "x"}).status_code == 403


def test_reloading_a_refused_capacity_change_leads_back_to_the_asset_page(client, login, make_user, make_asset):
    asset = make_asset("CO2-INC-32", capacity=2)
    login(make_user("admin"))
    again = client.get(f"/equipment/{asset.id}/capacity")
    assert again.status_code == 302 and again.headers["Location"].endswith(f"/equipment/{asset.id}#capacity")
