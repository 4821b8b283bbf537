"""hl7 outbox: documents filed to a patient's record, handed to the DPI as MDM^T02 once each

Revision ID: hl7_0003
Revises: hl7_0002, documents_0001
Create Date: 2026-12-01 14:40:00

SPDX-License-Identifier: GPL-3.0-or-later
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hl7_0003"
down_revision: str | Sequence[str] | None = ("hl7_0002", "documents_0001")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.alter_column("source_id", existing_type=Id, nullable=True)
        batch_op.add_column(sa.Column("document_id", Id, nullable=True))
        batch_op.create_unique_constraint("uq_hl7_outbox_document_id", ["document_id"])
        batch_op.create_foreign_key("fk_hl7_outbox_document_id", "patient_documents", ["document_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.drop_constraint("fk_hl7_outbox_document_id", type_="foreignkey")
        batch_op.drop_constraint("uq_hl7_outbox_document_id", type_="unique")
        batch_op.drop_column("document_id")
        batch_op.alter_column("source_id", existing_type=Id, nullable=False)
