"""DMP: the outbox's link key indexed

Revision ID: dmp_0002
Revises: dmp_0001
Create Date: 2026-11-22 14:15:00

Documents deposited together (R15) share ``submission_uid``; the worker claims a due job with its linked jobs by
that key, once per claim: without an index each claim would read every due row (see gateway/dmp_bridge/outbox.py).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "dmp_0002"
down_revision: str | Sequence[str] | None = "dmp_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_dmp_deposits_submission_uid", "dmp_deposits", ["submission_uid"])


def downgrade() -> None:
    op.drop_index("ix_dmp_deposits_submission_uid", table_name="dmp_deposits")
