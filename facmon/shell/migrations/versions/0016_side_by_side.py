"""Several rules workers side by side: the latest clear of each fault of a device (a raise processed after a newer
clear records its fault as cleared), the time of each aspect of a device's state (the newest event about it decides
it, in whatever order events are applied), and leases of the tasks one worker of many does.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Utc

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("device_state") as batch:
        batch.add_column(sa.Column("seen", sa.JSON(), nullable=True))
    op.create_table(
        "fault_clears",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("fault", sa.String(64), nullable=False),
        sa.Column("cleared_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("site", "device", "fault", name=op.f("pk_fault_clears")),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("fault_clears")
    with op.batch_alter_table("device_state") as batch:
        batch.drop_column("seen")
