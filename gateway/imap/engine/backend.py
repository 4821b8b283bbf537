"""The one place the engine calls the store view and the message anatomy: one :class:`Backend` per login.

Handlers speak IMAP; this adapter speaks :mod:`gateway.imap.view` (folders, selected view, rows, flags,
mutations, search) and :mod:`gateway.imap.anatomy` (structure, envelope, sections read as byte ranges).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.auth.accounts import Account
from gateway.imap.engine.state import No
from gateway.imap.proto import commands as c
from gateway.imap.proto.fetch import Section
from gateway.imap.proto.sequence import SequenceSet, ranges_of
from gateway.imap.view import search as view_search
from gateway.imap.view import sort as view_sort
from gateway.imap.view import thread as view_thread
from gateway.imap.view.folders import Folders
from gateway.imap.view.selected import SelectedView
from gateway.imap.view.store import ViewStore

if TYPE_CHECKING:
    from gateway.imap.engine.server import Context

#: Body reads up to this size are tried on the event loop's thread (a copy of that many bytes is no hop's worth);
#: larger ones go to a reader thread at once.
INLINE_BODY_BYTES = 256 * 1024

@dataclass(frozen=True)
class FolderEntry:
    """A LIST line's data."""

    name: str
    special_use: str | None
    subscribed: bool
    children: bool


def view_store(context: Context) -> ViewStore:
    """The process-wide view store of a service (sessions, hub, UID cache)."""
    store = context.extra.get("view_store")
    if store is None:
        store = context.extra["view_store"] = ViewStore(context.sessions, context.reads, context.hub,
                                                        context.extra.get("committer"))
    return store


def uid_set(uids: Sequence[int]) -> SequenceSet:
    return SequenceSet(tuple(ranges_of(uids)))


