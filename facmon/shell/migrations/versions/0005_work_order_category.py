"""Work orders get a category: repair, task or check.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Existing work orders were all opened for faults: they become `repair`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild on SQLite): the server default fills the existing rows.
    op.add_column("work_orders", sa.Column("category", sa.String(16), nullable=False, server_default="repair"))


def downgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_column("category")
