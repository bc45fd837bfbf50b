"""materialized views: realtime revenue and reconciliation status

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-13 11:19:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE MATERIALIZED VIEW mv_realtime_revenue AS
        SELECT tenant_id, date_trunc('hour', recorded_at) AS hour,
               sum(amount_cents) AS amount_cents, count(*) AS entries
        FROM revenue_ledger
        GROUP BY tenant_id, date_trunc('hour', recorded_at)
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX mv_realtime_revenue_key ON mv_realtime_revenue (tenant_id, hour)"
    )
    op.execute(
        """
        CREATE MATERIALIZED VIEW mv_reconciliation_status AS
        SELECT tenant_id, status, count(*) AS runs, max(finished_at) AS last_finished_at
        FROM reconciliation_runs
        GROUP BY tenant_id, status
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX mv_reconciliation_status_key"
        " ON mv_reconciliation_status (tenant_id, status)"
    )


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW mv_reconciliation_status")
    op.execute("DROP MATERIALIZED VIEW mv_realtime_revenue")
