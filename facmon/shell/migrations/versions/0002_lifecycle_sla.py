"""Work-order lifecycle and SLA clocks: status times, previous work order, SLA profile, clocks, follow-ups, and who
and through what each timeline entry happened.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01

Data: work orders from 0001 were opened under the only rule there was (on site within 20 minutes, `due_at`). Those
still waiting for a technician (open, acknowledged) get that clock, so the SLA monitor watches them after the
upgrade. Work orders past that point keep no clock: when the technician arrived was never recorded, and inventing a
time would make up a met or breached deadline. Their `sla_profile` stays NULL, as for anything opened before
profiles existed. Timeline entries from 0001 are marked exported: they were never lifecycle points, and writing
them now would put a burst of old points into the dashboards' lifecycle series.

As in 0001, names and predicates are spelled out here, not imported from the table modules.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Id, Utc

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

STATUS_TIMES = ("acknowledged_at", "on_site_at", "resolved_at", "closed_at", "cancelled_at")


def upgrade() -> None:
    _work_order_columns()
    _timeline_columns()
    _work_order_clocks()
    _follow_ups()
    _data()


def _work_order_columns() -> None:
    """Status times, the previous work order and the SLA profile on work orders."""
    # Batch mode: SQLite cannot add a foreign key with ALTER TABLE, so work_orders is rebuilt (its CHECK constraints
    # and the partial unique index are reflected and created again; a test compares the result with the models).
    # schema.create_schema runs migrations with SQLite's foreign keys off, as a rebuild needs: with them on, the DROP
    # TABLE of the old copy would delete its rows first and cascade into every timeline entry.
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("previous_id", Id, nullable=True))
        batch.add_column(sa.Column("sla_profile", sa.String(64), nullable=True))
        for name in STATUS_TIMES:
            batch.add_column(sa.Column(name, Utc, nullable=True))
        batch.create_foreign_key(
            op.f("fk_work_orders_previous_id_work_orders"), "work_orders", ["previous_id"], ["id"], ondelete="SET NULL"
        )


def _timeline_columns() -> None:
    """Who and through what each timeline entry happened, and whether it was exported."""
    for column in (
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("source", sa.String(32), nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("exported_at", Utc, nullable=True),
    ):
        op.add_column("work_order_events", column)
    op.create_index(
        "ix_work_order_events_unexported",
        "work_order_events",
        ["id"],
        sqlite_where=sa.text("exported_at IS NULL"),
        postgresql_where=sa.text("exported_at IS NULL"),
    )


def _work_order_clocks() -> None:
    """SLA clocks of each work order."""
    op.create_table(
        "work_order_clocks",
        sa.Column("work_order_id", Id, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("milestone", sa.String(16), nullable=False),
        sa.Column("due_at", Utc, nullable=False),
        sa.Column("met_at", Utc, nullable=True),
        sa.Column("cancelled_at", Utc, nullable=True),
        sa.Column("breached_at", Utc, nullable=True),
        sa.CheckConstraint(
            "milestone IN ('acknowledged', 'on_site', 'resolved')", name=op.f("ck_work_order_clocks_milestone")
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_clocks_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("work_order_id", "name", name=op.f("pk_work_order_clocks")),
    )
    op.create_index(
        "ix_work_order_clocks_unbreached_due",
        "work_order_clocks",
        ["due_at"],
        sqlite_where=sa.text("breached_at IS NULL"),
        postgresql_where=sa.text("breached_at IS NULL"),
    )


def _follow_ups() -> None:
    """Follow-up visits after a repair."""
    op.create_table(
        "follow_ups",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("work_order_id", Id, nullable=False),
        sa.Column("visited_at", Utc, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("recorded_at", Utc, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('satisfied', 'dissatisfied', 'unreachable')", name=op.f("ck_follow_ups_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_follow_ups_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ups")),
    )
    op.create_index(op.f("ix_follow_ups_work_order_id"), "follow_ups", ["work_order_id"])


def _data() -> None:
    """The data, in plain SQL that both SQLite and PostgreSQL run (see the module docstring)."""
    op.execute(
        "INSERT INTO work_order_clocks (work_order_id, name, milestone, due_at) "
        "SELECT id, 'on_site', 'on_site', due_at FROM work_orders WHERE status IN ('open', 'acknowledged')"
    )
    op.execute("UPDATE work_order_events SET exported_at = at")
    op.execute("UPDATE work_order_events SET status = 'open' WHERE type = 'opened'")


def downgrade() -> None:
    # Like the upgrade, run with SQLite's foreign keys off (see facmon.shell.migrations.schema.create_schema).
    op.drop_index(op.f("ix_follow_ups_work_order_id"), table_name="follow_ups")
    op.drop_table("follow_ups")
    op.drop_index("ix_work_order_clocks_unbreached_due", table_name="work_order_clocks")
    op.drop_table("work_order_clocks")
    op.drop_index("ix_work_order_events_unexported", table_name="work_order_events")
    with op.batch_alter_table("work_order_events") as batch:
        for name in ("exported_at", "note", "source", "actor", "status"):
            batch.drop_column(name)
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_constraint(op.f("fk_work_orders_previous_id_work_orders"), type_="foreignkey")
        for name in (*reversed(STATUS_TIMES), "sla_profile", "previous_id"):
            batch.drop_column(name)
