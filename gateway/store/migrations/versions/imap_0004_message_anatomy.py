"""IMAP: every message's anatomy and search text, computed once, and filled for the messages already stored

Revision ID: imap_0004
Revises: imap_0003
Create Date: 2026-11-23 10:00:00

FETCH used to parse a whole message at every request, and a message nested thousands of levels deep stalled the
server. ``message_anatomy`` keeps the bounded analysis (MIME structure with byte ranges, envelope, sort keys);
``message_anatomy_text`` the decoded header and body text, indexed by trigrams for SEARCH TEXT/BODY: an FTS5
table with ``tokenize='trigram'`` on SQLite, a table with ``pg_trgm`` GIN indexes on PostgreSQL. Existing
messages are analysed in batches of 500, with progress on stderr.
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "imap_0004"
down_revision: str | Sequence[str] | None = "imap_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _create_text_table(bind: sa.engine.Connection) -> None:
    if bind.dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE message_anatomy_text USING fts5(header, body, tokenize='trigram')")
        # FTS5 tables take no foreign key: their rows go with the message.
        op.execute("CREATE TRIGGER message_anatomy_text_gone AFTER DELETE ON messages "
                   "BEGIN DELETE FROM message_anatomy_text WHERE rowid = old.id; END")
        return
    op.execute("CREATE TABLE message_anatomy_text (message_id BIGINT PRIMARY KEY "
               "REFERENCES messages (id) ON DELETE CASCADE, header TEXT NOT NULL, body TEXT NOT NULL)")
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        print("imap_0004: the pg_trgm extension cannot be created by this role; SEARCH TEXT scans instead "
              "(run CREATE EXTENSION pg_trgm as a superuser, then CREATE INDEX ... USING gin)", file=sys.stderr)
        return
    op.execute("CREATE INDEX ix_message_anatomy_text_header ON message_anatomy_text "
               "USING gin (header gin_trgm_ops)")
    op.execute("CREATE INDEX ix_message_anatomy_text_body ON message_anatomy_text USING gin (body gin_trgm_ops)")


def _fill(bind: sa.engine.Connection) -> None:
    from gateway.store.anatomy import MessageAnatomy, index_rows, text_insert_sql

    total = bind.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
    if not total:
        return
    insert_text = sa.text(text_insert_sql(bind.dialect.name))
    done = flat = 0
    last = 0
    while True:
        rows = bind.execute(sa.text("SELECT id, raw FROM messages WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": BATCH}).all()
        if not rows:
            break
        indexed = index_rows((row.id, bytes(row.raw)) for row in rows)
        bind.execute(sa.insert(MessageAnatomy), indexed.anatomy_rows)
        bind.execute(insert_text, indexed.text_rows)
        last = rows[-1].id
        done += len(rows)
        flat += len(indexed.refused)
        print(f"imap_0004: analysed {done}/{total} messages ({flat} stored flat)", file=sys.stderr, flush=True)


def upgrade() -> None:
    op.create_table(
        "message_anatomy",
        sa.Column("message_id", _Id, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("anatomy", sa.LargeBinary(), nullable=False),
        sa.Column("refused", sa.String(200), nullable=True),
        *(sa.Column(name, sa.Text(), nullable=False) for name in (
            "subject", "from_addr", "to_addr", "cc_addr", "bcc_addr", "sort_subject", "sort_from", "sort_to",
            "sort_cc", "display_from", "display_to")),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("thread_message_id", sa.Text(), nullable=True),
        sa.Column("thread_references", sa.Text(), nullable=False),
    )
    bind = op.get_bind()
    _create_text_table(bind)
    _fill(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS message_anatomy_text_gone")
    op.execute("DROP TABLE IF EXISTS message_anatomy_text")
    op.drop_table("message_anatomy")
