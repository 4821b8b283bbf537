"""FETCH, STORE, SEARCH, SORT, THREAD, COPY, MOVE, EXPUNGE, APPEND and IDLE (RFC 9051 6.3-6.4, RFC 7162,
RFC 4731, RFC 5182, RFC 5256, RFC 6851, RFC 4315, RFC 3502, RFC 3516, RFC 2177).

FETCH answers are produced and written one message at a time (``drain()`` after each): a ``FETCH 1:*
(BODY[])`` of a large folder never sits in memory whole, and a slow client holds the producer back.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.imap.engine.backend import uid_set
from gateway.imap.engine.state import Bad, Done, No
from gateway.imap.engine.updates import flags_text
from gateway.imap.proto import commands as c
from gateway.imap.proto import response, sequence
from gateway.imap.proto.fetch import FetchItem

if TYPE_CHECKING:
    from gateway.imap.engine.session import Session
    from gateway.imap.engine.updates import Selected

#: Messages whose rows are read in one query while FETCH streams (bounded memory, few round trips).
FETCH_BATCH = 200
#: Items read from the row alone (no message content): FETCHes of only these read and write in larger steps.
_LIGHT_ITEMS = frozenset({"UID", "FLAGS", "MODSEQ"})
#: Messages per store read for such a FETCH, and response lines per write.
LIGHT_BATCH = 5000
LIGHT_LINES = 1000
#: Largest piece of a literal handed to the transport at once, each followed by ``drain()`` (RFC 9051 5.5).
WRITE_CHUNK = 64 * 1024
#: A body section larger than this is read from PostgreSQL range by range while it is written, not whole.
STREAM_ABOVE = 1024 * 1024
#: Bytes of such a section read from the store at a time.
STREAM_READ = 1024 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Items that need the stored anatomy (body structure / envelope / part offsets).
_ANATOMY_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY", "BINARY", "BINARY.SIZE", "RFC822",
                            "RFC822.HEADER", "RFC822.TEXT", "PREVIEW"})


def internal_date(value: datetime) -> str:
    """RFC 9051 9 ``date-time``: ``"17-Jul-1996 02:44:25 -0700"`` (we keep UTC)."""
    value = value.astimezone(UTC)
    return f'"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d} {value:%H:%M:%S} +0000"'


def _selected(session: Session) -> Selected:
    selected = session.selected
    assert selected is not None
    return selected


def _writable(selected: Selected) -> None:
    if selected.readonly:
        raise No("The folder is open read-only (EXAMINE).", "CANNOT")


# --- FETCH ------------------------------------------------------------------------------------------------------
def _columns(items: tuple[FetchItem, ...], condstore: bool) -> set[str]:
    columns = {"flags"}
    for item in items:
        name = item.name
        if name == "MODSEQ" or condstore:
            columns.add("modseq")
        if name in {"INTERNALDATE", "SAVEDATE"}:
            columns.add("internal_date")
        if name in {"RFC822.SIZE"}:
            columns.add("size")
        if name in _ANATOMY_ITEMS or name in {"EMAILID", "THREADID"}:
            columns.add("message_id")
        if name in _ANATOMY_ITEMS:
            columns.update({"anatomy", "size"})
    return columns


async def fetch(session: Session, cmd: c.Fetch) -> Done:
    selected = _selected(session)
    selected.check_numbers(cmd.sequence, uid=cmd.uid)
    if cmd.changedsince is not None:
        session.enabled.add("CONDSTORE")  # RFC 7162 3.1: CHANGEDSINCE is a CONDSTORE-enabling command
    if cmd.vanished and (not cmd.uid or cmd.changedsince is None or not session.qresync):
        raise Bad("VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled (RFC 7162 3.2.6).", "CLIENTBUG")
    items = list(cmd.items)
    names = {i.name for i in items}
    if cmd.uid and "UID" not in names:
        items.insert(0, FetchItem("UID"))
    if "MODSEQ" not in names and (cmd.changedsince is not None or (session.condstore and "FLAGS" in names)):
        items.append(FetchItem("MODSEQ"))  # RFC 7162 3.1.4.1; with CONDSTORE on, flags come with their MODSEQ
    uids = selected.resolve(cmd.sequence, uid=cmd.uid)
    backend = session.backend
    if cmd.vanished and cmd.changedsince is not None:
        gone = await selected.view.vanished_since(cmd.changedsince, cmd.sequence)
        if gone:
            await session.untagged("VANISHED (EARLIER) " + sequence.format(gone))
    if not uids:
        return Done("FETCH completed")
    seen = any(item.sets_seen for item in items) and not selected.readonly
    if seen:  # RFC 9051 6.4.5: BODY[...] sets \Seen; the FETCH then reports the flags
        await selected.view.store_flags(uid_set(uids), uid=True, mode="add", flags=("\\Seen",))
        if "FLAGS" not in {i.name for i in items}:
            items.append(FetchItem("FLAGS"))
    columns = _columns(tuple(items), session.condstore)
    if all(item.name in _LIGHT_ITEMS for item in items):
        ranges = selected.view.index_ranges(cmd.sequence, uid=cmd.uid, saved=session.saved)
        for positions in split_ranges(ranges, LIGHT_BATCH):
            pairs = await selected.view.fetch_ranges(positions, columns=columns, changedsince=cmd.changedsince)
            await selected.announce_rows(row for _, row in pairs)
            await _write_light(session, selected, pairs, [item.name for item in items])
        return Done("FETCH completed")
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start:start + FETCH_BATCH]
        pairs = await selected.view.fetch(uid_set(batch), uid=True, columns=columns,
                                          changedsince=cmd.changedsince)
        await selected.announce_rows(row for _, row in pairs)
        if "anatomy" in columns:
            await backend.ensure_anatomy([row for _, row in pairs])
        for seq, row in pairs:
            await _fetch_one(session, selected, seq, row, items)
    return Done("FETCH completed")


def split_ranges(ranges: list[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    """Position ranges ``[start, stop)`` cut into batches of at most ``size`` positions, in order."""
    batch: list[tuple[int, int]] = []
    count = 0
    for start, stop in ranges:
        while start < stop:
            take = min(stop - start, size - count)
            batch.append((start, start + take))
            count += take
            start += take
            if count == size:
                yield batch
                batch, count = [], 0
    if batch:
        yield batch


async def _write_light(session: Session, selected: Selected, pairs: list[tuple[int, Any]], names: list[str]) -> None:
    """The flag synchronisation every client runs (``FETCH 1:* (UID FLAGS)``, with ``MODSEQ`` under CONDSTORE):
    one ``%`` template for the items in the client's order, the flag text cached per distinct flag set, and
    :data:`LIGHT_LINES` lines written at once."""
    pieces = {"UID": b"UID %d", "FLAGS": b"FLAGS %s", "MODSEQ": b"MODSEQ (%d)"}
    template = b"* %d FETCH (" + b" ".join(pieces[name] for name in names) + b")\r\n"
    getters = [_LIGHT_VALUES[name] for name in names]
    texts: dict[tuple[str, ...], bytes] = {}
    shown = selected.flags_of
    lines: list[bytes] = []
    for seq, row in pairs:
        values: list[Any] = [seq]
        for getter in getters:
            if getter is None:  # FLAGS
                flags = shown(row)
                text = texts.get(flags)
                if text is None:
                    text = texts[flags] = flags_text(flags).encode()
                values.append(text)
            else:
                values.append(getter(row))
        lines.append(template % tuple(values))
        if len(lines) >= LIGHT_LINES:
            await session.send(b"".join(lines))
            lines.clear()
    if lines:
        await session.send(b"".join(lines))


#: How each light item's value is read from a row (FLAGS: the session's view of them, see :func:`_write_light`).
_LIGHT_VALUES: dict[str, Callable[[Any], int] | None] = {
    "UID": lambda row: row.uid, "FLAGS": None, "MODSEQ": lambda row: row.modseq or 0}


async def _fetch_one(session: Session, selected: Selected, seq: int, row: Any, items: list[FetchItem]) -> None:
    backend = session.backend
    out: list[bytes | tuple[bytes, bytes | Stored]] = []  # a body item: (label and literal prefix, bytes)
    for item in items:
        name = item.name
        if name == "UID":
            out.append(b"UID %d" % row.uid)
        elif name == "FLAGS":
            out.append(b"FLAGS " + flags_text(selected.flags_of(row)).encode())
        elif name == "MODSEQ":
            out.append(b"MODSEQ (%d)" % (row.modseq or 0))
        elif name in {"INTERNALDATE", "SAVEDATE"}:
            out.append(name.encode() + b" " + internal_date(row.internal_date).encode())
        elif name == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % (row.size or 0))
        elif name == "EMAILID":
            out.append(b"EMAILID (M%d)" % row.message_id)
        elif name == "THREADID":
            out.append(b"THREADID NIL")
        elif name == "ENVELOPE":
            out.append(b"ENVELOPE " + backend.envelope(row, session.utf8))
        elif name == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + backend.bodystructure(row, extended=True, utf8=session.utf8))
        elif name == "BODY" and item.section is None:
            out.append(b"BODY " + backend.bodystructure(row, extended=False, utf8=session.utf8))
        elif name == "PREVIEW":
            text = await backend.preview(row)
            out.append(b"PREVIEW " + (response.nstring(text.encode("utf-8")) if text is not None else b"NIL"))
        elif name == "BINARY.SIZE":
            data = await backend.binary(row, item.section)
            out.append(f"BINARY.SIZE[{item.section}] {len(data)}".encode())
        else:
            out.append(await _body(session, row, item))
    await _write_fetch(session, seq, out)


class Stored(NamedTuple):
    """A byte range of a stored message, read while it is written (sections over :data:`STREAM_ABOVE`)."""

    message_id: int
    start: int
    end: int


async def _write_stored(session: Session, part: Stored) -> None:
    """The range read :data:`STREAM_READ` bytes at a time: one client's FETCH never holds a whole large body.

    The literal's size is already announced: a range the store no longer holds ends the connection
    (nothing else keeps the stream in step, RFC 9051 4.3)."""
    from gateway.imap.engine.state import Bye

    for start in range(part.start, part.end, STREAM_READ):
        end = min(part.end, start + STREAM_READ)
        data = await session.backend.read(part.message_id, start, end)
        if len(data) != end - start:
            raise Bye("A message changed while it was being sent; closing.", "SERVERBUG")
        view = memoryview(data)
        for offset in range(0, len(data), WRITE_CHUNK):
            await session.send(bytes(view[offset:offset + WRITE_CHUNK]))


async def _write_fetch(session: Session, seq: int, out: list[bytes | tuple[bytes, bytes | Stored]]) -> None:
    """One ``* n FETCH (...)`` line, a large literal written in pieces: never a second copy of a message body,
    and never more than :data:`WRITE_CHUNK` over the transport's write-buffer limit (RFC 9051 5.5)."""
    pending = bytearray(b"* %d FETCH (" % seq)
    for index, piece in enumerate(out):
        if index:
            pending += b" "
        if isinstance(piece, bytes):
            pending += piece
            continue
        head, data = piece
        pending += head
        if isinstance(data, bytes) and len(data) <= WRITE_CHUNK:
            pending += data
            continue
        await session.send(bytes(pending))
        pending = bytearray()
        if isinstance(data, Stored):
            await _write_stored(session, data)
            continue
        view = memoryview(data)
        for start in range(0, len(data), WRITE_CHUNK):
            await session.send(bytes(view[start:start + WRITE_CHUNK]))
    pending += b")\r\n"
    await session.send(bytes(pending))


