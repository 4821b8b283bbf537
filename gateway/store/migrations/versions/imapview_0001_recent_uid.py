"""IMAP: folders remember the highest UID already reported as \\Recent

Revision ID: imapview_0001
Revises: imap_0003
Create Date: 2026-11-23 09:00:00

IMAP4rev1 clients expect ``\\Recent`` (RFC 3501 2.3.2): a message is recent for the first session that selects
its folder after it arrived. ``folders.recent_uid`` is that high-water mark; messages stored before this
revision are not recent (the mark starts at ``uidnext - 1``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imapview_0001"
down_revision: str | Sequence[str] | None = "imap_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("folders", sa.Column("recent_uid", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE folders SET recent_uid = uidnext - 1")


def downgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("recent_uid")
