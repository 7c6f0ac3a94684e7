"""jobs.callback_url, the tenants' callback signing secrets and callback deliveries

Revision ID: 0014
Revises: 0012 (the coordinator re-chains after 0013)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("callback_url", sa.String(2048), nullable=True))
    op.create_table(
        "webhook_callback_secrets",
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("previous_secret_sealed", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "webhook_callback_deliveries",
        sa.Column(
            "job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("event_id", sa.Uuid(), sa.ForeignKey("webhook_events.id"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_webhook_callback_deliveries_tenant",
        "webhook_callback_deliveries",
        ["tenant_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_callback_deliveries_tenant", table_name="webhook_callback_deliveries")
    op.drop_table("webhook_callback_deliveries")
    op.drop_table("webhook_callback_secrets")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("callback_url")
