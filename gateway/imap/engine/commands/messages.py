"""STORE, SEARCH, SORT, THREAD, COPY, MOVE, EXPUNGE, APPEND and IDLE (RFC 9051 6.3-6.4, RFC 7162,
RFC 4731, RFC 5182, RFC 5256, RFC 5267 ESORT, RFC 6851, RFC 4315, RFC 3502, RFC 2177); FETCH is in ``fetch``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.imap.engine.backend import uid_set
from gateway.imap.engine.state import Bad, Done, No
from gateway.imap.engine.updates import flags_text
from gateway.imap.proto import commands as c
from gateway.imap.proto import sequence

if TYPE_CHECKING:
    from gateway.imap.engine.session import Session
    from gateway.imap.engine.updates import Selected


def _selected(session: Session) -> Selected:
    """The open folder; the dispatch table calls these commands only in the selected state (RFC 9051 6.4)."""
    selected = session.selected
    assert selected is not None
    return selected


def _writable(selected: Selected) -> None:
    if selected.readonly:
        raise No("The folder is open read-only (EXAMINE).", "CANNOT")


# --- STORE ------------------------------------------------------------------------------------------------------
async def store(session: Session, cmd: c.Store) -> Done:
    selected = _selected(session)
    _writable(selected)
    selected.check_numbers(cmd.sequence, uid=cmd.uid)
    if cmd.unchangedsince is not None:
        session.enabled.add("CONDSTORE")
    uids = selected.resolve(cmd.sequence, uid=cmd.uid)
    flags = frozenset(f for f in cmd.flags if f != "\\Recent")
    if not uids:
        return Done("STORE completed")
    before = set(selected.view.keywords)
    pairs, modified = await selected.view.store_flags(uid_set(uids), uid=True, mode=cmd.mode, flags=flags,
                                                      unchangedsince=cmd.unchangedsince)
    if selected.view.keywords - before:  # RFC 9051 7.3.5: FLAGS first, then the FETCH that uses the keyword
        await selected.send_flags()
    unchanged = cmd.unchangedsince is not None
    for seq, row in pairs:
        if cmd.silent and not (session.condstore and unchanged):
            continue  # RFC 7162 3.1.3: with UNCHANGEDSINCE the new MODSEQ is reported even when silent
        parts = []
        if cmd.uid or session.condstore:
            parts.append(f"UID {row.uid}")
        if not cmd.silent:
            parts.append(f"FLAGS {flags_text(selected.flags_of(row))}")
        if session.condstore:
            parts.append(f"MODSEQ ({row.modseq})")
        await session.untagged(f"{seq} FETCH ({' '.join(parts)})")
    if modified:
        numbers = [uid for _, uid in modified] if cmd.uid else [seq for seq, _ in modified]
        return Done("Some messages were modified meanwhile.", "MODIFIED " + sequence.from_numbers(numbers))
    return Done("STORE completed")


# --- SEARCH / SORT / THREAD -------------------------------------------------------------------------------------
def _answer_numbers(selected: Selected, uids: list[int], uid: bool) -> list[int]:
    if uid:
        return uids
    return [s for s in (selected.seq_of(u) for u in uids) if s is not None]


def _esearch(tag: str, uid: bool, returns: set[str], numbers: list[int], text: Callable[[list[int]], str],
             highest: int | None = None) -> str:
    """The ESEARCH response (RFC 4731 3.1) with the ``returns`` asked for: MIN and MAX are the first and last of
    ``numbers`` (ascending for SEARCH, in the sort's order for ESORT), ALL is ``text(numbers)``."""
    parts = [f'(TAG "{tag}")'] + (["UID"] if uid else [])
    if numbers:
        if "MIN" in returns:
            parts.append(f"MIN {numbers[0]}")
        if "MAX" in returns:
            parts.append(f"MAX {numbers[-1]}")
        if "ALL" in returns:
            parts.append("ALL " + text(numbers))
    if "COUNT" in returns:
        parts.append(f"COUNT {len(numbers)}")
    if highest is not None and numbers:
        parts.append(f"MODSEQ {highest}")
    return "ESEARCH " + " ".join(parts)


async def search(session: Session, cmd: c.Search) -> Done:
    selected = _selected(session)
    if cmd.charset is not None and cmd.charset.upper() not in {"US-ASCII", "UTF-8"}:
        raise No("Only US-ASCII and UTF-8 are supported.", "BADCHARSET (US-ASCII UTF-8)")
    session.backend.saved = session.saved
    uids, highest = await session.backend.search(selected.view, cmd.key)
    numbers = _answer_numbers(selected, uids, cmd.uid)
    if cmd.returns is None:
        line = "SEARCH" + "".join(f" {n}" for n in numbers)
        if highest is not None and numbers:
            line += f" (MODSEQ {highest})"
        await session.untagged(line)
        return Done("SEARCH completed")
    returns = set(cmd.returns) or {"ALL"}
    if "SAVE" in returns:
        session.saved = list(uids)
        returns.discard("SAVE")
        if not returns and cmd.returns != ("SAVE",):
            returns = {"ALL"}
    if not returns:
        return Done("SEARCH completed")
    await session.untagged(_esearch(cmd.tag, cmd.uid, returns, numbers, sequence.from_numbers, highest))
    return Done("SEARCH completed")


async def sort(session: Session, cmd: c.Sort) -> Done:
    selected = _selected(session)
    session.backend.saved = session.saved
    uids = await session.backend.sort(selected.view, cmd.criteria, cmd.key)
    numbers = _answer_numbers(selected, uids, cmd.uid)
    if cmd.returns is None:
        await session.untagged("SORT" + "".join(f" {n}" for n in numbers))
        return Done("SORT completed")
    # ESORT (RFC 5267 3.1): an ESEARCH answer whose MIN and MAX are the first and last in the sort's order, and
    # whose ALL keeps that order; RETURN () asks for ALL, as for SEARCH (RFC 4731 3.1).
    returns = set(cmd.returns) or {"ALL"}
    await session.untagged(_esearch(cmd.tag, cmd.uid, returns, numbers, sequence.in_order))
    return Done("SORT completed")


async def thread(session: Session, cmd: c.Thread) -> Done:
    selected = _selected(session)
    session.backend.saved = session.saved
    text = await session.backend.thread(selected.view, cmd.algorithm, cmd.key, uid=cmd.uid)
    await session.untagged("THREAD" + (" " + text if text else ""))
    return Done("THREAD completed")


# --- COPY / MOVE / EXPUNGE --------------------------------------------------------------------------------------
async def copy(session: Session, cmd: c.Copy | c.Move) -> Done:
    selected = _selected(session)
    move = isinstance(cmd, c.Move)
    if move:
        _writable(selected)
    selected.check_numbers(cmd.sequence, uid=cmd.uid)
    uids = selected.resolve(cmd.sequence, uid=cmd.uid)
    if not uids:
        return Done(f"{'MOVE' if move else 'COPY'} completed")
    result = await selected.view.copy(uid_set(uids), cmd.mailbox, uid=True, move=move,
                                      quota=session.backend.quota_limit)
    code = None
    if result.dest_uids:
        code = (f"COPYUID {result.uidvalidity} {sequence.from_numbers(result.source_uids)} "
                f"{sequence.from_numbers(result.dest_uids)}")
    if move:
        if code is not None:
            await session.untagged(f"OK [{code}] Moved.")  # RFC 6851 4.3: COPYUID before the expunges
            code = None
        await selected.announce(session, expunges=True)
    return Done(f"{'MOVE' if move else 'COPY'} completed", code)


async def move(session: Session, cmd: c.Move) -> Done:
    return await copy(session, cmd)


async def expunge(session: Session, cmd: c.Expunge) -> Done:
    selected = _selected(session)
    _writable(selected)
    uids = cmd.uids
    if uids is not None and uids.saved:
        uids = uid_set(selected.resolve(uids, uid=True))
    await selected.view.expunge(uids)
    await selected.announce(session, expunges=True)
    return Done("EXPUNGE completed")


# --- APPEND -----------------------------------------------------------------------------------------------------
async def append(session: Session, cmd: c.Append) -> Done:
    limit = session.context.message_size
    for message in cmd.messages:
        if len(message.data) > limit:
            raise No("Message larger than this server accepts.", "TOOBIG")
        if not message.data:
            raise No("An empty message cannot be appended.", "CANNOT")
    uidvalidity, uids = await session.backend.append(cmd.mailbox, cmd.messages)
    return Done("APPEND completed", f"APPENDUID {uidvalidity} {sequence.from_numbers(uids)}")


# --- IDLE -------------------------------------------------------------------------------------------------------
async def idle(session: Session, cmd: c.Idle) -> Done:
    """RFC 2177 / RFC 9051 6.3.13: updates pushed as they happen until the client's ``DONE``."""
    await session.send(b"+ idling\r\n")
    selected = session.selected
    line_task = asyncio.ensure_future(session.read_line())
    timers = session.context.timers
    try:
        while True:
            waits: set[asyncio.Future[Any]] = {line_task}
            change: asyncio.Future[Any] | None = None
            if selected is not None:
                change = asyncio.ensure_future(selected.changed.wait())
                waits.add(change)
            done, _ = await asyncio.wait(waits, timeout=timers.account_check or None,
                                         return_when=asyncio.FIRST_COMPLETED)
            if change is not None and not change.done():
                change.cancel()
            if line_task in done:
                line = line_task.result()
                if line.strip().upper() != b"DONE":
                    raise Bad("Expected DONE.", "CLIENTBUG")
                break
            if selected is not None and selected.changed.is_set():
                # A delivery wakes every idler of the folder at once: their reads are shared (ChangeFeed), and
                # the account check keeps its own pace rather than costing each of them a query per change.
                selected.changed.clear()
                await selected.announce(session, expunges=True)
                await session.channel.flush()  # the client is reading, not sending: push the updates now
                await session.check_account()
            else:
                await session.check_account(force=True)
    finally:
        if not line_task.done():
            line_task.cancel()
        elif not line_task.cancelled():
            line_task.exception()  # a client gone while an update was being sent: its Closed is handled above
    if selected is not None:
        await selected.announce(session, expunges=True)
    return Done("IDLE terminated")
