"""STORE: flags set, added or removed on many messages in one transaction, each changed message at a new MODSEQ.

Flags are compared case-insensitively (RFC 9051 2.3.2) and keep the case first stored. ``\\Recent`` is a session
flag and never stored. ``UNCHANGEDSINCE`` (RFC 7162 3.1.3) leaves a message whose MODSEQ is above it alone and
reports it as MODIFIED. The ``seen`` column is written with ``flags``, always.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.view import fast
from gateway.imap.view.errors import MailboxNotFound, NotAllowed
from gateway.imap.view.rows import Row, parse_flags, uid_condition
from gateway.imap.view.store import chunks
from gateway.store.changes import mark_changed
from gateway.store.models import Delivery, Folder

Mode = Literal["set", "add", "remove"]
RECENT = "\\Recent"
#: The system flags a client may store (RFC 9051 2.3.2); ``\\Recent`` is not among them.
SYSTEM_FLAGS = ("\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen")
#: Longest stored flags text (the column is 1000 characters): beyond it STORE is refused with ``LIMIT``.
MAX_FLAGS_TEXT = 1000


def is_seen(flags: Iterable[str]) -> bool:
    return any(flag.lower() == "\\seen" for flag in flags)


def apply(current: Sequence[str], mode: Mode, flags: Iterable[str]) -> tuple[str, ...]:
    """The flags after a STORE, case-insensitive, sorted; ``\\Recent`` dropped."""
    given = {flag.lower(): flag for flag in flags if flag.lower() != RECENT.lower()}
    have = {flag.lower(): flag for flag in current}
    if mode == "set":
        result = {key: have.get(key, value) for key, value in given.items()}
    elif mode == "add":
        result = {**{key: value for key, value in given.items() if key not in have}, **have}
    else:
        result = {key: value for key, value in have.items() if key not in given}
    return tuple(sorted(result.values()))


def format_flags(flags: Iterable[str]) -> str:
    text = " ".join(sorted(flags))
    if len(text) > MAX_FLAGS_TEXT:
        raise NotAllowed("Too many flags or keywords on one message.", code="LIMIT")
    return text


def has_flag(flag: str) -> ColumnElement[bool]:
    """Whether the flags column holds ``flag`` as a whole word, case-insensitive (LIKE, with ``!`` as escape)."""
    escaped = flag.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    padded = literal(" ").concat(func.lower(Delivery.flags)).concat(literal(" "))
    return padded.like(f"% {escaped} %", escape="!")


async def bump_modseq(session: AsyncSession, folder_id: int) -> int:
    """A new MODSEQ for the folder; the row update orders this transaction after concurrent writers."""
    result = await session.execute(update(Folder).where(Folder.id == folder_id)
                                   .values(highestmodseq=Folder.highestmodseq + 1).returning(Folder.highestmodseq))
    modseq = result.scalar_one_or_none()
    if modseq is None:
        raise MailboxNotFound("The selected mailbox no longer exists.")
    mark_changed(session, folder_id)
    return int(modseq)


@dataclass(frozen=True)
class StoreResult:
    """Every named message still present with its flags and MODSEQ after the STORE, and those left alone
    because they changed after ``UNCHANGEDSINCE`` (their UIDs, for the ``MODIFIED`` response code)."""

    rows: list[Row]
    modified: list[int]


async def store_flags(session: AsyncSession, folder_id: int, spans: Sequence[tuple[int, int]], mode: Mode,
                      flags: Iterable[str], unchangedsince: int | None = None) -> StoreResult:
    """STORE on the messages of the UID ``spans`` (in the caller's transaction); on SQLite every statement of it
    (read, new MODSEQ, one UPDATE per resulting flags text) in one hop on the writer's connection."""
    wanted = tuple(flags)
    done, outcome = await fast.on_writer(
        session, lambda c: store_sqlite(c, folder_id, spans, mode, wanted, unchangedsince))
    if done and outcome is not None:
        stored, changed = outcome
        if changed:
            mark_changed(session, folder_id)
        return stored
    rows: list[tuple[int, int, str, int]] = []
    for part in chunks(spans):  # the session path (PostgreSQL); store_sqlite is the same on SQLite
        result = await session.execute(
            select(Delivery.id, Delivery.uid, Delivery.flags, Delivery.modseq)
            .where(Delivery.folder_id == folder_id, uid_condition(part)).order_by(Delivery.uid))
        rows.extend((r.id, r.uid, r.flags, r.modseq) for r in result)
    modified, after, by_text = _plan(rows, mode, wanted, unchangedsince)
    modseq_now = await bump_modseq(session, folder_id) if by_text else None
    changed_ids = {delivery_id for ids in by_text.values() for delivery_id in ids}
    for text, ids in by_text.items():
        for part_ids in chunks(ids):
            await session.execute(update(Delivery).where(Delivery.id.in_(part_ids))
                                  .values(flags=text, seen=is_seen(text.split()), modseq=modseq_now))
    out = [Row(uid, after[uid], modseq_now if delivery_id in changed_ids else modseq)
           for delivery_id, uid, _, modseq in rows if uid in after]
    return StoreResult(out, modified)


def _plan(rows: Sequence[tuple[int, int, str, int]], mode: Mode, wanted: tuple[str, ...],
          unchangedsince: int | None) -> tuple[list[int], dict[int, tuple[str, ...]], dict[str, list[int]]]:
    """What a STORE changes: UIDs left alone (``MODIFIED``), each row's flags after it, delivery ids by new text."""
    modified: list[int] = []
    after: dict[int, tuple[str, ...]] = {}
    by_text: dict[str, list[int]] = defaultdict(list)
    for delivery_id, uid, text, modseq in rows:
        if unchangedsince is not None and modseq > unchangedsince:
            modified.append(uid)
            continue
        before = parse_flags(text)
        new = apply(before, mode, wanted)
        after[uid] = new
        if new != before:
            by_text[format_flags(new)].append(delivery_id)
    return modified, after, by_text


def store_sqlite(connection: sqlite3.Connection, folder_id: int, spans: Sequence[tuple[int, int]], mode: Mode,
                 wanted: tuple[str, ...], unchangedsince: int | None) -> tuple[StoreResult, bool]:
    """:func:`store_flags` on SQLite, in plain statements on ``connection`` (inside its write transaction); the
    result and whether anything changed (the folder's new MODSEQ)."""
    rows = fast.flag_rows(connection, folder_id, spans)
    modified, after, by_text = _plan(rows, mode, wanted, unchangedsince)
    modseq_now = None
    if by_text:
        modseq_now = fast.bump_modseq(connection, folder_id)
        if modseq_now is None:
            raise MailboxNotFound("The selected mailbox no longer exists.")
        fast.set_flags(connection, by_text, modseq_now, lambda text: is_seen(text.split()))
    changed_ids = {delivery_id for ids in by_text.values() for delivery_id in ids}
    out = [Row(uid, after[uid], modseq_now if delivery_id in changed_ids else modseq)
           for delivery_id, uid, _, modseq in rows if uid in after]
    return StoreResult(out, modified), bool(by_text)
