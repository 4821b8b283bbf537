"""DMP deposit outbox

Revision ID: dmp_0001
Revises: 0001
Create Date: 2026-11-22 09:30:00

The durable outbox of the DMP bridge: one row per document to deposit, claimed with SKIP LOCKED,
with the document's uniqueId as the idempotency key (see gateway/dmp_bridge/outbox.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dmp_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dmp_deposits",
        sa.Column("id", Id, nullable=False),
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("submission_uid", sa.String(length=128), nullable=False),
        sa.Column("message_id", Id, nullable=True),
        sa.Column("sender_mailbox_id", Id, nullable=True),
        sa.Column("matricule", sa.String(length=15), nullable=False),
        sa.Column("author_id", sa.String(length=20), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("visibility", sa.JSON(), nullable=False),
        sa.Column("replaces", sa.String(length=128), nullable=True),
        sa.Column("cda", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result_code", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["sender_mailbox_id"], ["mailboxes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unique_id"),
    )
    with op.batch_alter_table("dmp_deposits", schema=None) as batch_op:
        batch_op.create_index("ix_dmp_deposits_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_dmp_deposits_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dmp_deposits_matricule"), ["matricule"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dmp_deposits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dmp_deposits_matricule"))
        batch_op.drop_index(batch_op.f("ix_dmp_deposits_message_id"))
        batch_op.drop_index("ix_dmp_deposits_due")
    op.drop_table("dmp_deposits")
