"""IMAP: expunge records carry their time; folders remember up to which MODSEQ they were pruned

Revision ID: imap_0003
Revises: imap_0002
Create Date: 2026-11-22 13:00:00

``imap_expunged`` grew with every expunge. Records older than the retention are now deleted, and
``folders.expunged_floor`` keeps the highest MODSEQ deleted, so that a session last synchronised before it
compares UID lists instead of missing expunges.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imap_0003"
down_revision: str | Sequence[str] | None = "imap_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot add a column whose default is not constant: writers set expunged_at, old rows stay NULL.
    op.add_column("imap_expunged", sa.Column("expunged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("folders", sa.Column("expunged_floor", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("folders", "expunged_floor")
    op.drop_column("imap_expunged", "expunged_at")
