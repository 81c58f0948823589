"""Device comm since: when a device's comm status was last set (its first answer since the gateway started, a loss
or a restore). Rows whose last event was a comm event take that event's time.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Utc

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("device_status", sa.Column("comm_since", Utc, nullable=True))
    op.execute(
        "UPDATE device_status SET comm_since = last_event_at WHERE last_event_type IN ('comm_lost', 'comm_restored')"
    )


def downgrade() -> None:
    with op.batch_alter_table("device_status") as batch:
        batch.drop_column("comm_since")
