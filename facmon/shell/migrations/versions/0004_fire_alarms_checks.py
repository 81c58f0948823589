"""Fire alarms (the emergency path, apart from work orders) and GB 25201 single-item checks with their schedule.

Revision ID: 0004
Revises: 0003
Create Date: 2026-02-20

New tables only; nothing earlier changes. Panels enter the check schedule when the rules worker next hears of them,
so a database upgraded from 0003 starts every panel's first period at that moment rather than inventing an overdue
check from before the feature existed.

As in 0001 and 0002, names and predicates are spelled out here, not imported from the table modules.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "fire_alarms",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("point", sa.String(32), nullable=True),
        sa.Column("point_type", sa.String(64), nullable=True),
        sa.Column("raised_at", Utc, nullable=False),
        sa.Column("cleared_at", Utc, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_at", Utc, nullable=True),
        sa.Column("outcome_by", sa.String(128), nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("created_at", Utc, nullable=False),
        sa.CheckConstraint("outcome IN ('confirmed', 'false_alarm', 'unknown')", name=op.f("ck_fire_alarms_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fire_alarms")),
        sa.UniqueConstraint("event_id", name=op.f("uq_fire_alarms_event_id")),
    )
    op.create_index("ix_fire_alarms_site_raised_at", "fire_alarms", ["site", "raised_at"])

    op.create_table(
        "fire_checks",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("system", sa.String(48), nullable=True),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("at", Utc, nullable=False),
        sa.Column("recorded_at", Utc, nullable=False),
        sa.CheckConstraint("result IN ('passed', 'failed')", name=op.f("ck_fire_checks_result")),
        sa.CheckConstraint("(device IS NULL) <> (system IS NULL)", name=op.f("ck_fire_checks_subject")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fire_checks")),
    )
    op.create_index("ix_fire_checks_site_at", "fire_checks", ["site", "at"])

    op.create_table(
        "fire_check_schedule",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=True),
        sa.Column("since", Utc, nullable=False),
        sa.Column("last_check_at", Utc, nullable=True),
        sa.Column("overdue_due_at", Utc, nullable=True),
        sa.PrimaryKeyConstraint("site", "subject", name=op.f("pk_fire_check_schedule")),
    )


def downgrade() -> None:
    op.drop_table("fire_check_schedule")
    op.drop_index("ix_fire_checks_site_at", table_name="fire_checks")
    op.drop_table("fire_checks")
    op.drop_index("ix_fire_alarms_site_raised_at", table_name="fire_alarms")
    op.drop_table("fire_alarms")
