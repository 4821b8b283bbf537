"""relay receipts: a message relayed twice by another operator is stored once

Revision ID: relay_0002
Revises: relay_0001
Create Date: 2026-12-01 12:00:00

An operator whose instance died after our "250" but before recording it sends the message again; the receipt
(operator, Message-ID, envelope) lets the relay answer 250 without storing it a second time.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "relay_0002"
down_revision: str | Sequence[str] | None = "relay_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "relay_receipts",
        sa.Column("id", Id, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("peer", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("relay_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_relay_receipts_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("relay_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relay_receipts_received_at"))
    op.drop_table("relay_receipts")