def _literal(label: bytes, data: bytes, *, binary: bool = False) -> tuple[bytes, bytes]:
    return label + (b" ~{%d}\r\n" if binary else b" {%d}\r\n") % len(data), data


def _large(session: Session, row: Any, section: Any, partial: tuple[int, int] | None) -> Stored | None:
    """The stored range of an unfiltered ``BODY[section]<partial>`` over :data:`STREAM_ABOVE`, else None."""
    from gateway.imap.anatomy import render
    from gateway.store.db import is_sqlite

    # SQLite's substr() loads the whole BLOB for every range: there one read of the section is cheaper.
    if (row.size or 0) <= STREAM_ABOVE or is_sqlite(session.context.config.database_url):
        return None
    extract = render.section_extract(session.backend.anatomy(row), section)
    if extract is None or extract.filtered:
        return None
    start, end = (extract.start, extract.end) if partial is None else extract.window(*partial)
    return Stored(row.message_id, start, end) if end - start > STREAM_ABOVE else None


async def _body(session: Session, row: Any, item: FetchItem) -> tuple[bytes, bytes | Stored]:
    """BODY[...], BINARY[...], RFC822(.HEADER/.TEXT) with ``<origin.count>`` (RFC 9051 6.4.5, RFC 3516 4.2)."""
    from gateway.imap.proto.fetch import Section

    backend = session.backend
    name = item.name
    if name in {"RFC822", "BODY"}:
        section = Section() if name == "RFC822" else item.section or Section()
        partial = item.partial if name == "BODY" else None
        large = _large(session, row, section, partial)
        if large is not None:
            label = b"RFC822" if name == "RFC822" else item.response_label().replace("BODY.PEEK", "BODY").encode()
            return label + b" {%d}\r\n" % (large.end - large.start), large
    if name == "RFC822":
        return _literal(b"RFC822", await backend.section(row, Section()))
    if name == "RFC822.HEADER":
        return _literal(b"RFC822.HEADER", await backend.section(row, Section((), "HEADER")))
    if name == "RFC822.TEXT":
        return _literal(b"RFC822.TEXT", await backend.section(row, Section((), "TEXT")))
    section = item.section or Section()
    if name == "BINARY":
        data = await backend.binary(row, section)
    else:
        data = await backend.section(row, section, item.partial)
    if item.partial is not None:
        origin, count = item.partial
        if name == "BINARY":
            data = data[origin:origin + count]
    label = item.response_label().replace("BODY.PEEK", "BODY").replace("BINARY.PEEK", "BINARY").encode()
    return _literal(label, data, binary=name == "BINARY" and b"\x00" in data)


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
    parts = [f'(TAG "{cmd.tag}")'] + (["UID"] if cmd.uid else [])
    if numbers:
        if "MIN" in returns:
            parts.append(f"MIN {min(numbers)}")
        if "MAX" in returns:
            parts.append(f"MAX {max(numbers)}")
        if "ALL" in returns:
            parts.append("ALL " + sequence.from_numbers(numbers))
    if "COUNT" in returns:
        parts.append(f"COUNT {len(numbers)}")
    if highest is not None and numbers:
        parts.append(f"MODSEQ {highest}")
    await session.untagged("ESEARCH " + " ".join(parts))
    return Done("SEARCH completed")


async def sort(session: Session, cmd: c.Sort) -> Done:
    selected = _selected(session)
    session.backend.saved = session.saved
    uids = await session.backend.sort(selected.view, cmd.criteria, cmd.key)
    numbers = _answer_numbers(selected, uids, cmd.uid)
    await session.untagged("SORT" + "".join(f" {n}" for n in numbers))
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