class Backend:
    """One account's store operations."""

    def __init__(self, context: Context, account: Account) -> None:
        self.context = context
        self.account = account
        self.store = view_store(context)
        self._anatomies: dict[int, Any] = {}
        self._folders = Folders(self.store, account.id)
        #: The session's SEARCHRES result (RFC 5182), kept by the session.
        self.saved: list[int] = []

    # --- folders --------------------------------------------------------------------------------------------
    async def folders(self) -> list[FolderEntry]:
        return [FolderEntry(f.name, f.special_use, f.subscribed, f.children) for f in await self._folders.list()
                if f.exists]

    async def create(self, name: str, special_use: tuple[str, ...]) -> None:
        await self._folders.create(name, special_use)

    async def delete(self, name: str) -> None:
        await self._folders.delete(name)

    async def rename(self, old: str, new: str) -> None:
        await self._folders.rename(old, new)

    async def subscribe(self, name: str, on: bool) -> None:
        await self._folders.subscribe(name, on)

    async def status(self, name: str, items: Collection[str]) -> dict[str, Any]:
        values: dict[str, Any] = dict(await self._folders.status(name, [i for i in items if i != "APPENDLIMIT"]))
        if "APPENDLIMIT" in items:
            values["APPENDLIMIT"] = self.context.message_size
        return values

    # --- search ---------------------------------------------------------------------------------------------
    async def search(self, view: Any, key: Any) -> tuple[list[int], int | None]:
        """UIDs matching ``key`` and, when MODSEQ was a criterion, the highest MODSEQ among them (RFC 7162 3.1.5)."""
        found = await view_search.search(view, key, saved=self.saved)
        return list(found.uids), found.highest_modseq

    async def sort(self, view: Any, criteria: Any, key: Any) -> list[int]:
        return list(await view_sort.sort(view, criteria, key, saved=self.saved))

    async def thread(self, view: Any, algorithm: str, key: Any, *, uid: bool) -> str:
        """The THREAD response's thread list (RFC 5256 4), numbered by UID or sequence number."""
        roots = await view_thread.thread(view, algorithm, key, saved=self.saved)
        return view_thread.render(roots, (lambda u: u) if uid else (lambda u: view.seq_of(u) or 0))

    async def quota(self) -> tuple[int, int | None]:
        from gateway.imap.view import quota

        usage = await quota.usage(self.store, self.account.id, self.quota_limit)
        return usage.used_bytes, usage.limit_bytes

    @property
    def quota_limit(self) -> int | None:
        """The account's storage limit in bytes (``limits.mailbox_quota``, RFC 9208), None when unlimited."""
        from gateway.imap.view import quota

        return quota.limit_of(self.context.config.limits.mailbox_quota)

    # --- selected -------------------------------------------------------------------------------------------
    async def select(self, name: str, *, readonly: bool) -> SelectedView:
        return await SelectedView.open(self.store, self.account.id, name, readonly=readonly)

    async def append(self, name: str, messages: Sequence[c.AppendMessage]) -> tuple[int, list[int]]:
        from gateway.imap.view import mutate

        items = [mutate.AppendItem(m.data, frozenset(f for f in m.flags if f != "\\Recent"), m.date)
                 for m in messages]
        result = await mutate.append(self.store, self.account.id, name, items, quota=self.quota_limit)
        return result.uidvalidity, result.uids

    # --- message content ------------------------------------------------------------------------------------
    def anatomy(self, row: Any) -> Any:
        from gateway.anatomy import codec

        if row.anatomy is not None:
            if row.message_id is None:
                return codec.decode(row.anatomy)
            decoded = self.store.anatomies.get(row.message_id)
            if decoded is None:
                decoded = self.store.anatomies.put(row.message_id, codec.decode(row.anatomy))
            return decoded
        cached = self._anatomies.get(row.message_id)
        if cached is None:
            raise No("This message is being analysed; try again in a moment.", "UNAVAILABLE")
        return cached

    async def ensure_anatomy(self, rows: Sequence[Any]) -> None:
        """Messages stored before the anatomy index (or by a path that skipped it): analysed once, kept for the
        session's lifetime of this command batch."""
        from gateway.anatomy.analyse import analyse
        from gateway.imap.anatomy.store import read_range

        missing = [r for r in rows if r.anatomy is None and r.message_id not in self._anatomies]
        for row in missing:
            async def work(session: Any, mid: int = row.message_id, size: int = row.size or 0) -> bytes:
                return await read_range(session, mid, 0, size)

            raw = await self.store.read(work, "reading a message")
            self._anatomies[row.message_id] = analyse(raw)
        if len(self._anatomies) > 1000:
            self._anatomies.clear()

    async def read(self, message_id: int, start: int, end: int) -> bytes:
        from gateway.imap.anatomy.store import read_range
        from gateway.imap.view import fast

        async def work(session: Any) -> bytes:
            return await read_range(session, message_id, start, end)

        return await self.store.read_fast(lambda c: fast.read_range(c, message_id, start, end), work,
                                          "reading a message", inline=end - start <= INLINE_BODY_BYTES)

    def envelope(self, row: Any, utf8: bool = False) -> bytes:
        from gateway.imap.anatomy import render

        if row.message_id is None:
            return render.envelope(self.anatomy(row).root.envelope, utf8=utf8)
        key = (row.message_id, utf8)
        text = self.store.envelopes.get(key)
        if text is None:
            text = self.store.envelopes.put(key, render.envelope(self.anatomy(row).root.envelope, utf8=utf8))
        return text

    def bodystructure(self, row: Any, *, extended: bool, utf8: bool = False) -> bytes:
        from gateway.imap.anatomy import render

        return render.body_structure(self.anatomy(row), extended=extended, utf8=utf8)

    async def section(self, row: Any, section: Section, partial: tuple[int, int] | None = None) -> bytes:
        """The bytes of a body section; with ``partial`` only the window is read (RFC 9051 6.4.5)."""
        from gateway.imap.anatomy import render

        anatomy = self.anatomy(row)
        extract = render.section_extract(anatomy, section)
        if extract is None:
            return b""  # RFC 9051 6.4.5: a part that does not exist is empty
        if extract.filtered or partial is None:
            data = await self.read(row.message_id, extract.start, extract.end) if extract.end > extract.start \
                else b""
            if extract.filtered:
                data = render.filter_header(data, extract.fields, extract.exclude)
            if partial is not None:
                data = data[partial[0]:partial[0] + partial[1]]
            return data
        start, end = extract.window(partial[0], partial[1])
        return await self.read(row.message_id, start, end) if end > start else b""

    async def binary(self, row: Any, section: Section | None) -> bytes:
        """RFC 3516: the decoded content of a part; unknown transfer encoding → ``NO [UNKNOWN-CTE]``."""
        from gateway.imap.anatomy import render

        anatomy = self.anatomy(row)
        part = section.part if section is not None else ()
        if section is not None and section.text is not None:
            raise No("BINARY takes a part number only.", "CLIENTBUG")

        async def read(start: int, end: int) -> bytes:
            return await self.read(row.message_id, start, end)

        try:
            data = await render.binary_bytes(anatomy, part, read)
        except render.UnknownTransferEncoding:
            raise No("Unknown content transfer encoding.", "UNKNOWN-CTE") from None
        return data or b""

    async def preview(self, row: Any) -> str | None:
        """RFC 8970: up to 200 characters of the first text part."""
        from gateway.anatomy import text

        preview = getattr(text, "preview", None)
        if preview is None:
            return None
        anatomy = self.anatomy(row)
        raw = await self.read(row.message_id, 0, row.size or 0)
        return str(preview(anatomy, raw))[:200]
