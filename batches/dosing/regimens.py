"""Dosing regimens as data: drafts, new versions, review and QA approval (the shared lifecycle of
batches/lifecycle.py), and the shipped default regimens installed as approved.

Operations flush and never commit.
"""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import current_actor
from app.db import utcnow
from app.errors import ValidationFailed
from batches import lifecycle
from batches.dosing.models import PROTOCOLS, DosingRegimen

REGIMEN_DATA_DIR = Path(__file__).parent / "regimen_data"
SEED_REGIMEN_FILES = ("msnk.toml", "nkg2d_car_nk.toml")
NUMBER_FIELDS = ("dose_per_kg", "interval_days", "tolerance_minus_pct", "tolerance_plus_pct")
OPTIONAL_NUMBER_FIELDS = ("max_cd3_per_kg", "max_endotoxin_eu_per_kg", "ligand_window_hours")
NOUN = "dosing regimen"


def clean_regimen(data: dict[str, Any]) -> dict[str, Any]:
    """Check a regimen's fields; every problem is named in one message."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for key, max_len in (("code", 40), ("name", 200)):
        text = str(data.get(key) or "").strip()
        if not text or len(text) > max_len:
            problems.append(f"{key}: required, at most {max_len} characters")
        out[key] = text
    if data.get("protocol") not in PROTOCOLS:
        problems.append(f"protocol: one of {', '.join(PROTOCOLS)}")
    out["protocol"] = data.get("protocol")
    for key in NUMBER_FIELDS + OPTIONAL_NUMBER_FIELDS:
        value = data.get(key)
        if value is None or value == "":
            if key in NUMBER_FIELDS:
                problems.append(f"{key}: required")
            out[key] = None
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            problems.append(f"{key}: a number")
            continue
        if out[key] < 0 or (key in ("dose_per_kg", "ligand_window_hours") and out[key] == 0):
            problems.append(f"{key}: must be positive")
    try:
        out["infusions"] = int(data.get("infusions"))
        if out["infusions"] < 1:
            problems.append("infusions: at least 1")
    except (TypeError, ValueError):
        problems.append("infusions: a whole number")
    if out.get("tolerance_minus_pct") is not None and out["tolerance_minus_pct"] >= 100:
        problems.append("tolerance_minus_pct: below 100")
    out["ligand_window_source"] = (str(data.get("ligand_window_source") or "").strip() or None)
    if out.get("ligand_window_hours") and not out["ligand_window_source"]:
        problems.append("ligand_window_source: say where the ligand window comes from")
    if problems:
        raise ValidationFailed("The dosing regimen is not valid: " + "; ".join(problems) + ".")
    return out


def create_regimen_draft(sess: Session, data: dict[str, Any], *, source_name: str | None = None,
                         change_summary: str | None = None) -> DosingRegimen:
    """A new draft: version 1 of a new code, or the next version of an existing one."""
    fields = clean_regimen(data)
    regimen = DosingRegimen(**fields, version=lifecycle.next_version(sess, DosingRegimen, fields["code"]),
                            status="draft", source_name=source_name, change_summary=change_summary,
                            created_at=utcnow(), created_by=current_actor().username)
    sess.add(regimen)
    sess.flush()
    return regimen


def submit_regimen_for_review(sess: Session, regimen: DosingRegimen) -> DosingRegimen:
    return lifecycle.submit_for_review(sess, regimen, NOUN)


def return_regimen_to_draft(sess: Session, regimen: DosingRegimen, reason: str) -> DosingRegimen:
    return lifecycle.return_to_draft(sess, regimen, reason, NOUN)


def approve_regimen(sess: Session, regimen: DosingRegimen, **signature: Any) -> DosingRegimen:
    return lifecycle.approve(sess, regimen, noun=NOUN, **signature)


def list_regimens(sess: Session) -> list[DosingRegimen]:
    return list(sess.execute(select(DosingRegimen).order_by(DosingRegimen.code,
                                                            DosingRegimen.version.desc())).scalars())


def install_seed_regimens(sess: Session) -> list[DosingRegimen]:
    """Install the shipped regimens as approved (idempotent); the approval note names the file and its SHA-256."""
    installed = []
    for file_name in SEED_REGIMEN_FILES:
        text = (REGIMEN_DATA_DIR / file_name).read_text(encoding="utf-8")
        data = tomllib.loads(text)
        if sess.execute(select(DosingRegimen.id).where(DosingRegimen.code == data["code"])).first():
            continue
        regimen = create_regimen_draft(sess, data, source_name=file_name)
        regimen.status = "approved"
        regimen.approved_at = utcnow()
        regimen.approved_by = current_actor().username
        regimen.approval_note = (f"Installed as approved from the shipped, change-controlled file {file_name} "
                                 f"(sha256 {hashlib.sha256(text.encode()).hexdigest()}).")
        installed.append(regimen)
    sess.flush()
    return installed
