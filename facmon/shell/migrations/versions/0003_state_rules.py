"""Rule state: each device's last known state, pending hold timers, and grouped work orders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    _add_service_mode()
    _create_rule_state()


def downgrade() -> None:
    _drop_rule_state()
    _drop_service_mode()


# State rules (rules.state_rules): each device's last known state, pending holds, the watermark of window checks and
# the devices linked to a grouped work order. New tables only: the state fills from the next events, so a device that
# is down while the upgrade runs is seen as down from its next event, not from a guessed past.
def _create_rule_state() -> None:
    op.create_table(
        "device_state",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("service_mode", sa.String(32), nullable=True),
        sa.Column("power_source", sa.String(16), nullable=True),
        sa.Column("comm", sa.String(8), nullable=False),
        sa.Column("faults", sa.JSON(), nullable=False),
        sa.Column("updated_at", Utc, nullable=True),
        sa.CheckConstraint("comm IN ('ok', 'lost')", name=op.f("ck_device_state_comm")),
        sa.PrimaryKeyConstraint("site", "device", name=op.f("pk_device_state")),
    )
    op.create_index(op.f("ix_device_state_site_building"), "device_state", ["site", "building"])
    op.create_table(
        "rule_holds",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("detected_at", Utc, nullable=False),
        sa.Column("due_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("site", "device", "rule_id", name=op.f("pk_rule_holds")),
    )
    op.create_index(op.f("ix_rule_holds_due_at"), "rule_holds", ["due_at"])
    op.create_table(
        "rule_watermarks",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rule_watermarks")),
    )
    op.create_table(
        "work_order_members",
        sa.Column("work_order_id", Id, nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("detected_at", Utc, nullable=False),
        sa.Column("linked_at", Utc, nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_members_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("work_order_id", "device", name=op.f("pk_work_order_members")),
    )


def _drop_rule_state() -> None:
    op.drop_table("work_order_members")
    op.drop_table("rule_watermarks")
    op.drop_index(op.f("ix_rule_holds_due_at"), table_name="rule_holds")
    op.drop_table("rule_holds")
    op.drop_index(op.f("ix_device_state_site_building"), table_name="device_state")
    op.drop_table("device_state")


# Arrival proof (rules.arrival): the elevator's service mode from its last service-mode status event, so that fault
# suppression during inspection survives a restart of the rules worker. NULL: no service-mode event seen yet.
def _add_service_mode() -> None:
    op.add_column("device_status", sa.Column("service_mode", sa.String(32), nullable=True))
    op.add_column("device_status", sa.Column("service_mode_at", sa.DateTime(timezone=True), nullable=True))


def _drop_service_mode() -> None:
    with op.batch_alter_table("device_status") as batch:
        batch.drop_column("service_mode_at")
        batch.drop_column("service_mode")
