"""Storage quota of an account (RFC 9208): the sizes of the messages in its folders, against a limit in bytes.

The limit is a setting the engine passes in (bytes per account); one quota root, ``""``, holds every folder of
the account. A message filed in two folders counts twice: each copy is what the user sees and can remove.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.view.errors import OverQuota
from gateway.imap.view.store import ViewStore
from gateway.store.models import Delivery, Folder, Mailbox
from gateway.store.recipients import stored_bytes

#: The one quota root of an account (RFC 9208 3.1).
ROOT = ""


@dataclass(frozen=True)
class Usage:
    """What GETQUOTA reports: bytes used (STORAGE is in units of 1024 octets, RFC 9208 5.1) and the limit."""

    used_bytes: int
    messages: int
    limit_bytes: int | None

    @property
    def storage_kib(self) -> int:
        return (self.used_bytes + 1023) // 1024

    @property
    def limit_kib(self) -> int | None:
        return None if self.limit_bytes is None else self.limit_bytes // 1024


async def used_bytes(session: AsyncSession, account_id: int) -> int:
    """The sizes of every delivery of the account: the same sum SMTP's RCPT check reads (one definition)."""
    return await stored_bytes(session, account_id)


def limit_of(setting: int) -> int | None:
    """``limits.mailbox_quota`` as the view takes it: 0 means no quota (None)."""
    return setting if setting > 0 else None


async def lock_account(session: AsyncSession, account_id: int) -> None:
    """Serialise quota checks of one account (PostgreSQL row lock; SQLite's writer lock already is global)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Mailbox.id).where(Mailbox.id == account_id).with_for_update())


async def check(session: AsyncSession, account_id: int, adding: int, limit: int | None) -> None:
    """Refuse ``adding`` bytes that would take the account over ``limit`` (RFC 9208 4.1 ``OVERQUOTA``)."""
    if limit is None or adding <= 0:
        return
    await lock_account(session, account_id)
    used = await used_bytes(session, account_id)
    if used + adding > limit:
        raise OverQuota(f"The mailbox is full ({used // 1024} KiB of {limit // 1024} KiB used); "
                        "delete or move messages and try again.")


async def usage(store: ViewStore, account_id: int, limit: int | None) -> Usage:
    """GETQUOTA / GETQUOTAROOT for the account (RFC 9208 4.2, 4.3)."""

    async def work(session: AsyncSession) -> Usage:
        used = await used_bytes(session, account_id)
        count = (await session.execute(select(func.count()).select_from(Folder)
                                       .join(Delivery, Delivery.folder_id == Folder.id)
                                       .where(Folder.mailbox_id == account_id))).scalar_one()
        return Usage(used, int(count), limit)

    return await store.read(work, "reading the quota")
