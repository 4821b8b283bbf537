"""An account's folders: LIST data, CREATE, DELETE, RENAME, SUBSCRIBE and STATUS, each query scoped to the account.

Names use ``/`` as hierarchy delimiter; ``INBOX`` is case-insensitive (RFC 9051 5.1). Creating ``a/b/c``
creates the missing superiors (RFC 9051 6.3.4) and ``name/`` means ``name``. RENAME moves the children with the
folder and keeps UIDs and UIDVALIDITY; renaming INBOX moves its messages into a new folder and leaves INBOX
empty (RFC 9051 6.3.6). Every STATUS item is one indexed query, made only when asked.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.models import ExpungedUid
from gateway.imap.view import flags as flagops
from gateway.imap.view.errors import AlreadyExists, MailboxNotFound, NotAllowed
from gateway.imap.view.selected import canonical, mailbox_object_id
from gateway.imap.view.store import ViewStore
from gateway.store import mailstore
from gateway.store.events import now, record
from gateway.store.models import Delivery, Folder, Message

#: Hierarchy delimiter of folder names.
DELIMITER = "/"
#: Longest folder name (the column holds 400 characters).
MAX_FOLDER_NAME = 400
#: Most folders one account may have: LIST stays cheap and a client cannot fill the table.
MAX_FOLDERS = 1000
#: Folders the account cannot delete or rename (clients and SMTP rely on them); INBOX may be renamed.
PROTECTED = frozenset(name for name, _ in mailstore.DEFAULT_FOLDERS)
#: Special-use attributes CREATE accepts (RFC 6154 2; ``\\All`` and ``\\Flagged`` are virtual, not offered).
SPECIAL_USES = frozenset({"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"})
#: STATUS items the view answers (RFC 9051 6.3.11, RFC 7162 3.1.6, RFC 8438, RFC 8474 4).
STATUS_ITEMS = frozenset({"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
                          "HIGHESTMODSEQ", "MAILBOXID"})


@dataclass(frozen=True)
class FolderEntry:
    """One LIST line: ``exists`` False for a superior that is only implied by a child (``\\NonExistent``)."""

    name: str
    special_use: str | None
    subscribed: bool
    children: bool
    exists: bool = True
    folder_id: int | None = None


@dataclass(frozen=True)
class FolderInfo:
    folder_id: int
    name: str
    uidvalidity: int
    special_use: str | None

    @property
    def mailbox_id(self) -> str:
        return mailbox_object_id(self.folder_id)


def check_name(name: str) -> str:
    """The canonical form of a name a client may create, or ``NotAllowed`` (names that confuse the hierarchy)."""
    if name.endswith(DELIMITER) and len(name) > 1:
        name = name.rstrip(DELIMITER)
    name = canonical(name)
    if (not name or len(name) > MAX_FOLDER_NAME or any(ord(c) < 32 or c == "\x7f" for c in name)
            or name.startswith(DELIMITER) or DELIMITER * 2 in name
            or any(part in {".", ".."} for part in name.split(DELIMITER)) or "*" in name or "%" in name):
        raise NotAllowed("That mailbox name is not allowed.")
    if name.upper().startswith("INBOX" + DELIMITER):
        name = "INBOX" + name[5:]
    return name


def superiors(name: str) -> list[str]:
    """``a/b/c`` → ``["a", "a/b"]``."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:n]) for n in range(1, len(parts))]


def entries(rows: Iterable[tuple[int, str, str | None, bool]]) -> list[FolderEntry]:
    """LIST data from the folder rows, with implied superiors, sorted by name (INBOX first)."""
    existing = {name: (folder_id, special, subscribed) for folder_id, name, special, subscribed in rows}
    names = set(existing)
    implied = {sup for name in names for sup in superiors(name)} - names
    parents = {sup for name in names | implied for sup in superiors(name)} | {
        name.rsplit(DELIMITER, 1)[0] for name in names | implied if DELIMITER in name}
    out = []
    for name in sorted(names | implied, key=lambda n: (n != "INBOX", n)):
        if name in existing:
            folder_id, special, subscribed = existing[name]
            out.append(FolderEntry(name, special, subscribed, name in parents, True, folder_id))
        else:
            out.append(FolderEntry(name, None, False, True, False))
    return out


