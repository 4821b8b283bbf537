"""IMAP: long message bodies enter the full-text index after the commit that stored them

Revision ID: imap_0005
Revises: imap_0004
Create Date: 2026-12-01 17:00:00

Indexing a body by trigrams costs about 0.2 s of the database writer per MiB of text; done in the delivering
transaction, it held every other delivery back. ``message_text_pending`` lists the messages whose body text is
still to be indexed (by the IMAP text indexer); SEARCH reads their bodies directly meanwhile. The rows go with
their message.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imap_0005"
down_revision: str | Sequence[str] | None = "imap_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "message_text_pending",
        sa.Column("message_id", _Id, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("message_text_pending")
