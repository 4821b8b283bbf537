"""Framed commands to typed values (RFC 9051 9 grammar and the extensions the server offers).

:func:`parse` either returns a :mod:`gateway.imap.proto.commands` value or raises
:class:`~gateway.imap.proto.errors.ProtocolError`; nothing else escapes (the fuzz tests in
``tests/imap/proto`` hold it to that). The grammar is read left to right with compiled regexes; the only
nested constructs (search keys, lists) use loops with explicit bounds. This module reads the tag and the
command name and dispatches; the arguments of each state's commands are read by ``grammar_any``,
``grammar_authenticated`` and ``grammar_selected``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gateway.imap.proto import commands as c
from gateway.imap.proto.errors import ProtocolError
from gateway.imap.proto.grammar_any import _authenticate, _compress, _id, _login
from gateway.imap.proto.grammar_authenticated import (
    Handler,
    _append,
    _create,
    _enable,
    _getquota,
    _list,
    _lsub,
    _one_mailbox,
    _rename,
    _select,
    _setquota,
    _status,
)
from gateway.imap.proto.grammar_selected import _copy_or_move, _fetch, _search, _sort, _store, _thread, _uid_expunge
from gateway.imap.proto.lexer import Cursor
from gateway.imap.proto.limits import MAX_LITERALS, MAX_TAG
from gateway.imap.proto.reader import RawCommand

_TAG = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+")
_VERB = re.compile(rb"[A-Za-z]+")


def parse(raw: RawCommand, *, utf8: bool = False) -> c.BaseCommand:
    """One framed command to its typed value; ``utf8`` once UTF8=ACCEPT (or IMAP4rev2) is enabled (RFC 6855 3).

    Raises :class:`ProtocolError` with the tag when it could be read, ``None`` otherwise.
    """
    try:
        return _parse(raw, utf8)
    except ProtocolError:
        raise
    except (ValueError, IndexError, TypeError, OverflowError, AssertionError) as exc:
        # Belt and braces: the grammar raises ProtocolError itself; anything else is a malformed input we did
        # not foresee, and still only a BAD for the client.
        raise ProtocolError(raw.tag, "The command could not be parsed.") from exc


def _parse(raw: RawCommand, utf8: bool) -> c.BaseCommand:
    cur = Cursor(raw.parts, raw.tag, utf8)
    if len(raw.parts) > 2 * MAX_LITERALS + 1:
        raise cur.error(f"More than {MAX_LITERALS} literals in one command.")
    tag_match = _TAG.match(cur.buf)
    if tag_match is None:
        raise ProtocolError(None, "The command does not start with a valid tag.")
    tag = tag_match.group().decode("ascii")
    if len(tag) > MAX_TAG:
        raise ProtocolError(None, f"The tag is longer than {MAX_TAG} characters.")
    cur.tag = tag
    cur.pos = tag_match.end()
    cur.sp()
    verb = cur.match(_VERB, "a command name").group().decode("ascii").upper()
    if verb == "UID":
        cur.sp()
        sub = cur.match(_VERB, "a command after UID").group().decode("ascii").upper()
        uid_handler = _UID_COMMANDS.get(sub)
        if uid_handler is None:
            raise cur.error(f"UID {sub} is not a command.")
        return uid_handler(cur, tag, True)
    handler = _COMMANDS.get(verb)
    if handler is not None:
        return handler(cur, tag)
    seq_handler = _UID_COMMANDS.get(verb)
    if seq_handler is not None and verb != "EXPUNGE":
        return seq_handler(cur, tag, False)
    raise cur.error(f"Unknown command {verb[:40]}.")


# --- commands without arguments -----------------------------------------------------------------------------


def _bare(cls: type[c.BaseCommand]) -> Handler:
    def handler(cur: Cursor, tag: str) -> c.BaseCommand:
        cur.end()
        return cls(tag)

    return handler


_COMMANDS: dict[str, Handler] = {
    "CAPABILITY": _bare(c.Capability),
    "NOOP": _bare(c.Noop),
    "LOGOUT": _bare(c.Logout),
    "STARTTLS": _bare(c.StartTLS),
    "NAMESPACE": _bare(c.Namespace),
    "IDLE": _bare(c.Idle),
    "CHECK": _bare(c.Check),
    "CLOSE": _bare(c.Close),
    "UNSELECT": _bare(c.Unselect),
    "EXPUNGE": _bare(c.Expunge),
    "ID": _id,
    "COMPRESS": _compress,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": _select(False),
    "EXAMINE": _select(True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _one_mailbox(c.GetQuotaRoot),
    "SETQUOTA": _setquota,
}

_UID_COMMANDS: dict[str, Callable[[Cursor, str, bool], c.BaseCommand]] = {
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_or_move(c.Copy),
    "MOVE": _copy_or_move(c.Move),
    "SORT": _sort,
    "THREAD": _thread,
    "EXPUNGE": _uid_expunge,
}

#: Command names the parser knows (for CAPABILITY-independent checks and tests).
KNOWN_COMMANDS = frozenset(_COMMANDS) | frozenset(_UID_COMMANDS) | {"UID"}

__all__ = ["KNOWN_COMMANDS", "ProtocolError", "parse"]