class Folders:
    """The folders of one account (every query filtered by ``account_id``)."""

    def __init__(self, store: ViewStore, account_id: int) -> None:
        self.store = store
        self.account_id = account_id

    async def _rows(self, session: AsyncSession) -> list[tuple[int, str, str | None, bool]]:
        result = await session.execute(select(Folder.id, Folder.name, Folder.special_use, Folder.subscribed)
                                       .where(Folder.mailbox_id == self.account_id))
        return [(int(r.id), r.name, r.special_use, bool(r.subscribed)) for r in result]

    async def list(self) -> list[FolderEntry]:
        """Every folder for LIST / LSUB (the engine matches patterns; RFC 9051 6.3.9, RFC 5258, RFC 6154)."""
        return entries(await self.store.read(self._rows, "listing mailboxes"))

    async def get(self, name: str) -> FolderInfo:
        name = canonical(name)

        async def work(session: AsyncSession) -> FolderInfo:
            row = (await session.execute(select(Folder.id, Folder.uidvalidity, Folder.special_use).where(
                Folder.mailbox_id == self.account_id, Folder.name == name))).one_or_none()
            if row is None:
                raise MailboxNotFound(f"There is no mailbox named {name}.")
            return FolderInfo(int(row.id), name, int(row.uidvalidity), row.special_use)

        return await self.store.read(work, "reading a mailbox")

    async def create(self, name: str, special_use: Iterable[str] = ()) -> FolderInfo:
        """CREATE (RFC 9051 6.3.4) with CREATE-SPECIAL-USE (RFC 6154 3); missing superiors are created too."""
        name = check_name(name)
        uses = tuple(special_use)
        if len(uses) > 1 or any(use not in SPECIAL_USES for use in uses):
            raise NotAllowed("That special-use attribute is not supported here.", code="USEATTR")
        special = uses[0] if uses else None

        async def work(session: AsyncSession) -> FolderInfo:
            existing = {row[1] for row in await self._rows(session)}
            if name in existing:
                raise AlreadyExists(f"A mailbox named {name} exists already.")
            missing = [n for n in (*superiors(name), name) if n not in existing]
            if len(existing) + len(missing) > MAX_FOLDERS:
                raise NotAllowed(f"An account holds at most {MAX_FOLDERS} mailboxes.", code="LIMIT")
            folder_id = 0
            for folder_name in missing:
                folder_id = await mailstore.create_folder(session, self.account_id, folder_name,
                                                          special if folder_name == name else None)
            uidvalidity = (await session.execute(select(Folder.uidvalidity).where(Folder.id == folder_id))).scalar_one()
            return FolderInfo(folder_id, name, int(uidvalidity), special)

        try:
            return await self.store.write(work, "creating a mailbox")
        except IntegrityError as exc:  # a concurrent CREATE of the same name won the unique constraint
            raise AlreadyExists(f"A mailbox named {name} exists already.") from exc

    async def delete(self, name: str) -> None:
        """DELETE (RFC 9051 6.3.5): the folder and its deliveries go (the stored bytes stay for the trail, R18);
        its children stay, their superior then listed as ``\\NonExistent``."""
        name = canonical(name)
        if name in PROTECTED:
            raise NotAllowed(f"The {name} mailbox cannot be deleted.")

        async def work(session: AsyncSession) -> None:
            folder = (await session.execute(select(Folder.id).where(
                Folder.mailbox_id == self.account_id, Folder.name == name))).scalar_one_or_none()
            if folder is None:
                raise MailboxNotFound(f"There is no mailbox named {name}.")
            removed = (await session.execute(select(func.count()).where(Delivery.folder_id == folder))).scalar_one()
            await session.execute(delete(Delivery).where(Delivery.folder_id == folder))
            await session.execute(delete(ExpungedUid).where(ExpungedUid.folder_id == folder))
            await session.execute(delete(Folder).where(Folder.id == folder))
            await record(session, "imap.folder_deleted", "ok", rule="R18", mailbox_id=self.account_id,
                         folder_id=folder, count=removed)
            self.store.uid_cache.drop(folder)
            from gateway.store.changes import mark_changed

            mark_changed(session, folder)

        await self.store.write(work, "deleting a mailbox")

    async def rename(self, old: str, new: str) -> None:
        """RENAME (RFC 9051 6.3.6) with the children; INBOX's messages move to a new folder instead."""
        old, new = canonical(old), check_name(new)
        if old != "INBOX" and old in PROTECTED:
            raise NotAllowed(f"The {old} mailbox cannot be renamed.")

        async def work(session: AsyncSession) -> None:
            rows = await self._rows(session)
            names = {name: folder_id for folder_id, name, _, _ in rows}
            if old not in names:
                raise MailboxNotFound(f"There is no mailbox named {old}.")
            if new in names:
                raise AlreadyExists(f"A mailbox named {new} exists already.")
            if old == "INBOX":
                await self._rename_inbox(session, names, new)
                return
            if new.startswith(old + DELIMITER):
                raise NotAllowed("A mailbox cannot be renamed into itself.")
            moving = {name: folder_id for name, folder_id in names.items()
                      if name == old or name.startswith(old + DELIMITER)}
            targets = {new + name[len(old):]: folder_id for name, folder_id in moving.items()}
            for target in targets:
                check_name(target)
                if target in names:
                    raise AlreadyExists(f"A mailbox named {target} exists already.")
            creating = [s for s in superiors(new) if s not in names]
            if len(names) + len(creating) > MAX_FOLDERS:
                raise NotAllowed(f"An account holds at most {MAX_FOLDERS} mailboxes.", code="LIMIT")
            # Through temporary names, so a child's new name never collides with a not-yet-renamed sibling.
            for folder_id in targets.values():
                await session.execute(update(Folder).where(Folder.id == folder_id).values(name=f"\x7f{folder_id}"))
            for target, folder_id in targets.items():
                await session.execute(update(Folder).where(Folder.id == folder_id).values(name=target))
            for superior in creating:
                await mailstore.create_folder(session, self.account_id, superior)

        await self.store.write(work, "renaming a mailbox")

    async def _rename_inbox(self, session: AsyncSession, names: dict[str, int], new: str) -> None:
        """INBOX's messages move, with their UIDs, to a new folder ``new``; INBOX sees them expunged."""
        inbox = names["INBOX"]
        for superior in superiors(new):
            if superior not in names:
                await mailstore.create_folder(session, self.account_id, superior)
        counters = (await session.execute(select(Folder.uidnext, Folder.highestmodseq).where(
            Folder.id == inbox))).one()
        target = await mailstore.create_folder(session, self.account_id, new)
        await session.execute(update(Folder).where(Folder.id == target).values(
            uidnext=counters.uidnext, highestmodseq=counters.highestmodseq, recent_uid=counters.uidnext - 1))
        modseq = await flagops.bump_modseq(session, inbox)
        await session.execute(insert(ExpungedUid).from_select(
            ["folder_id", "uid", "modseq", "expunged_at"],
            select(Delivery.folder_id, Delivery.uid, literal(modseq), literal(now()))
            .where(Delivery.folder_id == inbox)))
        await session.execute(update(Delivery).where(Delivery.folder_id == inbox).values(folder_id=target))
        from gateway.store.changes import mark_changed

        mark_changed(session, target)
        self.store.uid_cache.drop(inbox)

    async def subscribe(self, name: str, subscribed: bool = True) -> None:
        """SUBSCRIBE / UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8)."""
        name = canonical(name)

        async def work(session: AsyncSession) -> None:
            result = await session.execute(update(Folder).where(
                Folder.mailbox_id == self.account_id, Folder.name == name).values(subscribed=subscribed)
                .returning(Folder.id))
            if result.scalar_one_or_none() is None:
                raise MailboxNotFound(f"There is no mailbox named {name}.")

        await self.store.write(work, "subscribing")

    async def status(self, name: str, items: Iterable[str]) -> dict[str, int | str]:
        """STATUS (RFC 9051 6.3.11): each asked item from one indexed query; RECENT counts the messages no
        session was told about yet (above ``recent_uid``), which the next SELECT will see as ``\\Recent``."""
        name = canonical(name)
        wanted = [item.upper() for item in items]
        unknown = set(wanted) - STATUS_ITEMS
        if unknown:
            raise NotAllowed(f"Unknown STATUS item {sorted(unknown)[0]}.")

        async def work(session: AsyncSession) -> dict[str, int | str]:
            row = (await session.execute(select(
                Folder.id, Folder.uidnext, Folder.uidvalidity, Folder.highestmodseq, Folder.recent_uid).where(
                Folder.mailbox_id == self.account_id, Folder.name == name))).one_or_none()
            if row is None:
                raise MailboxNotFound(f"There is no mailbox named {name}.")
            of_folder = Delivery.folder_id == row.id
            out: dict[str, int | str] = {}
            for item in wanted:
                if item == "MESSAGES":
                    out[item] = (await session.execute(select(func.count()).where(of_folder))).scalar_one()
                elif item == "UIDNEXT":
                    out[item] = int(row.uidnext)
                elif item == "UIDVALIDITY":
                    out[item] = int(row.uidvalidity)
                elif item == "HIGHESTMODSEQ":
                    out[item] = int(row.highestmodseq)
                elif item == "MAILBOXID":
                    out[item] = mailbox_object_id(int(row.id))
                elif item == "UNSEEN":
                    out[item] = (await session.execute(select(func.count()).where(
                        of_folder, Delivery.seen.is_(False)))).scalar_one()
                elif item == "DELETED":
                    out[item] = (await session.execute(select(func.count()).where(
                        of_folder, flagops.has_flag("\\Deleted")))).scalar_one()
                elif item == "RECENT":
                    out[item] = (await session.execute(select(func.count()).where(
                        of_folder, Delivery.uid > row.recent_uid))).scalar_one()
                elif item == "SIZE":
                    out[item] = int((await session.execute(
                        select(func.coalesce(func.sum(Message.size), 0)).select_from(Delivery)
                        .join(Message, Message.id == Delivery.message_id).where(of_folder))).scalar_one())
            return out

        return await self.store.read(work, "reading mailbox status")
