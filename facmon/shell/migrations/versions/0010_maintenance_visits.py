"""Maintenance visits: elevator maintenance visits (from inspection mode or entered by hand), each elevator's 15-day
schedule, and the technicians' card reads a visit's technician is told from.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_visits",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("started_at", Utc, nullable=False),
        sa.Column("ended_at", Utc, nullable=False),
        sa.Column("technician", sa.String(64), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("recorded_at", Utc, nullable=False),
        sa.CheckConstraint("source IN ('inspection_mode', 'api')", name=op.f("ck_maintenance_visits_source")),
        sa.CheckConstraint("ended_at >= started_at", name=op.f("ck_maintenance_visits_period")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_visits")),
        sa.UniqueConstraint("event_id", name=op.f("uq_maintenance_visits_event_id")),
    )
    op.create_index(
        "ix_maintenance_visits_site_device_started_at", "maintenance_visits", ["site", "device", "started_at"]
    )
    op.create_table(
        "maintenance_schedule",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=True),
        sa.Column("since", Utc, nullable=False),
        sa.Column("last_visit_at", Utc, nullable=True),
        sa.Column("overdue_due_at", Utc, nullable=True),
        sa.Column("overdue_base_at", Utc, nullable=True),
        sa.PrimaryKeyConstraint("site", "device", name=op.f("pk_maintenance_schedule")),
    )
    op.create_table(
        "technician_card_reads",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("technician", sa.String(64), nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_technician_card_reads")),
        sa.UniqueConstraint("event_id", name=op.f("uq_technician_card_reads_event_id")),
    )
    op.create_index("ix_technician_card_reads_site_at", "technician_card_reads", ["site", "at"])


def downgrade() -> None:
    op.drop_index("ix_technician_card_reads_site_at", table_name="technician_card_reads")
    op.drop_table("technician_card_reads")
    op.drop_table("maintenance_schedule")
    op.drop_index("ix_maintenance_visits_site_device_started_at", table_name="maintenance_visits")
    op.drop_table("maintenance_visits")
