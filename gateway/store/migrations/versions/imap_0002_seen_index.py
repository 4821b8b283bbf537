"""IMAP: a ``seen`` column on deliveries, indexed with the folder and UID

Revision ID: imap_0002
Revises: imap_0001
Create Date: 2026-11-22 12:30:00

SELECT reports the first unseen message and STATUS the unseen count. Read from the flags text, both
scan the whole folder; ``seen`` mirrors ``\\Seen`` in ``flags`` (every writer sets both) and the index
(folder_id, seen, uid) answers them by a range of the index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imap_0002"
down_revision: str | Sequence[str] | None = "imap_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("seen", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Flags are space separated and system flags case-insensitive; with ESCAPE the backslash is literal on both
    # PostgreSQL and SQLite.
    op.execute(r"UPDATE deliveries SET seen = (lower(' ' || flags || ' ') LIKE '% \seen %' ESCAPE '!')")
    op.create_index("ix_deliveries_folder_seen_uid", "deliveries", ["folder_id", "seen", "uid"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_folder_seen_uid", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("seen")
