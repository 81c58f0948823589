"""Fire alarms are alerted too: deliveries may be about a fire alarm instead of a work order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

Fire alarms recorded before this revision count as alerted (their moment has passed): only new ones are sent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("fire_alarms", sa.Column("alerted_at", Utc, nullable=True))
    op.execute("UPDATE fire_alarms SET alerted_at = created_at")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("work_order_id", existing_type=Id, nullable=True)
        batch.add_column(sa.Column("fire_alarm_id", Id, nullable=True))
        batch.create_foreign_key(
            op.f("fk_deliveries_fire_alarm_id_fire_alarms"),
            "fire_alarms",
            ["fire_alarm_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_deliveries_fire_alarm_id"), ["fire_alarm_id"])


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE work_order_id IS NULL")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index(op.f("ix_deliveries_fire_alarm_id"))
        batch.drop_constraint(op.f("fk_deliveries_fire_alarm_id_fire_alarms"), type_="foreignkey")
        batch.drop_column("fire_alarm_id")
        batch.alter_column("work_order_id", existing_type=Id, nullable=False)
    with op.batch_alter_table("fire_alarms") as batch:
        batch.drop_column("alerted_at")
