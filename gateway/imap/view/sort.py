"""SORT (RFC 5256 3) with SORT=DISPLAY (RFC 5957) over the sort keys of ``message_anatomy``.

The matching messages' keys are read in one query; Python sorts them one criterion at a time from the last to
the first (a stable sort, so each earlier criterion wins and REVERSE applies to its own key only), after a first
sort by UID: ties end in sequence-number order, as RFC 5256 3 requires.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.proto.search import SearchKey
from gateway.imap.view import anatomy_link
from gateway.imap.view.errors import NotAllowed
from gateway.imap.view.rows import spans_of, uid_condition, utc
from gateway.imap.view.search import search
from gateway.imap.view.store import chunks
from gateway.store.anatomy import MessageAnatomy
from gateway.store.models import Delivery, Message

if TYPE_CHECKING:
    from gateway.imap.view.selected import SelectedView

#: Sort criterion → the column of its key (DATE falls back to the internal date, RFC 5256 3).
SORT_COLUMNS: dict[str, Any] = {
    "ARRIVAL": Delivery.internal_date,
    "DATE": func.coalesce(MessageAnatomy.sent_at, Delivery.internal_date),
    "FROM": MessageAnatomy.sort_from,
    "TO": MessageAnatomy.sort_to,
    "CC": MessageAnatomy.sort_cc,
    "SUBJECT": MessageAnatomy.sort_subject,
    "SIZE": Message.size,
    "DISPLAYFROM": MessageAnatomy.display_from,
    "DISPLAYTO": MessageAnatomy.display_to,
}


def _normal(value: Any) -> Any:
    """Comparable values: NULL text is the empty string (RFC 5256), dates from SQLite text made aware."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] in (" ", "T"):
        try:
            return utc(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value


async def sort_keys(session: AsyncSession, folder_id: int, uids: Sequence[int], names: Sequence[str]
                    ) -> dict[int, tuple[Any, ...]]:
    """The values of the sort criteria ``names`` for ``uids``, by UID (one query per 500 UID ranges)."""
    columns = [SORT_COLUMNS[name] for name in names]
    source: Any = Delivery.__table__.join(Message.__table__, Message.id == Delivery.message_id).outerjoin(
        anatomy_link.anatomy_table, MessageAnatomy.message_id == Delivery.message_id)
    out: dict[int, tuple[Any, ...]] = {}
    wanted = set(uids)
    for part in chunks(spans_of(uids)):
        rows = await session.execute(select(Delivery.uid, *columns).select_from(source).where(
            Delivery.folder_id == folder_id, uid_condition(part)))
        for row in rows:
            if row[0] in wanted:
                out[int(row[0])] = tuple(_normal(value) for value in row[1:])
    return out


async def sort(view: SelectedView, criteria: Sequence[tuple[str, bool]], key: SearchKey,
               saved: Sequence[int] | None = None) -> list[int]:
    """SORT: the UIDs of the messages ``key`` matches, ordered by ``criteria`` ((name, reverse), ...)."""
    names = [name.upper() for name, _ in criteria]
    unknown = [name for name in names if name not in SORT_COLUMNS]
    if unknown or not names:
        raise NotAllowed(f"Unknown sort criterion {unknown[0] if unknown else '()'}.")
    found = (await search(view, key, saved)).uids
    if not found:
        return []
    folder_id = view.folder_id

    async def work(session: AsyncSession) -> dict[int, tuple[Any, ...]]:
        return await sort_keys(session, folder_id, found, names)

    keys = await view.store.read(work, "sorting")
    ordered = sorted(uid for uid in found if uid in keys)
    for position in range(len(criteria) - 1, -1, -1):
        ordered.sort(key=lambda uid, p=position: keys[uid][p], reverse=criteria[position][1])  # type: ignore[misc]
    return ordered
