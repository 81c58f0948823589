"""Fire points: each fire panel's commissioned point table (listed in the site file, or reported by the panel), what
the panel last said of each point, and who decommissioned one, when and why.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09

A new table only. A database upgraded from 0011 starts it empty: the rules worker fills it from the site files when
it starts and from the panels' readings as they come (every point a panel knows is reported at least once a minute).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Utc

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "fire_points",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("point", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("first_seen_at", Utc, nullable=False),
        sa.Column("reported_at", Utc, nullable=True),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("intact", sa.Boolean(), nullable=True),
        sa.Column("state_since", Utc, nullable=True),
        sa.Column("heard_at", Utc, nullable=True),
        sa.Column("decommissioned_at", Utc, nullable=True),
        sa.Column("decommissioned_by", sa.String(128), nullable=True),
        sa.Column("decommission_reason", sa.String(500), nullable=True),
        sa.CheckConstraint("source IN ('site_file', 'reported')", name=op.f("ck_fire_points_source")),
        sa.PrimaryKeyConstraint("site", "device", "point", name=op.f("pk_fire_points")),
    )


def downgrade() -> None:
    op.drop_table("fire_points")
