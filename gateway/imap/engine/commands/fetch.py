"""FETCH (RFC 9051 6.4.5, RFC 7162 CONDSTORE, RFC 3516 BINARY, RFC 8970 PREVIEW): the rows read in batches,
the answers written one message at a time.

Each message's answer is produced and written on its own (``drain()`` after each): a ``FETCH 1:* (BODY[])`` of a
large folder never sits in memory whole, and a slow client holds the producer back. FETCHes of flags only read
and write in larger steps; body sections over :data:`STREAM_ABOVE` are streamed from the store.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.imap.engine.backend import uid_set
from gateway.imap.engine.commands.messages import _selected
from gateway.imap.engine.state import Bad, Done
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

