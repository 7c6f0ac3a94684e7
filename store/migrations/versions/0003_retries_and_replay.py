"""retry policy per job, error class, replays, attempt excerpts, audit events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("retry_policy", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("error_class", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("replays", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index(
            "ix_jobs_tenant_error_class", ["tenant_id", "error_class", "created_at"]
        )
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.add_column(sa.Column("retry_after_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("request_excerpt", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("response_excerpt", sa.Text(), nullable=True))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_tenant_created", "audit_events", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_tenant_created", table_name="audit_events")
    op.drop_table("audit_events")
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.drop_column("response_excerpt")
        batch_op.drop_column("request_excerpt")
        batch_op.drop_column("retry_after_s")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_tenant_error_class")
        batch_op.drop_column("replays")
        batch_op.drop_column("error_class")
        batch_op.drop_column("retry_policy")
