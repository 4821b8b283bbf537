"""outbound queue, and conversations opened by remote professionals

Revision ID: relay_0001
Revises: 0001
Create Date: 2026-11-22 09:00:00

Relayed mail: a professional at another operator writing to our patient opens a conversation keyed
by the remote address (R1, R5), so ``conversations.professional_id`` becomes nullable beside a new
``remote_professional`` column. Mail to other operators waits in ``outbound_queue`` until delivered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "relay_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbound_queue",
        sa.Column("id", Id, nullable=False),
        sa.Column("message_id", Id, nullable=False),
        sa.Column("sender_mailbox_id", Id, nullable=True),
        sa.Column("mail_from", sa.String(length=320), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("notify", sa.String(length=40), nullable=True),
        sa.Column("orcpt", sa.String(length=500), nullable=True),
        sa.Column("ret", sa.String(length=4), nullable=True),
        sa.Column("envid", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("remote_mta", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["sender_mailbox_id"], ["mailboxes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_queue", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_queue_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbound_queue_message_id"), ["message_id"], unique=False)
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remote_professional", sa.String(length=320), nullable=True))
        batch_op.alter_column("professional_id", existing_type=Id, nullable=True)
        batch_op.create_unique_constraint("uq_conversations_remote_professional_matricule",
                                          ["remote_professional", "matricule"])


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint("uq_conversations_remote_professional_matricule", type_="unique")
        batch_op.alter_column("professional_id", existing_type=Id, nullable=False)
        batch_op.drop_column("remote_professional")
    with op.batch_alter_table("outbound_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_queue_message_id"))
        batch_op.drop_index("ix_outbound_queue_due")
    op.drop_table("outbound_queue")
