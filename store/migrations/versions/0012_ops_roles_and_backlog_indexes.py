"""API key roles, expiry and last use; indexes for the backlog counted at scrape time

Revision ID: 0012
Revises: 0011 (main had 0006 already; the coordinator re-chains)
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(20), nullable=False, server_default="tenant")
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
    op.create_index("ix_jobs_state_queue_next", "jobs", ["state", "queue", "next_attempt_at"])
    op.create_index("ix_jobs_state_type_error", "jobs", ["state", "type", "error_class"])
    op.create_index("ix_audit_created", "audit_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_created", table_name="audit_events")
    op.drop_index("ix_jobs_state_type_error", table_name="jobs")
    op.drop_index("ix_jobs_state_queue_next", table_name="jobs")
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("role")
