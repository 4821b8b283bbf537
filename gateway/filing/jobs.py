"""Filing jobs: created in the transaction that delivers a message, for the mailboxes configured for filing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Config
from gateway.filing.models import FilingJob
from gateway.store.events import now

PENDING, DONE, FAILED = "pending", "done", "failed"


def job_rows(message_id: int, mailbox_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Filing jobs for a message just delivered to these mailboxes (insert them in the same transaction)."""
    at = now()
    return [dict(message_id=message_id, mailbox_id=m, state=PENDING, attempts=0, next_attempt_at=at,
                 created_at=at) for m in dict.fromkeys(mailbox_ids)]


async def enqueue(session: AsyncSession, message_id: int, mailbox_ids: Iterable[int]) -> None:
    rows = job_rows(message_id, mailbox_ids)
    if rows:
        await session.execute(insert(FilingJob), rows)


def wants_filing(config: Config, address: str) -> bool:
    """Whether mail delivered to ``address`` is filed: listed mailboxes, or every professional INBOX."""
    settings = config.documents
    if settings is None:
        return False
    return address.lower() in settings.filing_mailboxes or (
        settings.file_all_inboxes and address.rpartition("@")[2] in config.domains)


