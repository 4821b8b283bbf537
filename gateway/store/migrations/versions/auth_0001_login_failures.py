"""auth: failed logins counted in the store, shared by every process and instance

Revision ID: auth_0001
Revises: 0001
Create Date: 2026-11-23 10:00:00

The login throttle (per client address and account, and per address alone) used to count in each process's
memory; the count now lives in ``auth_failures`` so that all gateway processes on one database agree.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "auth_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("id", Id, nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_auth_failures_client_failed_at", "auth_failures", ["client", "failed_at"])
    op.create_index("ix_auth_failures_failed_at", "auth_failures", ["failed_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_failures_failed_at", table_name="auth_failures")
    op.drop_index("ix_auth_failures_client_failed_at", table_name="auth_failures")
    op.drop_table("auth_failures")
