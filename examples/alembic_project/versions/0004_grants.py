"""grants: a read-only role for reporting, a writer role for the ingest service

Revision ID: 0004
Revises: 0003
Create Date: 2025-11-13 11:21:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLES = ("attribution_reader", "attribution_writer")
TABLES = (
    "tenants",
    "attribution_events",
    "dead_events",
    "attribution_allocations",
    "revenue_ledger",
    "reconciliation_runs",
)
VIEWS = ("mv_realtime_revenue", "mv_reconciliation_status")


def upgrade() -> None:
    for role in ROLES:
        # Roles belong to the cluster, not to this database: created once, never dropped here.
        op.execute(
            f"""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN;
              END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$
            """
        )
    op.execute(f"GRANT SELECT ON {', '.join(TABLES + VIEWS)} TO attribution_reader")
    op.execute(
        "GRANT SELECT, INSERT ON attribution_events, dead_events, attribution_allocations,"
        " revenue_ledger TO attribution_writer"
    )


def downgrade() -> None:
    op.execute(
        "REVOKE SELECT, INSERT ON attribution_events, dead_events, attribution_allocations,"
        " revenue_ledger FROM attribution_writer"
    )
    op.execute(f"REVOKE SELECT ON {', '.join(TABLES + VIEWS)} FROM attribution_reader")
