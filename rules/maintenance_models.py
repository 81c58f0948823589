"""The tables of elevator maintenance visits (rules.maintenance_visits): the visits, each elevator's 15-day schedule,
and the technicians' card reads a visit's technician is told from.

The migrations' schema module imports every table module, so these are part of the metadata the schema is compared
with.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from facmon.kernel.db import Base, Id


class VisitSource(StrEnum):
    # The car left inspection mode after long enough in it (rules.maintenance.ended_inspection).
    INSPECTION_MODE = "inspection_mode"
    # Entered by hand through the API.
    API = "api"


class MaintenanceVisit(Base):
    """One maintenance visit (半月保养) of one elevator: when, who, and how we know."""

    __tablename__ = "maintenance_visits"
    __table_args__ = (
        CheckConstraint("source IN ('inspection_mode', 'api')", name="source"),
        CheckConstraint("ended_at >= started_at", name="period"),
        Index("ix_maintenance_visits_site_device_started_at", "site", "device", "started_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    # The technician id of the site file: the one whose card was last granted at the site within the hour before
    # the start, or the one named through the API; NULL when nobody is known.
    technician: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    # Who recorded it through the API (the principal); NULL for visits seen from the site.
    actor: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(2000))
    # The status event that ended the inspection; unique, so a redelivered event records nothing twice.
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    recorded_at: Mapped[datetime]


class MaintenanceSchedule(Base):
    """Per elevator: when it was last visited and which overdue period already opened a work order.

    An elevator is scheduled from when the rules worker first sees it in a site file (`since`), or from its first
    recorded visit. `overdue_base_at` is the last visit (or `since`) the open overdue work order was counted from:
    a visit after it satisfies that work order.
    """

    __tablename__ = "maintenance_schedule"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    building: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[datetime]
    last_visit_at: Mapped[datetime | None]
    overdue_due_at: Mapped[datetime | None]
    overdue_base_at: Mapped[datetime | None]


class TechnicianCardRead(Base):
    """A granted read of a registered technician's card at one of the estate's readers (residents' reads are not
    kept): who was on the estate when an inspection began."""

    __tablename__ = "technician_card_reads"
    __table_args__ = (Index("ix_technician_card_reads_site_at", "site", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    site: Mapped[str] = mapped_column(String(64))
    technician: Mapped[str] = mapped_column(String(64))
    reader: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
