"""event source column, tenant/time index and the dead-events foreign key, the safe way

Revision ID: 0005
Revises: 0004
Create Date: 2025-11-20 09:00:00

pgsafe's op helpers: a NOT NULL column added without a long lock (add nullable, backfill in
batches, CHECK NOT VALID, VALIDATE, SET NOT NULL), an index built concurrently, and a foreign
key added NOT VALID and validated without blocking writes.
"""

import sqlalchemy as sa
from alembic import op

import pgsafe.alembic  # noqa: F401  (registers the op helpers)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column_not_null_safe(
        "attribution_events", sa.Column("source", sa.Text), backfill="event_type", batch_size=500
    )
    op.create_index_concurrently(
        "ix_attribution_events_tenant_occurred", "attribution_events", ["tenant_id", "occurred_at"]
    )
    op.add_foreign_key_not_valid(
        "fk_dead_events_tenant", "dead_events", "tenants", ["tenant_id"], ["id"]
    )


def downgrade() -> None:
    op.drop_constraint("fk_dead_events_tenant", "dead_events", type_="foreignkey")
    op.drop_index_concurrently("ix_attribution_events_tenant_occurred")
    op.drop_column("attribution_events", "source")
