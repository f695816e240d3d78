"""Balances, holds, credits and the ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _account() -> sa.Column[int]:
    return sa.Column("account_id", sa.Integer(), nullable=False)


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=f"fk_{table}_account_id_accounts"
    )


def _money(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "balances",
        _account(),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("granted_nanos"),
        _money("topped_up_nanos"),
        _money("held_nanos"),
        _account_fk("balances"),
        sa.PrimaryKeyConstraint("account_id", "currency", name="pk_balances"),
    )
    op.create_table(
        "holds",
        sa.Column("request_id", sa.String(64), nullable=False),
        _account(),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("amount_nanos"),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        _when("created_at"),
        _account_fk("holds"),
        sa.PrimaryKeyConstraint("request_id", name="pk_holds"),
    )
    op.create_index("ix_holds_gateway_id", "holds", ["gateway_id"])
    op.create_table(
        "credits",
        sa.Column("id", sa.Integer(), nullable=False),
        _account(),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("amount_nanos"),
        sa.Column("granted", sa.Boolean(), nullable=False),
        _when("created_at"),
        _account_fk("credits"),
        sa.PrimaryKeyConstraint("id", name="pk_credits"),
    )
    op.create_index("ix_credits_account_id", "credits", ["account_id"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        _account(),
        sa.Column("key_id", sa.String(20), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("backing", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("hit_tokens", "miss_tokens", "output_tokens", "reasoning_tokens")
        ),
        _money("hit_price_nanos"),
        _money("miss_price_nanos"),
        _money("output_price_nanos"),
        sa.Column("price_window", sa.String(64), nullable=True),
        _money("cost_nanos"),
        sa.Column("charged", sa.Boolean(), nullable=False),
        sa.Column("finish_reason", sa.String(40), nullable=False),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        _when("started_at"),
        _when("finished_at"),
        _account_fk("ledger"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.UniqueConstraint("request_id", name="uq_ledger_request_id"),
    )
    op.create_index("ix_ledger_account_id", "ledger", ["account_id"])
    op.create_index("ix_ledger_started_at", "ledger", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_started_at", table_name="ledger")
    op.drop_index("ix_ledger_account_id", table_name="ledger")
    op.drop_table("ledger")
    op.drop_index("ix_credits_account_id", table_name="credits")
    op.drop_table("credits")
    op.drop_index("ix_holds_gateway_id", table_name="holds")
    op.drop_table("holds")
    op.drop_table("balances")
