"""Notifications: the escalation steps carried out per work order, and the delivery queue and log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

New tables only: work orders open when the upgrade runs get their due steps from the first dispatcher tick after.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

PENDING = "delivered_at IS NULL AND failed_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "notification_steps",
        sa.Column("work_order_id", Id, nullable=False),
        sa.Column("step", sa.String(48), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("message", sa.String(200), nullable=True),
        sa.Column("at", Utc, nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_notification_steps_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("work_order_id", "step", name=op.f("pk_notification_steps")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(240), nullable=False),
        sa.Column("message", sa.String(200), nullable=False),
        sa.Column("work_order_id", Id, nullable=False),
        sa.Column("recipient_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Utc, nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("delivered_at", Utc, nullable=True),
        sa.Column("failed_at", Utc, nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_deliveries_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("key", name=op.f("uq_deliveries_key")),
    )
    op.create_index(op.f("ix_deliveries_work_order_id"), "deliveries", ["work_order_id"])
    op.create_index(op.f("ix_deliveries_recipient_created_at"), "deliveries", ["recipient_id", "created_at"])
    op.create_index(
        op.f("ix_deliveries_pending"),
        "deliveries",
        ["next_attempt_at"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_pending"), table_name="deliveries")
    op.drop_index(op.f("ix_deliveries_recipient_created_at"), table_name="deliveries")
    op.drop_index(op.f("ix_deliveries_work_order_id"), table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("notification_steps")
