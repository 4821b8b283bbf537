"""PostgreSQL: the large columns (messages, documents, HL7 messages, the search text) compressed with LZ4

Revision ID: store_0002
Revises: 0001
Create Date: 2026-12-03 14:00:00

PostgreSQL compresses every value above ~2 KB before storing it out of line (TOAST), by default with pglz: on a
message of 200 KB that is mostly base64 (an XDM zip, a PDF) pglz spends ~6 ms of the server's CPU and saves
nothing. LZ4 (PostgreSQL 14 and later, when built with it, as Debian's
packages are) compresses text as well at a fraction of the cost and gives up quickly on what does not
compress. Values stored before keep their compression; new ones use LZ4. SQLite stores values as they are:
nothing changes there, nor on a PostgreSQL server without LZ4.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "store_0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = ("hl7_0001", "dmp_0001", "documents_0001", "imap_0004")

#: (table, column) whose values may be large.
COLUMNS = (("messages", "raw"), ("hl7_messages", "raw"), ("dmp_deposits", "cda"), ("patient_documents", "content"),
           ("document_reviews", "content"), ("message_anatomy", "anatomy"), ("message_anatomy_text", "header"),
           ("message_anatomy_text", "body"))


#: The compression methods the server was built with (``{pglz,lz4}`` when it has LZ4).
METHODS = "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"


def _lz4_available(bind: sa.Connection) -> bool:
    values = bind.execute(sa.text(METHODS)).scalar()
    return values is not None and "lz4" in values


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _lz4_available(bind):
        return
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET COMPRESSION {method}')


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
