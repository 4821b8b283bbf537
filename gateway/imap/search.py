"""SEARCH keys the store can answer itself: flags become SQL conditions, so a search for unseen or flagged mail
reads the messages that match instead of every message of the folder.

The conditions only narrow the candidates; pymap's criteria still decide on each one, so a condition may be
looser than its key (``flags LIKE '%Flagged%'``) but never stricter.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable

from pymap.parsing.specials import SearchKey
from sqlalchemy import ColumnElement, not_

from gateway.store.models import Delivery

#: System-flag keys and the flag name they test (RFC 9051 6.4.4).
_FLAG_KEYS = {b"ANSWERED": "Answered", b"DELETED": "Deleted", b"DRAFT": "Draft", b"FLAGGED": "Flagged"}


def _like(text: str) -> ColumnElement[bool]:
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return Delivery.flags.like(f"%{escaped}%", escape="!")


def _condition(key: SearchKey) -> ColumnElement[bool] | None:
    name = key.value
    if key.inverse:
        inner = _condition(key.not_inverse) if name in (b"SEEN", b"UNSEEN") else None
        return not_(inner) if inner is not None else None
    if name == b"SEEN":
        return Delivery.seen.is_(True)
    if name == b"UNSEEN":
        return Delivery.seen.is_(False)
    if name in _FLAG_KEYS:
        return _like(_FLAG_KEYS[name])
    if name == b"KEYWORD":
        return _like(str(key.filter_flag))
    return None


def _decided(keys: list[SearchKey]) -> bool:
    """Whether the SQL conditions and the candidates' sequence set (pymap takes the first SEQSET) decide ``keys``."""
    seqsets = [key for key in keys if key.value == b"SEQSET"]
    return len(seqsets) <= 1 and all(
        key.value in (b"SEEN", b"UNSEEN") or (key.value in (b"SEQSET", b"ALL") and not key.inverse) for key in keys)


def prefilter(keys: Iterable[SearchKey]) -> tuple[list[ColumnElement[bool]], bool]:
    """SQL conditions implied by the top-level keys (all of which must match), and whether they decide alone.

    Only positive tests of a flag's presence are narrowed by text (a flag's absence cannot be told from a
    substring); \\Seen and its absence use the indexed ``seen`` column. When every key is \\Seen, its absence,
    ``ALL`` or a sequence set, the store's answer is the search's answer and nothing is matched again.
    """
    keys = list(keys)
    conditions = [condition for condition in map(_condition, keys) if condition is not None]
    exact = bool(conditions) and _decided(keys)
    return conditions, exact
