"""IMAP: bodies with more text than the full-text index takes are read by SEARCH instead

Revision ID: imap_0006
Revises: imap_0005
Create Date: 2026-12-03 10:00:00

A trigram index costs about 0.2 s of the database writer per MiB of text: a stream of long text bodies kept the
IMAP text indexer (and so the single SQLite writer) busy behind every delivery. ``oversize`` marks the pending
messages whose body is never indexed; SEARCH reads them from their bytes, as it reads pending ones.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imap_0006"
down_revision: str | Sequence[str] | None = "imap_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_text_pending") as batch:
        batch.add_column(sa.Column("oversize", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("message_text_pending") as batch:
        batch.drop_column("oversize")
