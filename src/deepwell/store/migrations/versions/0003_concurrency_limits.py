"""Per-account concurrency limits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "concurrency_limits",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("concurrency >= 1", name="ck_concurrency_limits_concurrency_positive"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_concurrency_limits_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "model", name="pk_concurrency_limits"),
    )


def downgrade() -> None:
    op.drop_table("concurrency_limits")
