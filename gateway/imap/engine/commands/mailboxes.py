"""LIST/LSUB, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, STATUS and QUOTA (RFC 9051 6.3, RFC 5258, RFC 5819,
RFC 6154, RFC 9208).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gateway.imap.engine.state import Done, No
from gateway.imap.proto import commands as c
from gateway.imap.proto import response
from gateway.imap.view.selected import canonical

if TYPE_CHECKING:
    from gateway.imap.engine.backend import FolderEntry
    from gateway.imap.engine.session import Session

DELIMITER = "/"
#: STATUS items we answer (RFC 9051 6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 7889 APPENDLIMIT,
#: RFC 8474 MAILBOXID).
STATUS_ITEMS = frozenset({"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
                          "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID"})
#: The quota root of every account (one root: the whole account, RFC 9208 3).
QUOTA_ROOT = ""


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """A LIST pattern as a regular expression: ``*`` any, ``%`` any but the delimiter (RFC 9051 6.3.9)."""
    full = pattern if pattern.startswith(DELIMITER) or not reference else reference + pattern
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    flags = 0
    text = "".join(out)
    if full.upper().startswith("INBOX"):
        text = "(?i:INBOX)" + "".join(out[5:])
    return re.compile(text, flags | re.DOTALL)


def _attributes(entry: FolderEntry, cmd: c.List) -> list[str]:
    attrs = ["\\HasChildren" if entry.children else "\\HasNoChildren"]
    if entry.subscribed and ("SUBSCRIBED" in cmd.returns or "SUBSCRIBED" in cmd.selection):
        attrs.append("\\Subscribed")
    if entry.special_use:
        attrs.append(entry.special_use)
    return attrs


async def list_(session: Session, cmd: c.List) -> Done:
    if not cmd.lsub and len(cmd.patterns) == 1 and cmd.patterns[0] == "" and not cmd.extended:
        await session.untagged(f'LIST (\\Noselect) "{DELIMITER}" ""')  # RFC 9051 6.3.9: the delimiter query
        return Done("LIST completed")
    backend = session.backend
    entries = await backend.folders()
    patterns = [_pattern(cmd.reference, p) for p in cmd.patterns]
    only_subscribed = cmd.lsub or "SUBSCRIBED" in cmd.selection
    only_special = "SPECIAL-USE" in cmd.selection
    word = "LSUB" if cmd.lsub else "LIST"
    for entry in entries:
        if not any(p.fullmatch(entry.name) for p in patterns):
            continue
        if only_subscribed and not entry.subscribed:
            continue
        if only_special and not entry.special_use:
            continue
        attrs = _attributes(entry, cmd)
        name = response.mailbox(entry.name, session.utf8)
        await session.untagged(f"{word} ({' '.join(attrs)}) \"{DELIMITER}\" ".encode() + name)
        if cmd.status and not cmd.lsub:
            await _status_line(session, entry.name, cmd.status)
    if cmd.lsub:
        await _lsub_superiors(session, entries, patterns)
    return Done(f"{word} completed")


async def _lsub_superiors(session: Session, entries: list[FolderEntry], patterns: list[re.Pattern[str]]) -> None:
    """RFC 3501 6.3.9: a ``%`` that stops above a subscribed folder names its unsubscribed superior, with
    ``\\Noselect`` (the client learns there is something subscribed below)."""
    subscribed = {entry.name for entry in entries if entry.subscribed}
    shown: set[str] = set()
    for name in sorted(subscribed):
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            superior = DELIMITER.join(parts[:depth])
            if superior in subscribed or superior in shown or not any(p.fullmatch(superior) for p in patterns):
                continue
            shown.add(superior)
            await session.untagged(f'LSUB (\\Noselect) "{DELIMITER}" '.encode() +
                                   response.mailbox(superior, session.utf8))


async def _status_line(session: Session, name: str, items: tuple[str, ...]) -> None:
    values = await session.backend.status(name, [i for i in items if i in STATUS_ITEMS])
    selected = session.selected
    if "RECENT" in values and selected is not None and session.selected_name is not None and (
            canonical(session.selected_name) == canonical(name)):
        # The store counts what no session claimed yet; what this session claimed is \Recent here too
        # (RFC 3501 2.3.2), so STATUS agrees with SELECT's RECENT and SEARCH RECENT.
        values["RECENT"] = int(values["RECENT"]) + selected.view.recent
    pieces = []
    for item in items:
        if item not in values:
            continue
        value = values[item]
        pieces.append(f"{item} ({value})" if item == "MAILBOXID" else f"{item} {value}")
    await session.untagged(b"STATUS " + response.mailbox(name, session.utf8) + b" (" +
                           " ".join(pieces).encode() + b")")


async def status(session: Session, cmd: c.Status) -> Done:
    unknown = [i for i in cmd.items if i not in STATUS_ITEMS]
    if unknown:
        raise No(f"Unknown STATUS item {unknown[0]}.", "CLIENTBUG")
    await _status_line(session, cmd.mailbox, cmd.items)
    return Done("STATUS completed")


async def create(session: Session, cmd: c.Create) -> Done:
    name = cmd.mailbox.rstrip(DELIMITER)  # RFC 9051 6.3.4: a trailing delimiter only declares the intent
    if not name or name.upper() == "INBOX":
        raise No("This folder exists already.", "ALREADYEXISTS")
    await session.backend.create(name, cmd.special_use)
    return Done("CREATE completed")


async def delete(session: Session, cmd: c.Delete) -> Done:
    await session.backend.delete(cmd.mailbox)
    return Done("DELETE completed")


async def rename(session: Session, cmd: c.Rename) -> Done:
    await session.backend.rename(cmd.old, cmd.new.rstrip(DELIMITER))
    return Done("RENAME completed")


async def subscribe(session: Session, cmd: c.Subscribe) -> Done:
    await session.backend.subscribe(cmd.mailbox, True)
    return Done("SUBSCRIBE completed")


async def unsubscribe(session: Session, cmd: c.Unsubscribe) -> Done:
    await session.backend.subscribe(cmd.mailbox, False)
    return Done("UNSUBSCRIBE completed")


async def _quota_line(session: Session) -> None:
    used, limit = await session.backend.quota()
    if limit is None:
        await session.untagged('QUOTA "" ()')
        return
    # RFC 9208 5.1: STORAGE in units of 1024 octets, the usage rounded up (a started KiB is used).
    await session.untagged(f'QUOTA "" (STORAGE {(used + 1023) // 1024} {limit // 1024})')


async def getquota(session: Session, cmd: c.GetQuota) -> Done:
    if cmd.root != QUOTA_ROOT:
        raise No("No such quota root.", "NONEXISTENT")
    await _quota_line(session)
    return Done("GETQUOTA completed")


async def getquotaroot(session: Session, cmd: c.GetQuotaRoot) -> Done:
    await session.backend.status(cmd.mailbox, [])  # NONEXISTENT for an unknown folder
    await session.untagged(b"QUOTAROOT " + response.mailbox(cmd.mailbox, session.utf8) + b' ""')
    await _quota_line(session)
    return Done("GETQUOTAROOT completed")


async def setquota(session: Session, cmd: c.SetQuota) -> Done:
    """Quotas are set by the operator (``gateway`` commands), never by the account (RFC 9208 4.1)."""
    raise No("Quotas are managed by the gateway's administration.", "NOPERM")

