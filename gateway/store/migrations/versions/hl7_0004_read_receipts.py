"""hl7 read receipts: which accepted HL7 messages asked ACK_LECTURE (their MDN "displayed" is relayed as ZAM^Z03)

Revision ID: hl7_0004
Revises: hl7_0003
Create Date: 2026-12-01 17:20:00

SPDX-License-Identifier: GPL-3.0-or-later
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hl7_0004"
down_revision: str | Sequence[str] | None = "hl7_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ack_lecture", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.drop_column("ack_lecture")
