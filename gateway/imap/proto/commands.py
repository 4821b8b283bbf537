"""One frozen value per IMAP command, as :func:`gateway.imap.proto.parser.parse` returns it.

Values are already checked against the grammar: mailbox names are decoded (modified UTF-7, RFC 3501 5.1.3,
unless UTF8=ACCEPT is enabled, RFC 6855 3), ``INBOX`` is canonical in any case (RFC 9051 5.1), system flags
are in their canonical case (``\\Seen``), keywords keep the client's case, atoms such as status items and
capabilities are upper case. The session dispatches on the class.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from gateway.imap.proto.fetch import FetchItem
from gateway.imap.proto.search import SearchKey
from gateway.imap.proto.sequence import SequenceSet

StoreMode = Literal["set", "add", "remove"]
ThreadAlgorithm = Literal["ORDEREDSUBJECT", "REFERENCES"]


@dataclass(frozen=True, slots=True)
class BaseCommand:
    """What every command carries: the client's tag, echoed in the tagged reply."""

    tag: str


# --- any state (RFC 9051 6.1) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability(BaseCommand):
    """CAPABILITY (RFC 9051 6.1.1)."""


@dataclass(frozen=True, slots=True)
class Noop(BaseCommand):
    """NOOP (RFC 9051 6.1.2): a chance to send pending untagged updates."""


@dataclass(frozen=True, slots=True)
class Logout(BaseCommand):
    """LOGOUT (RFC 9051 6.1.3)."""


@dataclass(frozen=True, slots=True)
class Id(BaseCommand):
    """ID (RFC 2971): ``params`` is None for ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Compress(BaseCommand):
    """COMPRESS (RFC 4978); ``mechanism`` upper case (only DEFLATE exists)."""

    mechanism: str


# --- not authenticated (RFC 9051 6.2) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTLS(BaseCommand):
    """STARTTLS (RFC 9051 6.2.1)."""


@dataclass(frozen=True, slots=True)
class Authenticate(BaseCommand):
    """AUTHENTICATE (RFC 9051 6.2.2); ``initial`` is the decoded SASL-IR response (RFC 4959), ``b""`` for ``=``."""

    mechanism: str
    initial: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login(BaseCommand):
    """LOGIN (RFC 9051 6.2.3)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Login(tag={self.tag!r}, username={self.username!r}, password=<hidden>)"


# --- authenticated (RFC 9051 6.3) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enable(BaseCommand):
    """ENABLE (RFC 5161 / RFC 9051 6.3.1); capability names upper case."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QResync:
    """SELECT's QRESYNC parameter (RFC 7162 3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(BaseCommand):
    """SELECT, or EXAMINE with ``readonly`` (RFC 9051 6.3.2-3); CONDSTORE/QRESYNC parameters (RFC 7162 3.1.8, 3.2.5)."""

    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Create(BaseCommand):
    """CREATE (RFC 9051 6.3.4) with CREATE-SPECIAL-USE ``USE (...)`` (RFC 6154 3); attributes like ``\\Sent``."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete(BaseCommand):
    """DELETE (RFC 9051 6.3.5)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(BaseCommand):
    """RENAME (RFC 9051 6.3.6)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe(BaseCommand):
    """SUBSCRIBE (RFC 9051 6.3.7)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(BaseCommand):
    """UNSUBSCRIBE (RFC 9051 6.3.8)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class List(BaseCommand):
    """LIST (RFC 9051 6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154) or LSUB (``lsub``).

    ``selection`` holds SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE; ``returns`` holds SUBSCRIBED CHILDREN
    SPECIAL-USE; ``status`` the STATUS items of ``RETURN (STATUS (...))``, None when not asked. ``extended``
    tells whether the client used the extended syntax (selection options or a pattern list), which changes
    the answer (RFC 5258 3: CHILDINFO for RECURSIVEMATCH).
    """

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status: tuple[str, ...] | None = None
    lsub: bool = False
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Namespace(BaseCommand):
    """NAMESPACE (RFC 9051 6.3.10)."""


@dataclass(frozen=True, slots=True)
class Status(BaseCommand):
    """STATUS (RFC 9051 6.3.11); items upper case, in the client's order, without duplicates."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (several with MULTIAPPEND, RFC 3502); ``utf8`` for RFC 6855 ``UTF8 (~{n}...)``."""

    flags: frozenset[str]
    date: datetime.datetime | None
    data: bytes
    binary: bool = False
    utf8: bool = False


@dataclass(frozen=True, slots=True)
class Append(BaseCommand):
    """APPEND (RFC 9051 6.3.12, RFC 3502 MULTIAPPEND, RFC 3516 4.4 binary literal)."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Idle(BaseCommand):
    """IDLE (RFC 2177 / RFC 9051 6.3.13); the server then reads ``DONE`` in line mode."""


@dataclass(frozen=True, slots=True)
class GetQuota(BaseCommand):
    """GETQUOTA (RFC 9208 4.2)."""

    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(BaseCommand):
    """GETQUOTAROOT (RFC 9208 4.3)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota(BaseCommand):
    """SETQUOTA (RFC 9208 4.1); ``limits`` are (resource upper case, limit) pairs."""

    root: str
    limits: tuple[tuple[str, int], ...]


# --- selected (RFC 9051 6.4) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check(BaseCommand):
    """CHECK (RFC 3501 6.4.1; a NOOP in IMAP4rev2)."""


@dataclass(frozen=True, slots=True)
class Close(BaseCommand):
    """CLOSE (RFC 9051 6.4.1)."""


@dataclass(frozen=True, slots=True)
class Unselect(BaseCommand):
    """UNSELECT (RFC 3691 / RFC 9051 6.4.2)."""


@dataclass(frozen=True, slots=True)
class Expunge(BaseCommand):
    """EXPUNGE, or UID EXPUNGE with ``uids`` (RFC 9051 6.4.3, 6.4.9; UIDPLUS RFC 4315)."""

    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search(BaseCommand):
    """SEARCH / UID SEARCH (RFC 9051 6.4.4); ``returns`` are ESEARCH options (RFC 4731, SAVE RFC 5182).

    ``returns`` is None for the classic ``* SEARCH`` answer, ``()`` for ``RETURN ()`` (meaning ALL, RFC 4731 3.1).
    """

    uid: bool
    charset: str | None
    key: SearchKey
    returns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Fetch(BaseCommand):
    """FETCH / UID FETCH (RFC 9051 6.4.5) with CHANGEDSINCE and VANISHED modifiers (RFC 7162 3.1.4, 3.2.6)."""

    uid: bool
    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store(BaseCommand):
    """STORE / UID STORE (RFC 9051 6.4.6) with UNCHANGEDSINCE (RFC 7162 3.1.3)."""

    uid: bool
    sequence: SequenceSet
    mode: StoreMode
    silent: bool
    flags: frozenset[str]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(BaseCommand):
    """COPY / UID COPY (RFC 9051 6.4.7)."""

    uid: bool
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move(BaseCommand):
    """MOVE / UID MOVE (RFC 6851 / RFC 9051 6.4.8)."""

    uid: bool
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Sort(BaseCommand):
    """SORT / UID SORT (RFC 5256 3, DISPLAY RFC 5957, ESORT RETURN RFC 5267); criteria are (key, reverse)."""

    uid: bool
    criteria: tuple[tuple[str, bool], ...]
    charset: str
    key: SearchKey
    returns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Thread(BaseCommand):
    """THREAD / UID THREAD (RFC 5256 3)."""

    uid: bool
    algorithm: ThreadAlgorithm
    charset: str
    key: SearchKey
