"""A signable GMP record used only by the core's tests; its table lives in a separate metadata and is
created inside each test's rolled-back transaction, so the real schema is untouched."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.audit import Audited, Voidable
from app.db import NAMING_CONVENTION, UTCDateTime
from app.signatures import Signable


class SampleBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class SampleRecord(Audited, Voidable, Signable, SampleBase):
    """A step-like record: name and value are signed content, status is workflow."""

    __tablename__ = "test_sample_record"
    __unsigned_fields__ = frozenset({"status"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    value: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default="open")
