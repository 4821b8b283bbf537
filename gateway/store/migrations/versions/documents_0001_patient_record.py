"""patient record (filed documents) and document review queue

Revision ID: documents_0001
Revises: 0001
Create Date: 2026-11-22 09:10:00

Received CDA documents are filed into a patient's record when they match a qualified identity (R10), and
otherwise wait in a review queue with an ANS integration code (R10, R11). Models: gateway/ins_matching/record.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "documents_0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "patient_documents",
        sa.Column("id", Id, nullable=False),
        sa.Column("identity_id", Id, nullable=False),
        sa.Column("message_id", Id, nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("unique_id", sa.String(length=200), nullable=False),
        sa.Column("set_id", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("type_code", sa.String(length=64), nullable=True),
        sa.Column("type_code_system", sa.String(length=64), nullable=True),
        sa.Column("type_display", sa.String(length=300), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("effective_time", sa.String(length=40), nullable=True),
        sa.Column("confidentiality", sa.String(length=40), nullable=True),
        sa.Column("author_national_id", sa.String(length=64), nullable=True),
        sa.Column("author_organisation", sa.String(length=300), nullable=True),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filed_by", sa.String(length=320), nullable=False),
        sa.Column("superseded_by", Id, nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["superseded_by"], ["patient_documents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identity_id", "unique_id", name="uq_patient_documents_identity_unique_id"),
    )
    with op.batch_alter_table("patient_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_documents_identity_id"), ["identity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_documents_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_documents_set_id"), ["set_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_documents_unique_id"), ["unique_id"], unique=False)
    op.create_table(
        "document_reviews",
        sa.Column("id", Id, nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message_id", Id, nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("candidate_identity_id", Id, nullable=True),
        sa.Column("unique_id", sa.String(length=200), nullable=True),
        sa.Column("matricule", sa.String(length=15), nullable=True),
        sa.Column("header", sa.JSON(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("filed_document_id", Id, nullable=True),
        sa.ForeignKeyConstraint(["candidate_identity_id"], ["identities.id"]),
        sa.ForeignKeyConstraint(["filed_document_id"], ["patient_documents.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("document_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_reviews_matricule"), ["matricule"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_reviews_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_reviews_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_reviews_status"))
        batch_op.drop_index(batch_op.f("ix_document_reviews_message_id"))
        batch_op.drop_index(batch_op.f("ix_document_reviews_matricule"))
    op.drop_table("document_reviews")
    with op.batch_alter_table("patient_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_documents_unique_id"))
        batch_op.drop_index(batch_op.f("ix_patient_documents_set_id"))
        batch_op.drop_index(batch_op.f("ix_patient_documents_message_id"))
        batch_op.drop_index(batch_op.f("ix_patient_documents_identity_id"))
    op.drop_table("patient_documents")
