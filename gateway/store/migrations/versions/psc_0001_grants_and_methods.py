"""psc: national ids granted mailboxes, and the login methods each mailbox allows

Revision ID: psc_0001
Revises: 0001
Create Date: 2026-12-01 14:30:00

``psc_grants`` maps a professional's national id (Pro Santé Connect) to the mailboxes they may use;
``mailboxes.auth_methods`` lists the login methods a mailbox accepts (``psc``, ``password``, ``certificate``;
NULL = all), so a structure can require PSC for people. Models: gateway/psc/models.py, gateway/store/models.py.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "psc_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "psc_grants",
        sa.Column("id", Id, nullable=False),
        sa.Column("national_id", sa.String(length=64), nullable=False),
        sa.Column("mailbox_id", Id, nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailboxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("national_id", "mailbox_id"),
    )
    with op.batch_alter_table("psc_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_psc_grants_national_id"), ["national_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_psc_grants_mailbox_id"), ["mailbox_id"], unique=False)
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_methods", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("auth_methods")
    with op.batch_alter_table("psc_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_psc_grants_mailbox_id"))
        batch_op.drop_index(batch_op.f("ix_psc_grants_national_id"))
    op.drop_table("psc_grants")
