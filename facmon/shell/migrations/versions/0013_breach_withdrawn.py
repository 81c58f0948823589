"""Breaches withdrawn: a clock's `breach_withdrawn_at`, set when arrival evidence processed late proves the clock met
in time after its breach was recorded (the breach's `breached_at` is cleared then).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Utc

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

WITHDRAWN = "breach_withdrawn_at IS NOT NULL"


def upgrade() -> None:
    op.add_column("work_order_clocks", sa.Column("breach_withdrawn_at", Utc, nullable=True))
    op.create_index(
        "ix_work_order_clocks_withdrawn",
        "work_order_clocks",
        ["work_order_id"],
        sqlite_where=sa.text(WITHDRAWN),
        postgresql_where=sa.text(WITHDRAWN),
    )


def downgrade() -> None:
    op.drop_index("ix_work_order_clocks_withdrawn", table_name="work_order_clocks")
    with op.batch_alter_table("work_order_clocks") as batch:
        batch.drop_column("breach_withdrawn_at")
