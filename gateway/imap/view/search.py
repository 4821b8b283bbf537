"""SEARCH keys compiled to ONE SQL condition over the selected folder's deliveries (RFC 9051 6.4.4).

Flags, dates, intervals (RFC 5032), sizes, sequence and UID sets, MODSEQ (RFC 7162 3.1.5), ``$`` (RFC 5182) and the
address and subject fields (case-folded columns of ``message_anatomy``) are plain conditions; TEXT and BODY are
subqueries of the trigram index. HEADER is the one key SQL cannot decide alone (a header line must hold the text,
not the header block): its candidates come from the index and are confirmed in Python over their decoded header
text, then the key is a set of message ids in the query. A long body not yet in the index (indexed after its
commit) is read from the message itself, and the messages holding the text join the TEXT/BODY condition as ids. The
tree is walked with an explicit stack, never recursion.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.anatomy.text import fold
from gateway.imap.anatomy.store import pending_body_matches
from gateway.imap.proto.search import And, Key, Not, Or, SearchKey
from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view import anatomy_link
from gateway.imap.view.errors import NotAllowed
from gateway.imap.view.flags import has_flag
from gateway.imap.view.rows import uid_condition
from gateway.store.anatomy import MessageAnatomy
from gateway.store.models import Delivery, Message

if TYPE_CHECKING:
    from gateway.imap.view.selected import SelectedView

#: System-flag keys: (flag, present?) (RFC 9051 6.4.4).
FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
}
#: Address and subject keys and the case-folded anatomy column they search.
FIELD_KEYS = {"FROM": MessageAnatomy.from_addr, "TO": MessageAnatomy.to_addr, "CC": MessageAnatomy.cc_addr,
              "BCC": MessageAnatomy.bcc_addr, "SUBJECT": MessageAnatomy.subject}
#: Most candidates a HEADER key confirms in Python (the rest of the folder is beyond any client's need).
MAX_HEADER_CANDIDATES = 100_000


@dataclass(frozen=True)
class SearchResult:
    """Matching UIDs known to the view, ascending, and their highest MODSEQ when the search used MODSEQ
    (RFC 7162 3.1.5: the ``(MODSEQ n)`` of the SEARCH / ESEARCH response)."""

    uids: list[int]
    highest_modseq: int | None = None


@dataclass
class _Needs:
    anatomy: bool = False
    message: bool = False
    modseq: bool = False
    header_sets: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    #: TEXT/BODY needle -> messages whose long body is not indexed yet and holds it (read from their bytes).
    pending_sets: dict[str, set[int]] = field(default_factory=dict)


def _day(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def _date_condition(column: Any, name: str, value: dt.date) -> ColumnElement[bool]:
    """Dates compare whole days in UTC, time and zone disregarded (RFC 9051 6.4.4)."""
    start = _day(value)
    end = start + dt.timedelta(days=1)
    if name.endswith("BEFORE"):
        return column < start
    if name.endswith("ON"):
        return and_(column >= start, column < end)
    return column >= start


def _spans_condition(view: SelectedView, sequence: SequenceSet, *, uid: bool,
                     saved: Sequence[int] | None) -> ColumnElement[bool]:
    ranges = view.index_ranges(sequence, uid=uid, saved=saved)
    if not ranges:
        return false()
    spans = view.uid_spans(ranges)
    return or_(*(uid_condition(part) for part in (spans[i:i + 500] for i in range(0, len(spans), 500))))


def _leaf(view: SelectedView, key: Key, dialect: str, needs: _Needs,
          saved: Sequence[int] | None) -> ColumnElement[bool]:
    name, arg = key.name, key.arg
    if name == "ALL":
        return true()
    if name in FLAG_KEYS:
        flag, present = FLAG_KEYS[name]
        return has_flag(flag) if present else not_(has_flag(flag))
    if name == "SEEN":
        return Delivery.seen.is_(True)
    if name == "UNSEEN":
        return Delivery.seen.is_(False)
    if name in ("KEYWORD", "UNKEYWORD"):
        condition = has_flag(str(arg))
        return condition if name == "KEYWORD" else not_(condition)
    if name in ("RECENT", "NEW", "OLD"):
        spans = view.recent_spans
        recent = uid_condition(spans) if spans else false()
        if name == "OLD":
            return not_(recent)
        return and_(recent, Delivery.seen.is_(False)) if name == "NEW" else recent
    if name in ("LARGER", "SMALLER"):
        needs.message = True
        return Message.size > int(arg) if name == "LARGER" else Message.size < int(arg)  # type: ignore[arg-type]
    if name in ("BEFORE", "ON", "SINCE"):
        assert isinstance(arg, dt.date)
        return _date_condition(Delivery.internal_date, name, arg)
    if name in ("OLDER", "YOUNGER"):  # RFC 5032: the internal date against now less the interval
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(arg))  # type: ignore[arg-type]
        return Delivery.internal_date < cutoff if name == "OLDER" else Delivery.internal_date >= cutoff
    if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        assert isinstance(arg, dt.date)
        needs.anatomy = True  # no readable Date header: the internal date stands in (as for SORT, RFC 5256 3)
        return _date_condition(func.coalesce(MessageAnatomy.sent_at, Delivery.internal_date), name, arg)
    if name in FIELD_KEYS:
        needs.anatomy = True
        return FIELD_KEYS[name].like(anatomy_link.like_pattern(fold(str(arg))), escape=anatomy_link.ESCAPE)
    if name in ("TEXT", "BODY"):
        fields = ("header", "body") if name == "TEXT" else ("body",)
        needle = fold(str(arg))
        indexed = anatomy_link.text_match(dialect, fields, needle)
        pending = needs.pending_sets.get(needle)
        return or_(indexed, anatomy_link.in_ids(dialect, pending)) if pending else indexed
    if name == "HEADER":
        assert isinstance(arg, tuple)
        return anatomy_link.in_ids(dialect, needs.header_sets[(arg[0].lower(), fold(arg[1]))])
    if name in ("SEQ", "UID"):
        assert isinstance(arg, SequenceSet)
        return _spans_condition(view, arg, uid=name == "UID" or arg.saved, saved=saved)
    if name == "MODSEQ":
        needs.modseq = True
        return Delivery.modseq >= int(arg)  # type: ignore[arg-type]
    if name == "EMAILID":
        text = str(arg)
        return Delivery.message_id == int(text[1:]) if text[:1] == "M" and text[1:].isdigit() else false()
    if name == "THREADID":
        return false()  # no THREADID is ever given out (FETCH THREADID is NIL, RFC 8474 5.2)
    raise NotAllowed(f"The search key {name} is not supported.", code="BADCHARSET" if name == "CHARSET" else None)


def _leaves(key: SearchKey) -> list[Key]:
    """Every leaf key of the tree (explicit stack)."""
    found: list[Key] = []
    stack: list[SearchKey] = [key]
    while stack:
        node = stack.pop()
        if isinstance(node, And):
            stack.extend(node.keys)
        elif isinstance(node, Or):
            stack.extend((node.left, node.right))
        elif isinstance(node, Not):
            stack.append(node.key)
        else:
            found.append(node)
    return found


def header_keys(key: SearchKey) -> list[tuple[str, str]]:
    """The (field name, text) of every HEADER key in the tree."""
    return [(leaf.arg[0].lower(), fold(leaf.arg[1])) for leaf in _leaves(key)
            if leaf.name == "HEADER" and isinstance(leaf.arg, tuple)]


def text_needles(key: SearchKey) -> list[str]:
    """The case-folded text of every TEXT and BODY key in the tree."""
    return [fold(str(leaf.arg)) for leaf in _leaves(key) if leaf.name in ("TEXT", "BODY")]


def header_line_matches(header_text: str, name: str, needle: str) -> bool:
    """Whether a line ``name: value`` of the decoded header text holds ``needle`` (RFC 9051 6.4.4 HEADER)."""
    prefix = name + ":"
    for line in header_text.split("\n"):
        if line.startswith(prefix) and needle in line[len(prefix):]:
            return True
    return False


async def _header_sets(session: AsyncSession, dialect: str, folder_id: int,
                       keys: list[tuple[str, str]]) -> dict[tuple[str, str], set[int]]:
    sets: dict[tuple[str, str], set[int]] = {}
    for name, needle in keys:
        if (name, needle) in sets:
            continue
        pattern = anatomy_link.like_pattern(f"{name}:")[:-1] + anatomy_link.like_pattern(needle)[1:]
        rows = await session.execute(anatomy_link.header_text_query(dialect, folder_id, pattern)
                                     .limit(MAX_HEADER_CANDIDATES))
        sets[(name, needle)] = {int(r[0]) for r in rows if header_line_matches(r[1] or "", name, needle)}
    return sets


def compile_key(view: SelectedView, key: SearchKey, dialect: str, needs: _Needs,
                saved: Sequence[int] | None = None) -> ColumnElement[bool]:
    """The SQL condition of a key tree, built bottom-up with an explicit stack (input never drives recursion)."""
    results: list[ColumnElement[bool]] = []
    stack: list[tuple[SearchKey, bool]] = [(key, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, Key):
            results.append(_leaf(view, node, dialect, needs, saved))
            continue
        children: tuple[SearchKey, ...] = (
            node.keys if isinstance(node, And) else (node.left, node.right) if isinstance(node, Or) else (node.key,))
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
            continue
        count = len(children)
        parts = results[len(results) - count:] if count else []
        del results[len(results) - count:]
        if isinstance(node, And):
            results.append(and_(true(), *parts) if parts else true())
        elif isinstance(node, Or):
            results.append(or_(*parts))
        else:
            results.append(not_(parts[0]))
    return results[0]


async def search(view: SelectedView, key: SearchKey, saved: Sequence[int] | None = None) -> SearchResult:
    """SEARCH over the messages the view knows: one statement (plus one per HEADER key)."""
    top = view.max_uid
    if not top:
        return SearchResult([], None)
    folder_id = view.folder_id

    async def work(session: AsyncSession) -> tuple[list[int], int | None]:
        dialect = session.get_bind().dialect.name
        needs = _Needs()
        keys = header_keys(key)
        if keys:
            needs.header_sets = await _header_sets(session, dialect, folder_id, keys)
        needles = text_needles(key)
        if needles:
            needs.pending_sets = await pending_body_matches(session, folder_id, needles)
        condition = compile_key(view, key, dialect, needs, saved)
        source: Any = Delivery.__table__
        if needs.message:
            source = source.join(Message.__table__, Message.id == Delivery.message_id)
        if needs.anatomy:
            source = source.outerjoin(anatomy_link.anatomy_table, MessageAnatomy.message_id == Delivery.message_id)
        query = (select(Delivery.uid, Delivery.modseq).select_from(source)
                 .where(Delivery.folder_id == folder_id, Delivery.uid <= top, condition).order_by(Delivery.uid))
        rows = (await session.execute(query)).all()
        highest = max((int(r.modseq) for r in rows), default=None) if needs.modseq else None
        return [int(r.uid) for r in rows], highest

    uids, highest = await view.store.read(work, "searching")
    known = [uid for _, uid in view.numbers_of(uids)]
    return SearchResult(known, highest if known else None)
