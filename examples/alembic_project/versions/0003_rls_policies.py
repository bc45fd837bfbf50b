"""row-level security: every tenant sees only its own rows

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-13 11:20:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "attribution_events",
    "dead_events",
    "attribution_allocations",
    "revenue_ledger",
    "reconciliation_runs",
)
TENANT = "current_setting('app.tenant_id', true)::bigint"


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            f" USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
