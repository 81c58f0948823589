"""A device's work orders from an index: the device page and the device detail ask for one device's (open) work
orders, which without it meant reading every open work order of the centre.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_work_orders_site_device_detected_at", "work_orders", ["site", "device", "detected_at"])


def downgrade() -> None:
    op.drop_index("ix_work_orders_site_device_detected_at", table_name="work_orders")
