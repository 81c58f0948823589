"""Arrival evidence kept: technicians' granted card reads and elevators' switches to inspection, kept for a window so
a work order that opens after them, for a fault detected before them, is put on site at their time.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "arrival_evidence",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("at", Utc, nullable=False),
        sa.Column("recorded_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrival_evidence")),
        sa.UniqueConstraint("event_id", name=op.f("uq_arrival_evidence_event_id")),
    )
    op.create_index("ix_arrival_evidence_site_at", "arrival_evidence", ["site", "at"])
    op.create_index("ix_arrival_evidence_at", "arrival_evidence", ["at"])


def downgrade() -> None:
    op.drop_index("ix_arrival_evidence_at", table_name="arrival_evidence")
    op.drop_index("ix_arrival_evidence_site_at", table_name="arrival_evidence")
    op.drop_table("arrival_evidence")
