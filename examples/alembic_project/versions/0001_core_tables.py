"""core tables: tenants, attribution events, allocations, revenue ledger, reconciliation runs

Revision ID: 0001
Revises:
Create Date: 2025-11-13 11:15:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

reconciliation_status = postgresql.ENUM(
    "pending", "running", "matched", "mismatched", name="reconciliation_status"
)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "tenants",
        _id(),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_table(
        "attribution_events",
        _id(),
        _tenant(),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False, server_default="{}"),
    )
    op.create_table(
        "dead_events",
        _id(),
        sa.Column("tenant_id", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.BigInteger),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_table(
        "attribution_allocations",
        _id(),
        _tenant(),
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("attribution_events.id")),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("share", sa.Numeric(5, 4), nullable=False),
    )
    op.create_table(
        "revenue_ledger",
        _id(),
        _tenant(),
        sa.Column("allocation_id", sa.BigInteger, sa.ForeignKey("attribution_allocations.id")),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_table(
        "reconciliation_runs",
        _id(),
        _tenant(),
        sa.Column("status", reconciliation_status, nullable=False, server_default="pending"),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_revenue_ledger_tenant", "revenue_ledger", ["tenant_id", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_revenue_ledger_tenant", table_name="revenue_ledger")
    for table in (
        "reconciliation_runs",
        "revenue_ledger",
        "attribution_allocations",
        "dead_events",
        "attribution_events",
        "tenants",
    ):
        op.drop_table(table)
    # drop_table leaves the enum type behind: drop it, or a round trip does not return to base.
    op.execute("DROP TYPE reconciliation_status")
