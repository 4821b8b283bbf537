"""Filing jobs: created in the transaction that delivers a message, for the mailboxes configured for filing.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config import Config
from gateway.filing.models import FilingJob
from gateway.store.changes import FILING
from gateway.store.effects import Rows
from gateway.store.events import now

PENDING, DONE, FAILED = "pending", "done", "failed"
FILE, DEPOSIT = "file", "deposit"


def jobs(mailbox_ids: Iterable[int], kind: str = FILE) -> Rows:
    """The jobs of a message being accepted, as an effect the store applies with the message (R10, R12);
    the filing worker is woken at commit."""
    at = now()
    return Rows(FilingJob, tuple(dict(kind=kind, mailbox_id=m, state=PENDING, attempts=0, next_attempt_at=at,
                                      created_at=at) for m in dict.fromkeys(mailbox_ids)), wake=FILING)


def may_carry_documents(raw: bytes) -> bool:
    """A cheap look at the header section and part headers: could this message carry a CDA, a PDF or an XDM?"""
    lowered = raw[:65536].lower()
    return any(marker in lowered for marker in (b"application/", b"text/xml", b"multipart/"))


def wants_deposit(config: Config, sender_is_patient: bool, raw: bytes) -> bool:
    """R12: only what the structure's professionals send is considered for the DMP."""
    return config.dmp is not None and not sender_is_patient and may_carry_documents(raw)


def wants_filing(config: Config, address: str) -> bool:
    """Whether mail delivered to ``address`` is filed: listed mailboxes, or every professional INBOX."""
    settings = config.documents
    if settings is None:
        return False
    return address.lower() in settings.filing_mailboxes or (
        settings.file_all_inboxes and address.rpartition("@")[2] in config.domains)


