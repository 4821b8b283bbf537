"""hl7 outbox: acknowledgement messages owed to hospital systems, and which messages asked for them

Revision ID: hl7_0002
Revises: hl7_0001
Create Date: 2026-12-01 14:30:00

The DMP's answer and the MSSanté delivery of a document sent by HL7 are relayed to the sender as the volet's
acknowledgement messages (ZAM^Z01, ZAM^Z02), from a durable queue retried until the peer answers.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hl7_0002"
down_revision: str | Sequence[str] | None = "hl7_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ack_reception", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "hl7_outbox",
        sa.Column("id", Id, nullable=False),
        sa.Column("source_id", Id, nullable=False),
        sa.Column("peer", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("control_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["hl7_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("control_id"),
        sa.UniqueConstraint("source_id", "kind", name="uq_hl7_outbox_source_kind"),
    )
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_hl7_outbox_due", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_hl7_outbox_due")
    op.drop_table("hl7_outbox")
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.drop_column("ack_reception")
