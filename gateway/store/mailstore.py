"""Mailboxes, folders, messages and deliveries: the writes SMTP and the administration commands share."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.anatomy import index_messages  # each message's anatomy, in the transaction storing it
from gateway.store.changes import mark_changed
from gateway.store.events import now
from gateway.store.models import Delivery, Folder, Mailbox, Message

#: The folders every account starts with, and their RFC 6154 special-use attribute.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Archive", "\\Archive"),
)
MAILBOX_KINDS = {"PER": "professional", "ORG": "organisational", "APP": "applicative", "PAT": "patient"}


def new_uidvalidity() -> int:
    """A fresh UIDVALIDITY: never reused for a name, so clients resynchronise after a delete and re-create."""
    return int(now().timestamp()) * 1000 % 4_000_000_000 + random.randint(1, 999)


async def create_folder(session: AsyncSession, mailbox_id: int, name: str, special_use: str | None = None) -> int:
    result = await session.execute(insert(Folder).values(
        mailbox_id=mailbox_id, name=name, special_use=special_use, uidvalidity=new_uidvalidity(),
        uidnext=1, highestmodseq=1, subscribed=True,
    ).returning(Folder.id))
    return result.scalar_one()


async def create_mailbox(
    session: AsyncSession,
    address: str,
    kind: str,
    *,
    display_name: str = "",
    password_hash: str | None = None,
    matricule: str | None = None,
    certificate_fingerprint: str | None = None,
) -> int:
    """Create an account with its default folders; returns its id."""
    if kind not in MAILBOX_KINDS:
        raise ValueError(f"mailbox kind must be one of {', '.join(MAILBOX_KINDS)}")
    result = await session.execute(insert(Mailbox).values(
        address=address.lower(), kind=kind, display_name=display_name, password_hash=password_hash,
        active=True, matricule=matricule, certificate_fingerprint=certificate_fingerprint, created_at=now(),
    ).returning(Mailbox.id))
    mailbox_id = result.scalar_one()
    for name, special in DEFAULT_FOLDERS:
        await create_folder(session, mailbox_id, name, special)
    return mailbox_id


async def mailbox_by_address(session: AsyncSession, address: str) -> Mailbox | None:
    query = select(Mailbox).where(Mailbox.address == address.lower())
    return (await session.execute(query)).scalar_one_or_none()


async def folder_id(session: AsyncSession, mailbox_id: int, name: str) -> int:
    query = select(Folder.id).where(Folder.mailbox_id == mailbox_id, Folder.name == name)
    return (await session.execute(query)).scalar_one()


@dataclass(frozen=True)
class StoredMessage:
    raw: bytes
    mail_from: str
    rcpt_to: list[str]
    sender_mailbox_id: int | None
    message_id_header: str | None
    subject: str | None
    header_from: str | None


async def store_message(session: AsyncSession, message: StoredMessage) -> int:
    result = await session.execute(insert(Message).values(
        received_at=now(), sender_mailbox_id=message.sender_mailbox_id, mail_from=message.mail_from,
        rcpt_to=message.rcpt_to, message_id_header=message.message_id_header, subject=message.subject,
        header_from=message.header_from, size=len(message.raw), raw=message.raw,
    ).returning(Message.id))
    message_id: int = result.scalar_one()
    await index_messages(session, [(message_id, message.raw)])
    return message_id


async def allocate_uid(session: AsyncSession, folder: int) -> tuple[int, int]:
    """Take the folder's next UID and a new MODSEQ in one row update (the row lock orders concurrent writers)."""
    result = await session.execute(
        update(Folder).where(Folder.id == folder)
        .values(uidnext=Folder.uidnext + 1, highestmodseq=Folder.highestmodseq + 1)
        .returning(Folder.uidnext, Folder.highestmodseq)
    )
    uidnext, modseq = result.one()
    return uidnext - 1, modseq


def is_seen(flags: str) -> bool:
    """Whether a flags column value ("\\Seen $Label1") has ``\\Seen``: the ``seen`` column written beside it."""
    return "\\seen" in flags.lower().split()


async def deliver(
    session: AsyncSession, message_id: int, folder: int, flags: str = "", internal_date: datetime | None = None
) -> int:
    """Put a stored message into a folder; returns its UID there."""
    uid, modseq = await allocate_uid(session, folder)
    await session.execute(insert(Delivery).values(
        folder_id=folder, message_id=message_id, uid=uid, flags=flags, seen=is_seen(flags), modseq=modseq,
        internal_date=internal_date or now(),
    ))
    mark_changed(session, folder)
    return uid
