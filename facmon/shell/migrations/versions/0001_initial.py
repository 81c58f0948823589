"""Initial schema: work orders, their timeline, processed event ids, device status.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Types and predicates are spelled out here (the shared column types in facmon.shell.migrations.column_types, which
never change) rather than imported from the table modules, so this revision keeps meaning what it meant when later
revisions change the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

OPEN_WHERE_SQL = "status NOT IN ('resolved', 'closed', 'cancelled')"


def upgrade() -> None:
    _work_orders()
    _work_order_events()
    _processed_events()
    _device_status()


def _work_orders() -> None:
    """Work orders, one open per device and fault."""
    op.create_table(
        "work_orders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("fault", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detected_at", Utc, nullable=False),
        sa.Column("due_at", Utc, nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("last_occurrence_at", Utc, nullable=False),
        sa.Column("fault_cleared_at", Utc, nullable=True),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("updated_at", Utc, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'on_site', 'resolved', 'closed', 'cancelled')",
            name=op.f("ck_work_orders_status"),
        ),
        sa.CheckConstraint("priority IN ('emergency', 'urgent')", name=op.f("ck_work_orders_priority")),
        sa.CheckConstraint("occurrences >= 1", name=op.f("ck_work_orders_occurrences")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
    )
    op.create_index(
        "uq_work_orders_open_fault",
        "work_orders",
        ["site", "device", "fault"],
        unique=True,
        sqlite_where=sa.text(OPEN_WHERE_SQL),
        postgresql_where=sa.text(OPEN_WHERE_SQL),
    )
    op.create_index("ix_work_orders_status_detected_at", "work_orders", ["status", "detected_at"])


def _work_order_events() -> None:
    """The timeline of each work order."""
    op.create_table(
        "work_order_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("work_order_id", Id, nullable=False),
        sa.Column("at", Utc, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_events_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
    )
    op.create_index(op.f("ix_work_order_events_work_order_id"), "work_order_events", ["work_order_id"])


def _processed_events() -> None:
    """The ids of events already processed, so none is applied twice."""
    op.create_table(
        "processed_events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("processed_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processed_events")),
    )


def _device_status() -> None:
    """Each device's communication status and last event."""
    op.create_table(
        "device_status",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("comm", sa.String(8), nullable=False),
        sa.Column("last_event_at", Utc, nullable=False),
        sa.Column("last_event_type", sa.String(32), nullable=False),
        sa.CheckConstraint("comm IN ('ok', 'lost')", name=op.f("ck_device_status_comm")),
        sa.PrimaryKeyConstraint("site", "device", name=op.f("pk_device_status")),
    )


def downgrade() -> None:
    op.drop_table("device_status")
    op.drop_table("processed_events")
    op.drop_index(op.f("ix_work_order_events_work_order_id"), table_name="work_order_events")
    op.drop_table("work_order_events")
    op.drop_index("ix_work_orders_status_detected_at", table_name="work_orders")
    op.drop_index("uq_work_orders_open_fault", table_name="work_orders")
    op.drop_table("work_orders")
