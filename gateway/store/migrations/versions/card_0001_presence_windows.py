"""card agents and presence windows

Revision ID: card_0001
Revises: 0001
Create Date: 2026-11-22 09:00:00

Workstations' card agents (known by their client certificate) report card insertions and removals;
a Vitale insertion whose patient is known opens a presence window used by the DMP's "patient present" mode (R14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "card_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "card_agents",
        sa.Column("id", Id, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("workstation", sa.String(length=100), nullable=False),
        sa.Column("professional_mailbox_id", Id, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["professional_mailbox_id"], ["mailboxes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_table(
        "card_presence",
        sa.Column("id", Id, nullable=False),
        sa.Column("agent_id", Id, nullable=False),
        sa.Column("insertion", sa.String(length=36), nullable=False),
        sa.Column("reader", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("model", sa.String(length=60), nullable=True),
        sa.Column("atr", sa.String(length=80), nullable=False),
        sa.Column("professional_mailbox_id", Id, nullable=False),
        sa.Column("inserted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removal_reason", sa.String(length=20), nullable=True),
        sa.Column("matricule", sa.String(length=15), nullable=True),
        sa.Column("identity_id", Id, nullable=True),
        sa.Column("patient_source", sa.String(length=10), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["card_agents.id"]),
        sa.ForeignKeyConstraint(["professional_mailbox_id"], ["mailboxes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("insertion"),
    )
    with op.batch_alter_table("card_presence", schema=None) as batch_op:
        batch_op.create_index("ix_card_presence_window", ["professional_mailbox_id", "matricule", "closed_at"])
        batch_op.create_index("ix_card_presence_open", ["closed_at", "expires_at"])
        batch_op.create_index(batch_op.f("ix_card_presence_agent_id"), ["agent_id"])


def downgrade() -> None:
    with op.batch_alter_table("card_presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_presence_agent_id"))
        batch_op.drop_index("ix_card_presence_open")
        batch_op.drop_index("ix_card_presence_window")
    op.drop_table("card_presence")
    op.drop_table("card_agents")
