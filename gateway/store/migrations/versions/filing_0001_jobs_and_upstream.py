"""filing jobs and upstream imports

Revision ID: filing_0001
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "filing_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "filing_jobs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("message_id", Id, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("mailbox_id", Id, sa.ForeignKey("mailboxes.id"), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("message_id", "mailbox_id", "kind"),
    )
    op.create_index("ix_filing_jobs_state_next", "filing_jobs", ["state", "next_attempt_at"])
    op.create_table(
        "upstream_messages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("uidvalidity", Id, nullable=False),
        sa.Column("uid", Id, nullable=False),
        sa.Column("message_id", Id, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("source", "uidvalidity", "uid"),
    )


def downgrade() -> None:
    op.drop_table("upstream_messages")
    op.drop_index("ix_filing_jobs_state_next", table_name="filing_jobs")
    op.drop_table("filing_jobs")
