"""IMAP: expunged UIDs per folder and MODSEQ

Revision ID: imap_0001
Revises: 0001
Create Date: 2026-11-22 09:10:00

Selected IMAP sessions learn about expunges by MODSEQ: ``imap_expunged`` records each removed UID
with the folder MODSEQ of its removal.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imap_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "imap_expunged",
        sa.Column("id", Id, nullable=False),
        sa.Column("folder_id", Id, nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["folder_id"], ["folders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_imap_expunged_folder_modseq", "imap_expunged", ["folder_id", "modseq"])


def downgrade() -> None:
    op.drop_index("ix_imap_expunged_folder_modseq", table_name="imap_expunged")
    op.drop_table("imap_expunged")
